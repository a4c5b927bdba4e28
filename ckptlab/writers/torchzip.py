"""The ``.pt``/``.pth`` writer: torch.save's zip layout, streamed storage by storage.

Layout: ``<archive>/data.pkl`` (tensors as persistent ids), ``.format_version``,
``.storage_alignment``, ``byteorder``, ``data/N`` per storage, ``version``. Every member
is stored uncompressed with its data on a 64-byte boundary, as torch.save writes it.
"""
from __future__ import annotations

import struct
import zipfile
from collections.abc import Callable, Iterable, Iterator
from typing import Any, BinaryIO

import torch

from ckptlab.writers import torch_pickle
from ckptlab.writers.entries import Group, raw_bytes
from ckptlab.writers.progress import ByteProgress
from ckptlab.writers.spans import CHUNK, span_chunks


def write_torch_zip(f: BinaryIO, groups: list[Group], wrap: Callable | None, archive: str,
                    bar: ByteProgress) -> None:
    """data.pkl needs only each storage's key, dtype and size, so it goes first; storages follow."""
    mapping = {key: torch_pickle.TensorRef(str(n), g.info) for n, g in enumerate(groups) for key in g.keys}
    extras: list[torch.Tensor] = []
    tree = torch_pickle.swap_tensors(wrap(mapping), extras, len(groups)) if wrap else mapping
    prefix = "".join(c if c.isalnum() or c in "-_" else "_" for c in archive) or "archive"
    with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        def record(name: str, data: memoryview | bytes) -> None:
            data = memoryview(data).cast("B")
            _aligned_record(zf, f, f"{prefix}/{name}", len(data), _slices(data))

        record("data.pkl", torch_pickle.dumps(tree))
        record(".format_version", b"1")
        record(".storage_alignment", b"64")
        record("byteorder", b"little")
        buffer = bytearray()
        for n, g in enumerate(groups):
            span = g.copyable_span
            if span is not None:
                buffer = buffer or bytearray(min(CHUNK, g.info.nbytes))
                _aligned_record(zf, f, f"{prefix}/data/{n}", g.info.nbytes, span_chunks(span, buffer))
            else:
                record(f"data/{n}", raw_bytes(g.tensor()))
            bar.advance(g.info.nbytes, g.keys[-1])
        for n, t in enumerate(extras, start=len(groups)):
            record(f"data/{n}", raw_bytes(t))
        record("version", b"3\n")


def _slices(data: memoryview) -> Iterator[memoryview]:
    for start in range(0, len(data), CHUNK):
        yield data[start:start + CHUNK]


def _aligned_record(zf: zipfile.ZipFile, f: BinaryIO, name: str, nbytes: int, chunks: Iterable[memoryview]) -> None:
    """One stored zip record whose data starts on a 64-byte boundary (as torch.save's do)."""
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_STORED
    info.file_size = nbytes
    zip64 = nbytes * 1.05 > zipfile.ZIP64_LIMIT
    fixed = 30 + len(name.encode("utf-8")) + (20 if zip64 else 0)
    pad = -(f.tell() + fixed + 4) % 64  # a padding extra field: 4-byte head + pad bytes
    info.extra = struct.pack("<HH", 0x4246, pad) + b"\0" * pad  # id 'FB', as torch.save pads
    with zf.open(info, "w", force_zip64=zip64) as out:
        for chunk in chunks:
            out.write(chunk)
