"""The ``.pt``/``.pth`` writer: torch.save's zip layout, streamed storage by storage.

Layout: ``<archive>/data.pkl`` (tensors as persistent ids), ``.format_version``,
``.storage_alignment``, ``byteorder``, ``data/N`` per storage, ``version``. Every member
is stored uncompressed with its data on a 64-byte boundary, as torch.save writes it.
A storage whose bytes are a whole member of a source archive keeps that member's CRC and
is copied in the kernel, so an unchanged tensor costs what ``cp`` costs.
"""
from __future__ import annotations

import zipfile
from collections.abc import Callable
from typing import BinaryIO

import torch

from ckptlab.io.writers import torch_pickle
from ckptlab.io.writers.entries import Group, raw_bytes
from ckptlab.io.writers.progress import ByteProgress
from ckptlab.io.writers.sink import Sink
from ckptlab.io.writers.staging import Staging
from ckptlab.io.writers.zipout import StoredZip

__all__ = ["write_torch_zip"]


def write_torch_zip(f: BinaryIO, groups: list[Group], wrap: Callable | None, archive: str,
                    bar: ByteProgress, zip64_limit: int = zipfile.ZIP64_LIMIT) -> None:
    """data.pkl needs only each storage's key, dtype and size, so it goes first; storages follow."""
    mapping = {key: torch_pickle.TensorRef(str(n), g.info) for n, g in enumerate(groups) for key in g.keys}
    extras: list = []  # tensors (or LazyTensors) among the kept extras, after the groups' storages
    tree = torch_pickle.swap_tensors(wrap(mapping), extras, len(groups)) if wrap else mapping
    prefix = "".join(c if c.isalnum() or c in "-_" else "_" for c in archive) or "archive"
    zf = StoredZip(Sink(f), zip64_limit=zip64_limit)
    staging = Staging()
    zf.add_bytes(f"{prefix}/data.pkl", torch_pickle.dumps(tree))
    zf.add_bytes(f"{prefix}/.format_version", b"1")
    zf.add_bytes(f"{prefix}/.storage_alignment", b"64")
    zf.add_bytes(f"{prefix}/byteorder", b"little")
    for n, g in enumerate(groups):
        span = g.copyable_span
        if span is not None:
            zf.add_span(f"{prefix}/data/{n}", span)
        else:
            zf.add_bytes(f"{prefix}/data/{n}", staging.bytes_of(g.tensor(view=True)))
        bar.advance(g.info.nbytes, g.keys[-1])
    for n, t in enumerate(extras, start=len(groups)):
        zf.add_bytes(f"{prefix}/data/{n}", raw_bytes(torch_pickle.extra_tensor(t)))
    zf.add_bytes(f"{prefix}/version", b"3\n")
    zf.close()
