"""Streaming, atomic checkpoint writers: ``.safetensors`` and torch's zip format (``.pt``/``.pth``).

Every output shape and dtype is known before a tensor is read, so the headers are written
first and the tensors follow one at a time: memory holds one tensor, never the checkpoint.
Output goes to a temporary file beside the destination and is renamed into place at the
end; on any error the temporary files are removed and nothing appears.

Tied tensors (entries with the same ``share`` id): ``.pt`` keeps them one storage;
safetensors cannot share storage, so each alias is written as its own copy (the file holds
exactly the keys asked for) and the groups are recorded in ``__metadata__`` under
``ckptlab.aliases``.
"""
from __future__ import annotations

import errno
import io
import json
import os
import pickle
import struct
import sys
import tempfile
import zipfile
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import torch

from ckptlab.errors import MergeError
from ckptlab.info import TensorInfo

Progress = Callable[[int, int, str], None]
SUFFIXES = (".safetensors", ".pt", ".pth", ".bin", ".ckpt")


@dataclass(frozen=True)
class OutTensor:
    """One output tensor: its key, its final shape/dtype, and how to make it (on demand)."""

    key: str
    info: TensorInfo
    produce: Callable[[], torch.Tensor]
    share: Hashable | None = None  # entries with equal ``share`` are one tied tensor
    span: "FileSpan | None" = None  # the output bytes lie as they are in a file: copy them there


@dataclass(frozen=True)
class FileSpan:
    """``nbytes`` bytes at ``offset`` of ``path`` that are exactly a tensor's bytes (C order)."""

    path: str
    offset: int
    nbytes: int


@dataclass(frozen=True)
class _Group:
    """Keys that are one tensor in the output (a single key unless tied)."""

    keys: tuple[str, ...]
    info: TensorInfo
    produce: Callable[[], torch.Tensor]
    span: FileSpan | None = None


def write(plan: Any, out_path: str | Path, progress: Progress | None = None,
          max_shard_size: int | None = None) -> list[Path]:
    """Write a merge plan (anything with ``outputs()``, ``metadata()`` and ``wrap``).

    safetensors gets the plan's string metadata; .pt gets its object tree (``wrap``).
    """
    if Path(out_path).suffix.lower() == ".safetensors":
        return write_tensors(plan.outputs(), out_path, metadata=plan.metadata(), progress=progress,
                             max_shard_size=max_shard_size)
    return write_tensors(plan.outputs(), out_path, wrap=plan.wrap, progress=progress,
                         max_shard_size=max_shard_size)


def write_tensors(
    tensors: Sequence[OutTensor],
    out_path: str | Path,
    *,
    metadata: Mapping[str, str] | None = None,
    wrap: Callable[[dict[str, Any]], Any] | None = None,
    progress: Progress | None = None,
    max_shard_size: int | None = None,
) -> list[Path]:
    """Write ``tensors`` to ``out_path`` (format by suffix); returns the files written.

    ``wrap`` (``.pt`` only) builds the saved object around the tensor mapping, e.g. a
    Lightning-style ``{"state_dict": ..., "epoch": ...}``. ``max_shard_size`` (bytes) splits
    the output into ``name-0000i-of-0000N.ext`` files plus ``name.ext.index.json``.
    """
    out_path = Path(out_path)
    suffix = out_path.suffix.lower()
    if suffix not in SUFFIXES:
        raise MergeError(f"output must end in {', '.join(SUFFIXES)}, not {suffix or 'nothing'!r}", out_path)
    if sys.byteorder != "little":
        raise MergeError("writing needs a little-endian machine", out_path)
    groups = _groups(tensors, safetensors=suffix == ".safetensors")
    metadata = dict(metadata or {})
    aliases = [list(g.keys) for g in groups if len(g.keys) > 1]
    if aliases:
        metadata["ckptlab.aliases"] = json.dumps(aliases)
    shards = _split(groups, max_shard_size)
    if wrap is not None and len(shards) > 1:
        raise MergeError("a nested output or kept extras cannot be split into shards; drop max_shard_size", out_path)
    names = _shard_names(out_path, len(shards))
    bar = _Bar(progress, sum(g.info.nbytes * _copies(g, suffix) for g in groups))
    with _Atomic([out_path.with_name(n) for n in names] + ([_index_path(out_path)] if len(shards) > 1 else [])) as tmp:
        for shard, tmp_path in zip(shards, tmp.paths):
            with open(tmp_path, "r+b") as f:  # mkstemp made it empty; "wb" would truncate, and ext4 then flushes on close
                if suffix == ".safetensors":
                    _write_safetensors(f, shard, metadata, bar)
                else:
                    _write_torch_zip(f, shard, wrap, Path(tmp.finals[0]).stem, bar)
        if len(shards) > 1:
            _write_index(tmp.paths[-1], shards, names, groups)
    return [Path(p) for p in tmp.finals]


