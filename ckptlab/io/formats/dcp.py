"""torch.distributed.checkpoint folders: ``.metadata`` plus ``*.distcp`` data files.

``.metadata`` pickles a ``Metadata`` dataclass (torch's own reader calls plain
``pickle.load`` on it); we parse it with the restricted unpickler, where those dataclasses
are placeholders whose recorded state gives every key's size, dtype and chunks, and where
each chunk's bytes lie. A chunk is a ``torch.save`` archive embedded at (offset, length)
in a ``.distcp`` file, so the torch zip reader reads it lazily through a ``Region``.
"""
from __future__ import annotations

from math import prod
from pathlib import Path
from typing import Any

import torch

from ckptlab.errors import UnreadableFileError, UnsupportedFormatError, quote
from ckptlab.io import limits
from ckptlab.io.formats.base import LazyTensor, Loaded
from ckptlab.io.formats.placeholder import Placeholder
from ckptlab.io.formats.region import Region
from ckptlab.io.formats.storage import lazy_from_chunks
from ckptlab.io.formats.torch_zip import read_torch_zip
from ckptlab.io.formats.unpickler import restricted_load
from ckptlab.io.tensor_info import TensorInfo

__all__ = ["METADATA_FILE", "MAX_METADATA_BYTES", "MAX_KEY_PARTS", "read_dcp"]

METADATA_FILE = ".metadata"
MAX_METADATA_BYTES = limits.MAX_PICKLE_BYTES
MAX_KEY_PARTS = limits.MAX_DCP_KEY_PARTS


def _attrs(obj: Any, what: str, path: Path) -> dict[Any, Any]:
    if not isinstance(obj, Placeholder):
        raise UnreadableFileError(f"unexpected {what} in {METADATA_FILE} ({type(obj).__name__})", path)
    return obj.attributes()


def _dtype(properties: Any) -> torch.dtype | None:
    """TensorProperties pickles itself as a tuple (dtype first) or as a field dict."""
    if isinstance(properties, Placeholder):
        state = properties.state
        if isinstance(state, dict):
            return state.get("dtype")
        if isinstance(state, tuple):
            return next((s for s in state if isinstance(s, torch.dtype)), None)
    return None


class _Chunk:
    """One stored piece of a tensor: parsed (header only) on first read."""

    def __init__(self, region: Region, info: TensorInfo, descriptors: Any, name: str):
        self.region, self.info, self.descriptors, self.name = region, info, descriptors, name

    def lazy(self) -> LazyTensor:
        return LazyTensor(self.info, self.load)

    def load(self) -> torch.Tensor:
        if self.descriptors:
            raise UnsupportedFormatError(f"{self.name}: transformed (e.g. compressed) chunks are not supported",
                                         self.region.path)
        root = read_torch_zip(self.region, self.region.path).root
        if not isinstance(root, LazyTensor) or (root.info.shape, root.info.dtype) != (self.info.shape, self.info.dtype):
            raise UnreadableFileError(f"chunk of {quote(self.name)} does not hold a {self.info.dtype_name} tensor of "
                                      f"shape {self.info.shape}", self.region.path)
        return root.load()


def read_dcp(folder: Path) -> Loaded:
    meta_path = folder / METADATA_FILE
    if meta_path.stat().st_size > MAX_METADATA_BYTES:
        raise UnreadableFileError(f"{METADATA_FILE} is larger than {MAX_METADATA_BYTES} bytes", folder)
    with open(meta_path, "rb") as f:
        metadata, _ = restricted_load(f, meta_path)
    md = _attrs(metadata, "object", folder)
    entries = md.get("state_dict_metadata")
    locations = _locations(md.get("storage_data"), folder)
    planner = md.get("planner_data") if isinstance(md.get("planner_data"), dict) else {}
    if not isinstance(entries, dict):
        raise UnreadableFileError(f"{METADATA_FILE} has no state_dict_metadata", folder)
    root: dict[str, Any] = {}
    stood_in: set[str] = set()  # only from saved values: the metadata's own classes are the format
    for fqn, entry in entries.items():
        if not isinstance(fqn, str):
            raise UnreadableFileError(f"{METADATA_FILE} names an entry by a {type(fqn).__name__}, not a string", folder)
        value = _entry(folder, fqn, entry, locations, stood_in)
        _place(root, fqn, planner.get(fqn), value)
    version = md.get("version", "")
    version = version if isinstance(version, (str, int)) else ""
    return Loaded("dcp", root, tuple(sorted(stood_in)), {"dcp.version": str(version)})


