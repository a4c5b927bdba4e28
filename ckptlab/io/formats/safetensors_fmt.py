"""safetensors files: the header says everything; tensor bytes are read one span at a time.

The ``safetensors`` library validates the file (header size cap, offsets that tile the data
area, dtype/shape agreement) and gives keys, shapes, dtypes and metadata without reading
data. Its ``get_tensor`` would map the whole file, so ``load()`` instead reads the
tensor's ``data_offsets`` span with seek + readinto (the offsets parsed from the header
bytes when the first tensor is made: inspecting a file parses its JSON once, in the library).
"""
from __future__ import annotations

import json
import os
import struct
from math import prod
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open

from ckptlab.errors import UnreadableFileError, UnsupportedFormatError, quote
from ckptlab.io import limits
from ckptlab.io.formats.base import LazyTensor, Loaded, TensorTable, guarded
from ckptlab.io.formats.region import Region
from ckptlab.io.formats.storage import checked_shape
from ckptlab.io.tensor_info import TensorInfo

__all__ = ["MAX_HEADER_BYTES", "DTYPES", "header_length", "read_safetensors"]

MAX_HEADER_BYTES = limits.MAX_SAFETENSORS_HEADER_BYTES  # the limit the safetensors format itself sets

DTYPES: dict[str, torch.dtype] = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "U16": torch.uint16, "U32": torch.uint32, "U64": torch.uint64, "BOOL": torch.bool,
    "F8_E4M3": torch.float8_e4m3fn, "F8_E5M2": torch.float8_e5m2, "C64": torch.complex64,
}
if hasattr(torch, "float8_e8m0fnu"):
    DTYPES["F8_E8M0"] = torch.float8_e8m0fnu


def header_length(path: Path) -> int:
    """The 8-byte little-endian header length, checked against the cap and the file size."""
    with open(path, "rb") as f:
        return _checked_length(f, path)


def _checked_length(f, path: Path) -> int:
    size = os.fstat(f.fileno()).st_size
    head = f.read(8)
    if len(head) < 8:
        raise UnreadableFileError("truncated safetensors file (no 8-byte header length)", path)
    (n,) = struct.unpack("<Q", head)
    if n > MAX_HEADER_BYTES:
        raise UnreadableFileError(f"safetensors header of {n} bytes exceeds the {MAX_HEADER_BYTES} byte limit", path)
    if 8 + n > size:
        raise UnreadableFileError(f"truncated safetensors file: header needs {n} bytes, file has {size - 8}", path)
    return n


def _header_bytes(path: Path) -> bytes:
    """The JSON header, its length checked first (one open of the file)."""
    with open(path, "rb") as f:
        n = _checked_length(f, path)
        data = f.read(n)
    if len(data) != n:
        raise UnreadableFileError(f"truncated: needs {n} bytes at offset 8, file ends first", path)
    return data


def read_safetensors(path: Path) -> Loaded:
    """The header as a ``TensorTable``. The library validates the header as it opens the file
    and gives every key (in file order: by offset), dtype and shape; each distinct (dtype,
    shape) is checked once. Offsets are read from the header bytes only when a tensor is
    first made (inspecting never needs them), so the JSON is parsed once, by the library."""
    raw = _header_bytes(path)
    try:
        with safe_open(str(path), framework="pt") as f:  # the library validates the header as it opens it
            metadata = dict(f.metadata() or {})
            keys = f.offset_keys()
            sigs = [(s.get_dtype(), tuple(s.get_shape())) for s in map(f.get_slice, keys)]
    except (SafetensorError, OSError, ValueError, RuntimeError, OverflowError) as exc:
        raise UnreadableFileError(f"invalid safetensors file ({str(exc)[:120]})", path) from None
    limits.check_keys([*keys, *metadata], path)
    by_sig = {sig: _info(*sig, lambda sig=sig: keys[sigs.index(sig)], path) for sig in dict.fromkeys(sigs)}
    infos = dict(zip(keys, map(by_sig.__getitem__, sigs)))
    region = Region(path, 8 + len(raw))
    root = TensorTable(infos, _Maker(region, _Offsets(raw, infos, path), str(path)))
    _restore_ties(root, metadata, region)
    return Loaded("safetensors", root, (), metadata)


def _info(code: str, shape: tuple, key_of, path: Path) -> TensorInfo:
    """The info of a tensor of dtype ``code`` and ``shape`` as the header gives them, checked
    (``key_of()``: the first key of that dtype and shape, named by the error)."""
    dtype = DTYPES.get(code)
    if dtype is None:
        raise UnsupportedFormatError(f"safetensors dtype {quote(code)} of {quote(key_of())} is not supported", path)
    shape, _ = checked_shape(list(shape), None, str(path))
    return TensorInfo(shape, dtype, prod(shape) * dtype.itemsize)


