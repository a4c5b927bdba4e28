"""Sharded sets: ``*.index.json`` with a ``weight_map`` of key -> shard file.

Hugging Face writes ``model.safetensors.index.json`` and ``pytorch_model.bin.index.json``
this way. Each shard is opened with its own (lazy) reader; the set reads as one flat
mapping in ``weight_map`` order.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ckptlab.errors import UnreadableFileError, quote
from ckptlab.io import limits
from ckptlab.io.formats.base import LazyTensor, Loaded, TensorTable

__all__ = ["MAX_INDEX_BYTES", "INDEX_SUFFIX", "read_index"]

MAX_INDEX_BYTES = limits.MAX_INDEX_BYTES
INDEX_SUFFIX = ".index.json"


def read_index(path: Path, read_file) -> Loaded:
    """``read_file(shard_path) -> Loaded`` opens one shard (sniffing its format)."""
    weight_map, metadata = _parse_index(path)
    limits.check_keys(weight_map, path)
    shards: dict[str, dict[str, Any] | TensorTable] = {}
    formats: set[str] = set()
    placeholders: set[str] = set()
    for name in dict.fromkeys(weight_map.values()):
        shard_path = _shard_path(path, name)
        if shard_path.name.endswith(INDEX_SUFFIX) and limits.MAX_INDEX_DEPTH <= 1:
            # an index naming an index (itself, or one naming it back) would be read forever
            raise limits.exceeded(f"index indirection (shard {quote(name)} is an index itself)", 2,
                                  "MAX_INDEX_DEPTH", path)
        loaded = read_file(shard_path)
        if not isinstance(loaded.root, (dict, TensorTable)):
            raise UnreadableFileError(f"shard {quote(name)} does not hold a flat mapping of tensors", path)
        shards[name] = loaded.root
        formats.add(loaded.format)
        placeholders.update(loaded.placeholders)
    root = _as_table(weight_map, shards) if all(type(s) is TensorTable for s in shards.values()) else None
    if root is None:
        root = {}
        for key, name in weight_map.items():
            tensor = shards[name].get(key)
            if not isinstance(tensor, LazyTensor):
                raise _missing(key, name, path)
            root[key] = tensor
    elif len(root) < len(weight_map):
        key = next(k for k in weight_map if k not in root)
        raise _missing(key, weight_map[key], path)
    kind = "sharded-safetensors" if formats == {"safetensors"} else "sharded-torch"
    metadata["shards"] = str(len(shards))
    return Loaded(kind, root, tuple(sorted(placeholders)), metadata)


def _as_table(weight_map: dict[str, str], shards: dict[str, TensorTable]) -> TensorTable:
    """Shards that are all tables (safetensors) make one table: no tensor object per key until
    one is asked for. Keys a shard lacks are left out (the caller names the first)."""
    infos = {key: info for key, name in weight_map.items() if (info := shards[name].infos.get(key)) is not None}
    return TensorTable(infos, lambda key, _info: shards[weight_map[key]][key])


def _missing(key: str, name: str, path: Path) -> UnreadableFileError:
    return UnreadableFileError(f"index lists {quote(key)} in {quote(name)}, but that shard has no such tensor", path)


def _parse_index(path: Path) -> tuple[dict[str, str], dict[str, str]]:
    if path.stat().st_size > limits.MAX_INDEX_BYTES:
        raise limits.exceeded("index file bytes", f"{path.stat().st_size:,}", "MAX_INDEX_BYTES", path)
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise UnreadableFileError(f"index is not valid JSON ({str(exc)[:100]})", path) from None
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict) or not weight_map:
        raise UnreadableFileError("index has no 'weight_map' of tensor name -> shard file", path)
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in weight_map.items()):
        raise UnreadableFileError("index 'weight_map' must map names to shard file names", path)
    meta = index.get("metadata") or {}
    metadata = {str(k): v if isinstance(v, str) else json.dumps(v)[:1000] for k, v in meta.items()} \
        if isinstance(meta, dict) else {}
    return weight_map, metadata


def _shard_path(index_path: Path, name: str) -> Path:
    """Shards live beside the index; a name that climbs out of that folder is refused."""
    folder = index_path.parent.resolve()
    shard = (folder / name).resolve()
    if Path(name).is_absolute() or folder not in shard.parents:
        raise UnreadableFileError(f"shard {quote(name)} lies outside the index's folder", index_path)
    if not shard.is_file():
        raise UnreadableFileError(f"shard {quote(name)} listed in the index does not exist", index_path)
    return shard