# -- grouping, ordering, sharding ------------------------------------------------------
def _groups(tensors: Sequence[OutTensor], safetensors: bool) -> list[_Group]:
    """Tied entries become one group; safetensors orders groups by element size (alignment)."""
    by_share: dict[Hashable, list[OutTensor]] = {}
    order: list[list[OutTensor]] = []
    seen: set[str] = set()
    for t in tensors:
        if t.key in seen:
            raise MergeError(f"key {t.key!r} is written twice")
        seen.add(t.key)
        if t.share is not None and t.share in by_share:
            first = by_share[t.share][0]
            if (t.info.shape, t.info.dtype) != (first.info.shape, first.info.dtype):
                raise MergeError(f"tied keys {first.key!r} and {t.key!r} differ in shape or dtype")
            by_share[t.share].append(t)
            continue
        members = [t]
        if t.share is not None:
            by_share[t.share] = members
        order.append(members)
    groups = [_Group(tuple(m.key for m in members), members[0].info, members[0].produce, members[0].span)
              for members in order]
    if safetensors:
        groups.sort(key=lambda g: -g.info.dtype.itemsize)  # stable: key order within a size
    return groups


def _copies(group: _Group, suffix: str) -> int:
    return len(group.keys) if suffix == ".safetensors" else 1


def _split(groups: list[_Group], max_shard_size: int | None) -> list[list[_Group]]:
    """Fill shards greedily in order; a tensor bigger than the limit gets a shard alone."""
    if not max_shard_size:
        return [groups]
    shards: list[list[_Group]] = [[]]
    size = 0
    for g in groups:
        nbytes = g.info.nbytes * len(g.keys)
        if shards[-1] and size + nbytes > max_shard_size:
            shards.append([])
            size = 0
        shards[-1].append(g)
        size += nbytes
    return shards


def _shard_names(out_path: Path, count: int) -> list[str]:
    if count == 1:
        return [out_path.name]
    return [f"{out_path.stem}-{i:05d}-of-{count:05d}{out_path.suffix}" for i in range(1, count + 1)]


def _index_path(out_path: Path) -> Path:
    return out_path.with_name(out_path.name + ".index.json")


def _write_index(path: str, shards: list[list[_Group]], names: list[str], groups: list[_Group]) -> None:
    weight_map = {key: name for shard, name in zip(shards, names) for g in shard for key in g.keys}
    total = sum(g.info.nbytes * len(g.keys) for g in groups)
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)


# -- atomicity and progress ------------------------------------------------------------
class _Atomic:
    """Temporary files beside the finals; renamed into place only if the block succeeds."""

    def __init__(self, finals: list[Path]):
        self.finals = [str(p) for p in finals]
        self.paths: list[str] = []

    def __enter__(self) -> "_Atomic":
        try:
            for final in self.finals:
                folder, name = os.path.split(os.path.abspath(final))
                fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
                os.close(fd)
                self.paths.append(tmp)
        except OSError as exc:
            self._cleanup()
            raise MergeError(f"cannot create a file there ({exc.strerror})", final) from None
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            try:
                for tmp, final in zip(self.paths, self.finals):
                    os.replace(tmp, final)
                return
            except OSError as err:
                self._cleanup()
                raise MergeError(f"cannot move the output into place ({err.strerror})", final) from None
        self._cleanup()

    def _cleanup(self) -> None:
        for tmp in self.paths:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass


class _Bar:
    """Counts bytes written and reports them to the caller's ``progress`` callback."""

    def __init__(self, progress: Progress | None, total: int):
        self.progress, self.total, self.done = progress, total, 0
        if progress:
            progress(0, total, "")

    def advance(self, nbytes: int, key: str) -> None:
        self.done += nbytes
        if self.progress:
            self.progress(self.done, self.total, key)


