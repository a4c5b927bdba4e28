"""The legacy (pre-1.6) ``torch.save`` format: a run of pickles, then raw storages.

Layout: magic number, protocol version, system info, the object pickle (storages as
persistent ids), the list of storage keys, then each storage as an 8-byte element count
followed by its bytes. We unpickle the headers and walk the storages by seeking over
their size headers, so no tensor byte is read at open time.
"""
from __future__ import annotations

import struct
from pathlib import Path
from typing import IO, Any

import torch

from ckptlab.errors import UnreadableFileError, UnsupportedFormatError, quote
from ckptlab.io import limits
from ckptlab.io.formats.allowlist import StorageType
from ckptlab.io.formats.base import Loaded
from ckptlab.io.formats.region import Region
from ckptlab.io.formats.storage import StorageRef
from ckptlab.io.formats.unpickler import restricted_load

__all__ = ["MAGIC_NUMBER", "PROTOCOL_VERSION", "is_legacy_magic", "read_legacy"]

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001


def _count(value: Any) -> bool:
    """A plain element count or offset: an int from 0 to ``MAX_TENSOR_DIM_SIZE``."""
    return type(value) is int and 0 <= value <= limits.MAX_TENSOR_DIM_SIZE


def is_legacy_magic(obj: Any) -> bool:
    return type(obj) is int and obj == MAGIC_NUMBER


def read_legacy(f: IO[bytes], path: Path) -> Loaded:
    """Continue after the magic number (already read from ``f``)."""
    protocol, _ = restricted_load(f, path, "the protocol header")
    if protocol != PROTOCOL_VERSION:
        raise UnsupportedFormatError(f"legacy torch protocol version {protocol!r} (expected {PROTOCOL_VERSION})", path)
    sys_info, _ = restricted_load(f, path, "the system-info header")
    if isinstance(sys_info, dict) and sys_info.get("little_endian") is False:
        raise UnsupportedFormatError("big-endian checkpoints are not supported", path)

    region = Region(path)
    roots: dict[str, tuple[torch.dtype, int]] = {}
    starts: dict[str, int] = {}  # filled after the storage keys are read

    def persistent_load(pid: Any) -> Any:
        if isinstance(pid, tuple) and pid and pid[0] == "module":
            return pid[1] if len(pid) > 1 else None
        if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] == "storage"):
            raise UnreadableFileError("unexpected persistent id in the legacy pickle", path)
        _, storage_type, key, _location, numel, view = pid
        dtype = storage_type.dtype if isinstance(storage_type, StorageType) else storage_type
        if not isinstance(dtype, torch.dtype):
            raise UnsupportedFormatError(f"storage {quote(key)} has an unknown storage type {quote(storage_type)}",
                                         path)
        if type(key) not in (str, int) or not _count(numel):
            raise UnreadableFileError("corrupt legacy checkpoint: malformed storage id", path)
        key = str(key)
        # The first mention of a storage fixes its dtype and size; every later one must agree.
        if roots.setdefault(key, (dtype, numel)) != (dtype, numel):
            raise UnreadableFileError(f"corrupt legacy checkpoint: storage {quote(key)} is described twice, "
                                      "differently", path)
        base = 0
        if view is not None:
            if not (isinstance(view, tuple) and len(view) == 3 and _count(view[1]) and _count(view[2])):
                raise UnreadableFileError("corrupt legacy checkpoint: malformed storage view", path)
            _view_key, base, numel = view
            if base + numel > roots[key][1]:
                raise UnreadableFileError(f"corrupt legacy checkpoint: a view of storage {quote(key)} reaches "
                                          "past its end", path)
        return _storage(region, starts, key, dtype, base, numel)

    root, placeholders = restricted_load(f, path, "the object pickle", persistent_load)
    keys, _ = restricted_load(f, path, "the storage-key list")
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise UnreadableFileError("corrupt legacy checkpoint: the storage-key list is not a list of names", path)
    unlisted = next((k for k in roots if k not in set(keys)), None)
    if unlisted is not None:
        raise UnreadableFileError(f"corrupt legacy checkpoint: storage {quote(unlisted)} is used but not stored", path)
    _locate_storages(f, path, keys, roots, starts)
    return Loaded("torch-legacy", root, tuple(sorted(placeholders)))


def _storage(region: Region, starts: dict[str, int], key: str, dtype: torch.dtype, base: int,
             numel: int) -> StorageRef:
    def read(offset: int, nbytes: int) -> torch.Tensor:
        return region.read_into_tensor(starts[key] + base * dtype.itemsize + offset, nbytes)

    def locate() -> tuple[str, int]:
        return str(region.path), region.start + starts[key] + base * dtype.itemsize

    return StorageRef((str(region.path), key, base), dtype, numel, read, str(region.path), locate)


def _locate_storages(f: IO[bytes], path: Path, keys: list[str], roots: dict[str, tuple[torch.dtype, int]],
                     starts: dict[str, int]) -> None:
    """Seek from storage to storage over their 8-byte element counts, checking sizes."""
    size = path.stat().st_size
    pos = f.tell()
    for key in keys:
        if key not in roots:
            raise UnreadableFileError(f"corrupt legacy checkpoint: storage {quote(key)} is listed but never used", path)
        dtype, numel = roots[key]
        f.seek(pos)
        head = f.read(8)
        if len(head) != 8:
            raise UnreadableFileError(f"truncated: the file ends before storage {quote(key)}", path)
        (count,) = struct.unpack("<q", head)
        if count < numel:
            raise UnreadableFileError(f"corrupt legacy checkpoint: storage {quote(key)} holds {count} elements, "
                                      f"needs {numel}", path)
        starts[key] = pos + 8
        pos += 8 + count * dtype.itemsize
        if pos > size:
            raise UnreadableFileError(f"truncated: storage {quote(key)} ends at byte {pos}, the file has {size}",
                                      path)
