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

from ckptlab.errors import UnreadableFileError, UnsupportedFormatError
from ckptlab.formats.base import LazyTensor, Loaded
from ckptlab.formats.placeholder import Placeholder
from ckptlab.formats.region import Region
from ckptlab.formats.storage import lazy_from_chunks
from ckptlab.formats.torch_zip import read_torch_zip
from ckptlab.formats.unpickler import restricted_load
from ckptlab.info import TensorInfo

METADATA_FILE = ".metadata"
MAX_METADATA_BYTES = 512 * 2**20


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
        if not isinstance(root, LazyTensor) or root.info.shape != self.info.shape:
            raise UnreadableFileError(f"chunk of {self.name} does not hold a tensor of shape {self.info.shape}",
                                      self.region.path)
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
        value = _entry(folder, str(fqn), entry, locations, stood_in)
        _place(root, str(fqn), planner.get(fqn), value)
    return Loaded("dcp", root, tuple(sorted(stood_in)), {"dcp.version": str(md.get("version", ""))})


def _locations(storage_data: Any, folder: Path) -> dict[tuple[str, tuple], tuple[Region, Any]]:
    """(fqn, chunk offsets) -> (where its bytes are, transform descriptors)."""
    if not isinstance(storage_data, dict):
        raise UnreadableFileError(f"{METADATA_FILE} has no storage_data", folder)
    out = {}
    for index, info in storage_data.items():
        idx, where = _attrs(index, "storage index", folder), _attrs(info, "storage info", folder)
        rel = str(where.get("relative_path", ""))
        file = (folder / rel).resolve()
        if folder.resolve() not in file.parents:
            raise UnreadableFileError(f"storage file {rel!r} lies outside the checkpoint folder", folder)
        offsets = tuple(idx.get("offset") or ())
        region = Region(file, int(where.get("offset", 0)), int(where.get("length", 0)))
        out[(str(idx.get("fqn")), offsets)] = (region, where.get("transform_descriptors"))
    return out


def _entry(folder: Path, fqn: str, entry: Any, locations, stood_in: set[str]) -> Any:
    kind = entry.qualname.rsplit(".", 1)[-1] if isinstance(entry, Placeholder) else ""
    if kind == "BytesStorageMetadata":
        region, _ = _find(locations, fqn, (), folder)
        value = read_torch_zip(region, region.path)  # DCP torch.saves non-tensor values
        stood_in.update(value.placeholders)
        return value.root
    if kind != "TensorStorageMetadata":
        raise UnsupportedFormatError(f"entry {fqn!r} has an unknown kind {kind or type(entry).__name__}", folder)
    attrs = entry.attributes()
    dtype = _dtype(attrs.get("properties"))
    shape = tuple(int(s) for s in attrs.get("size") or ())
    if not isinstance(dtype, torch.dtype):
        raise UnreadableFileError(f"entry {fqn!r} has no dtype", folder)
    info = TensorInfo(shape, dtype, prod(shape) * dtype.itemsize)
    pieces = []
    for chunk in attrs.get("chunks") or []:
        c = _attrs(chunk, "chunk", folder)
        offsets, sizes = tuple(int(o) for o in c["offsets"]), tuple(int(s) for s in c["sizes"])
        region, descriptors = _find(locations, fqn, offsets, folder)
        piece = TensorInfo(sizes, dtype, prod(sizes) * dtype.itemsize)
        pieces.append((offsets, _Chunk(region, piece, descriptors, fqn).lazy()))
    if not pieces and info.numel:
        raise UnreadableFileError(f"entry {fqn!r} has no stored chunks", folder)
    if not pieces:
        return LazyTensor(info, lambda: torch.empty(shape, dtype=dtype))
    return lazy_from_chunks(info, pieces, (str(folder), fqn))


def _find(locations, fqn: str, offsets: tuple, folder: Path):
    found = locations.get((fqn, offsets))
    if found is None and not offsets:
        found = next((v for (k, _o), v in locations.items() if k == fqn), None)
    if found is None:
        raise UnreadableFileError(f"no stored bytes for {fqn!r} at offsets {list(offsets)}", folder)
    return found


def _place(root: dict[str, Any], fqn: str, path: Any, value: Any) -> None:
    """Put a value back where the saved state_dict had it (nested dicts), else flat."""
    parts = list(path) if isinstance(path, (list, tuple)) else []
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