class _Offsets:
    """Where each tensor's bytes begin, from the header's ``data_offsets``: parsed from the
    header bytes (kept from the open) when the first tensor is made, and checked against what
    the library gave, key by key (same keys, dtype and shape; a span of exactly its size)."""

    __slots__ = ("raw", "infos", "path", "_begins")

    def __init__(self, raw: bytes, infos: dict[str, TensorInfo], path: Path):
        self.raw, self.infos, self.path, self._begins = raw, infos, path, None

    def __getitem__(self, key: str) -> int:
        begins = self._begins
        if begins is None:  # (two threads may both parse: the same bytes, the same answer)
            begins = self._begins = self._parse()
        return begins[key]

    def _parse(self) -> dict[str, int]:
        """Every key's first byte; any disagreement is a one-line error (the bytes are the
        ones ckptlab read at open, the library read the file itself: it may have changed)."""
        try:
            header = json.loads(self.raw)
            header.pop("__metadata__", None)
            if len(header) != len(self.infos):
                raise ValueError("it lists other tensors than the library read")
            return {key: self._begin(key, header[key], info) for key, info in self.infos.items()}
        except (ValueError, RecursionError, KeyError, TypeError, AttributeError) as exc:
            raise UnreadableFileError(f"invalid safetensors header ({str(exc)[:100]})", self.path) from None

    def _begin(self, key: str, entry: dict, info: TensorInfo) -> int:
        if DTYPES.get(entry["dtype"]) is not info.dtype or tuple(entry["shape"]) != info.shape:
            raise ValueError(f"it disagrees with the library on {quote(key)}")
        begin, end = entry["data_offsets"]
        if type(begin) is not int or type(end) is not int:
            raise ValueError(f"offsets of {quote(key)} are not integers")
        if end - begin != info.nbytes:
            raise UnreadableFileError(f"bad offsets for {quote(key)}: {end - begin} bytes for {info.nbytes}", self.path)
        return begin


class _Maker:
    """Builds the ``LazyTensor`` of one key of the table when it is first asked for."""

    __slots__ = ("region", "offsets", "where")

    def __init__(self, region: Region, offsets: _Offsets, where: str):
        self.region, self.offsets, self.where = region, offsets, where

    def __call__(self, key: str, info: TensorInfo) -> LazyTensor:
        begin, where = self.offsets[key], self.where
        piece = _Piece(self.region, begin, info, where)
        return LazyTensor(info, piece, (where, begin), (begin, info.shape, info.dtype), piece.span)


def _restore_ties(root: TensorTable, metadata: dict[str, str], region: Region) -> None:
    """safetensors cannot share storage, so ckptlab's writer stores each tied name as a copy
    and lists the groups under ``ckptlab.aliases``; reading them back as one tensor lets a
    .pt written from this file tie them again. The metadata is the file's word only: a group
    is trusted when its tensors' bytes are identical (same span, or compared), else ignored,
    so a file cannot make a writer copy one tensor's values over another's."""
    try:
        groups = json.loads(metadata.get("ckptlab.aliases", "[]"))
    except (ValueError, RecursionError):
        return
    for group in groups if isinstance(groups, list) else []:
        members = [root.get(k) if isinstance(k, str) else None for k in group] \
            if isinstance(group, list) and len(group) > 1 else [None]
        if any(not isinstance(m, LazyTensor) for m in members) or len({m.info for m in members}) != 1:
            continue
        if not all(_same_bytes(region, members[0], m) for m in members[1:]):
            continue
        for member in members[1:]:
            member.storage_id, member.view = members[0].storage_id, members[0].view


_COMPARE_STEP = 16 * 2**20


def _same_bytes(region: Region, a: LazyTensor, b: LazyTensor) -> bool:
    """Whether two tensors of this file hold the same bytes: the same span, or equal when
    read side by side in 16 MB steps (stopping at the first difference)."""
    begin_a, begin_b = a.view[0], b.view[0]
    if begin_a == begin_b:
        return True
    nbytes = a.info.nbytes
    for done in range(0, nbytes, _COMPARE_STEP):
        step = min(_COMPARE_STEP, nbytes - done)
        if not torch.equal(region.read_into_tensor(begin_a + done, step), region.read_into_tensor(begin_b + done, step)):
            return False
    return True


class _Piece:
    """One tensor's span of the file: called, it reads the tensor (every failure a one-line
    error naming the file); ``span()`` says where the bytes lie. One small object per tensor,
    where closures made three (a header of 2,000 tensors is read in a few milliseconds)."""

    __slots__ = ("region", "begin", "info", "where")

    def __init__(self, region: Region, begin: int, info: TensorInfo, where: str):
        self.region, self.begin, self.info, self.where = region, begin, info, where

    def __call__(self) -> torch.Tensor:
        return guarded(self._read, self.where)()

    def _read(self) -> torch.Tensor:
        info = self.info
        raw = self.region.read_into_tensor(self.begin, info.nbytes)
        return (raw.view(info.dtype) if info.dtype != torch.uint8 else raw).reshape(info.shape)

    def span(self) -> tuple[str, int, int] | None:
        return (self.where, self.region.start + self.begin, self.info.nbytes) if self.info.nbytes else None