def _locations(storage_data: Any, folder: Path) -> dict[tuple[str, tuple], tuple[Region, Any]]:
    """(fqn, chunk offsets) -> (where its bytes are, transform descriptors)."""
    if not isinstance(storage_data, dict):
        raise UnreadableFileError(f"{METADATA_FILE} has no storage_data", folder)
    out = {}
    base = folder.resolve()
    for index, info in storage_data.items():
        idx, where = _attrs(index, "storage index", folder), _attrs(info, "storage info", folder)
        rel, fqn = where.get("relative_path", ""), idx.get("fqn")
        if not isinstance(rel, str) or not isinstance(fqn, str):
            raise UnreadableFileError(f"{METADATA_FILE} has a malformed storage entry", folder)
        file = (base / rel).resolve()
        if base not in file.parents:
            raise UnreadableFileError(f"storage file {quote(rel)} lies outside the checkpoint folder", folder)
        offsets = _ints(idx.get("offset") or (), f"offsets of {quote(fqn)}", folder)
        start, length = where.get("offset", 0), where.get("length", 0)
        if not (type(start) is int and type(length) is int and start >= 0 and length >= 0):
            raise UnreadableFileError(f"storage of {quote(fqn)} has a malformed byte range", folder)
        if not file.is_file() or start + length > file.stat().st_size:
            raise UnreadableFileError(f"storage of {quote(fqn)} lies beyond the end of {quote(rel)} (or the file "
                                      "is missing)", folder)
        out[(fqn, offsets)] = (Region(file, start, length), where.get("transform_descriptors"))
    return out


def _ints(values: Any, what: str, folder: Path) -> tuple[int, ...]:
    if not isinstance(values, (list, tuple)) or len(values) > limits.MAX_TENSOR_DIMS or not all(
            type(v) is int and 0 <= v <= limits.MAX_TENSOR_DIM_SIZE for v in values):
        raise UnreadableFileError(f"{METADATA_FILE}: malformed {what}", folder)
    return tuple(values)


def _entry(folder: Path, fqn: str, entry: Any, locations, stood_in: set[str]) -> Any:
    kind = entry.qualname.rsplit(".", 1)[-1] if isinstance(entry, Placeholder) else ""
    if kind == "BytesStorageMetadata":
        region, _ = _find(locations, fqn, (), folder)
        value = read_torch_zip(region, region.path)  # DCP torch.saves non-tensor values
        stood_in.update(value.placeholders)
        return value.root
    if kind != "TensorStorageMetadata":
        raise UnsupportedFormatError(f"entry {quote(fqn)} has an unknown kind {quote(kind) if kind else type(entry).__name__}",
                                     folder)
    attrs = entry.attributes()
    dtype = _dtype(attrs.get("properties"))
    if not isinstance(dtype, torch.dtype):
        raise UnreadableFileError(f"entry {quote(fqn)} has no dtype", folder)
    shape = _ints(attrs.get("size") or (), f"size of {quote(fqn)}", folder)
    info = TensorInfo(shape, dtype, prod(shape) * dtype.itemsize)
    pieces = []
    chunks = attrs.get("chunks") or []
    if not isinstance(chunks, list):
        raise UnreadableFileError(f"entry {quote(fqn)} has malformed chunks", folder)
    for chunk in chunks:
        c = _attrs(chunk, "chunk", folder)
        offsets = _ints(c.get("offsets"), f"chunk offsets of {quote(fqn)}", folder)
        sizes = _ints(c.get("sizes"), f"chunk sizes of {quote(fqn)}", folder)
        region, descriptors = _find(locations, fqn, offsets, folder)
        piece = TensorInfo(sizes, dtype, prod(sizes) * dtype.itemsize)
        pieces.append((offsets, _Chunk(region, piece, descriptors, fqn).lazy()))
    if not pieces and info.numel:
        raise UnreadableFileError(f"entry {quote(fqn)} has no stored chunks", folder)
    if not pieces:
        return LazyTensor(info, lambda: torch.empty(shape, dtype=dtype))
    return lazy_from_chunks(info, pieces, (str(folder), fqn), fqn, str(folder))


def _find(locations, fqn: str, offsets: tuple, folder: Path):
    found = locations.get((fqn, offsets))
    if found is None and not offsets:
        found = next((v for (k, _o), v in locations.items() if k == fqn), None)
    if found is None:
        raise UnreadableFileError(f"no stored bytes for {quote(fqn)} at offsets {list(offsets)}", folder)
    return found


def _place(root: dict[str, Any], fqn: str, path: Any, value: Any) -> None:
    """Put a value back where the saved state_dict had it (nested dicts), else flat."""
    parts = list(path) if isinstance(path, (list, tuple)) and len(path) <= MAX_KEY_PARTS else []
    if not parts or not all(isinstance(p, str) for p in parts):
        root[fqn] = value
        return
    node = root
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            root[fqn] = value
            return
        node = child
    node[parts[-1]] = value