def _tensor_of(group: _Group) -> torch.Tensor:
    """Make the group's tensor and check it is what the header promised."""
    t = group.produce()
    if tuple(t.shape) != group.info.shape or t.dtype != group.info.dtype:
        raise MergeError(f"{group.keys[0]!r} came out {tuple(t.shape)} {t.dtype}, "
                         f"but the plan said {group.info.shape} {group.info.dtype}")
    return t


def _raw(t: torch.Tensor) -> memoryview:
    """The tensor's bytes, C-contiguous, without a copy when it already is."""
    flat = t.detach().cpu().contiguous().reshape(-1)
    if flat.dtype.is_complex:
        flat = torch.view_as_real(flat).reshape(-1)
    return memoryview(flat.view(torch.uint8).numpy()).cast("B")


# -- safetensors -----------------------------------------------------------------------
SAFETENSORS_DTYPES = {
    torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
    torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8",
    torch.uint64: "U64", torch.uint32: "U32", torch.uint16: "U16", torch.uint8: "U8",
    torch.bool: "BOOL", torch.float8_e4m3fn: "F8_E4M3", torch.float8_e5m2: "F8_E5M2",
    torch.float8_e4m3fnuz: "F8_E4M3FNUZ", torch.float8_e5m2fnuz: "F8_E5M2FNUZ",
    torch.complex64: "C64",
}


def _write_safetensors(f: BinaryIO, groups: list[_Group], metadata: Mapping[str, str], bar: _Bar) -> None:
    """8-byte LE header size, JSON header padded to 8 with spaces, then the bytes in order."""
    header: dict[str, Any] = {"__metadata__": dict(metadata)} if metadata else {}
    offset = 0
    for g in groups:
        code = SAFETENSORS_DTYPES.get(g.info.dtype)
        if code is None:
            raise MergeError(f"safetensors cannot store {g.info.dtype_name} (key {g.keys[0]!r}); write .pt instead")
        for key in g.keys:
            header[key] = {"dtype": code, "shape": list(g.info.shape),
                           "data_offsets": [offset, offset + g.info.nbytes]}
            offset += g.info.nbytes
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    f.write(len(text).to_bytes(8, "little"))
    f.write(text)
    for g in groups:
        if g.span is not None and g.span.nbytes == g.info.nbytes:
            for key in g.keys:
                _copy_span(g.span, f)
                bar.advance(g.info.nbytes, key)
            continue
        data = _raw(_tensor_of(g))
        for key in g.keys:
            f.write(data)
            bar.advance(g.info.nbytes, key)
        del data


def _copy_span(span: FileSpan, f: BinaryIO) -> None:
    """Copy a file span into ``f`` in the kernel (as ``cp`` does), else through a buffer."""
    f.flush()
    out = f.fileno()
    with open(span.path, "rb", buffering=0) as src:
        offset, left = span.offset, span.nbytes
        try:
            while left:
                n = os.copy_file_range(src.fileno(), out, left, offset)
                if n == 0:
                    raise MergeError(f"file ends inside tensor data at offset {offset}", span.path)
                offset, left = offset + n, left - n
        except (AttributeError, OSError) as exc:
            if isinstance(exc, OSError) and exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL,
                                                              errno.EOPNOTSUPP, errno.EBADF):
                raise
            src.seek(offset)
            while left:
                chunk = src.read(min(left, _CHUNK))
                if not chunk:
                    raise MergeError(f"file ends inside tensor data at offset {offset}", span.path) from None
                os.write(out, chunk)
                offset, left = offset + len(chunk), left - len(chunk)
    f.seek(0, os.SEEK_END)


# -- torch zip (.pt / .pth) ------------------------------------------------------------
# dtypes that torch pickles through a typed storage class; the rest use UntypedStorage.
_LEGACY_STORAGE = {
    torch.float64: "DoubleStorage", torch.float32: "FloatStorage", torch.float16: "HalfStorage",
    torch.bfloat16: "BFloat16Storage", torch.int64: "LongStorage", torch.int32: "IntStorage",
    torch.int16: "ShortStorage", torch.int8: "CharStorage", torch.uint8: "ByteStorage",
    torch.bool: "BoolStorage", torch.complex64: "ComplexFloatStorage",
    torch.complex128: "ComplexDoubleStorage",
}


def _write_torch_zip(f: BinaryIO, groups: list[_Group], wrap: Callable | None, archive: str, bar: _Bar) -> None:
    """torch.save's layout: data.pkl (tensors as persistent ids), byteorder, data/N, version.

    data.pkl only needs each storage's key, dtype and size, so it is written first and the
    storages follow one by one, each a stored (uncompressed) record aligned to 64 bytes.
    """
    mapping = {key: _TensorRef(str(n), g.info) for n, g in enumerate(groups) for key in g.keys}
    extras: list[torch.Tensor] = []
    tree = _swap_tensors(wrap(mapping), extras, len(groups)) if wrap else mapping
    prefix = "".join(c if c.isalnum() or c in "-_" else "_" for c in archive) or "archive"
    with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        def record(name: str, data: memoryview | bytes) -> None:
            data = memoryview(data).cast("B")
            _aligned_record(zf, f, f"{prefix}/{name}", len(data), _slices(data))

        buf = io.BytesIO()
        _RefPickler(buf, protocol=2).dump(tree)
        record("data.pkl", buf.getbuffer())
        record(".format_version", b"1")
        record(".storage_alignment", b"64")
        record("byteorder", b"little")
        buffer = bytearray()
        for n, g in enumerate(groups):
            if g.span is not None and g.span.nbytes == g.info.nbytes:
                buffer = buffer or bytearray(min(_CHUNK, g.info.nbytes))
                _aligned_record(zf, f, f"{prefix}/data/{n}", g.info.nbytes, _span_chunks(g.span, buffer))
            else:
                record(f"data/{n}", _raw(_tensor_of(g)))
            bar.advance(g.info.nbytes, g.keys[-1])
        for n, t in enumerate(extras, start=len(groups)):
            record(f"data/{n}", _raw(t))
        record("version", b"3\n")


class _TensorRef:
    """Pickles as torch's tensor rebuild call over storage ``key`` (contiguous, offset 0)."""

    def __init__(self, key: str, info: TensorInfo):
        self.key, self.info = key, info

    def __reduce_ex__(self, protocol: int):
        shape = self.info.shape
        args = (_StorageRef(self.key, self.info), 0, shape, _strides(shape), False, OrderedDict())
        if self.info.dtype in _LEGACY_STORAGE:
            return torch._utils._rebuild_tensor_v2, args
        return torch._utils._rebuild_tensor_v3, args + (self.info.dtype,)


class _StorageRef:
    def __init__(self, key: str, info: TensorInfo):
        self.key, self.info = key, info

    def persistent_id(self) -> tuple:
        legacy = _LEGACY_STORAGE.get(self.info.dtype)
        if legacy:
            return ("storage", getattr(torch, legacy), self.key, "cpu", self.info.numel)
        return ("storage", torch.UntypedStorage, self.key, "cpu", self.info.nbytes)


class _RefPickler(pickle.Pickler):
    def persistent_id(self, obj: Any) -> tuple | None:
        return obj.persistent_id() if isinstance(obj, _StorageRef) else None


def _strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    strides, step = [], 1
    for n in reversed(shape):
        strides.append(step)
        step *= max(n, 1)
    return tuple(reversed(strides))


def _swap_tensors(obj: Any, extras: list[torch.Tensor], first: int) -> Any:
    """Tensors among the extras (e.g. optimizer state) become refs to extra storages."""
    if isinstance(obj, torch.Tensor):
        extras.append(obj.detach().cpu().contiguous())
        return _TensorRef(str(first + len(extras) - 1), TensorInfo.of(extras[-1]))
    if isinstance(obj, dict):
        return type(obj)((k, _swap_tensors(v, extras, first)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)) and not hasattr(obj, "_fields"):
        return type(obj)(_swap_tensors(v, extras, first) for v in obj)
    return obj


def _slices(data: memoryview) -> Iterator[memoryview]:
    for start in range(0, len(data), _CHUNK):
        yield data[start:start + _CHUNK]


def _span_chunks(span: FileSpan, buffer: bytearray) -> Iterator[memoryview]:
    """A file span in chunks, read into one reused buffer (no fresh memory per tensor)."""
    view = memoryview(buffer)
    with open(span.path, "rb", buffering=0) as src:
        src.seek(span.offset)
        left = span.nbytes
        while left:
            n = src.readinto(view[:min(left, len(view))])
            if not n:
                raise MergeError(f"file ends inside tensor data at offset {span.offset}", span.path)
            left -= n
            yield view[:n]


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


_CHUNK = 64 << 20
