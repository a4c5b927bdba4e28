"""Splitting an output into numbered shards plus a ``*.index.json`` (the Hugging Face layout)."""
from __future__ import annotations

import json
from pathlib import Path

from ckptlab.io.writers.entries import Group

__all__ = ["split", "shard_names", "index_path", "write_index"]


def split(groups: list[Group], max_shard_size: int | None) -> list[list[Group]]:
    """Fill shards greedily in order; a tensor bigger than the limit gets a shard alone."""
    if not max_shard_size:
        return [groups]
    shards: list[list[Group]] = [[]]
    size = 0
    for g in groups:
        nbytes = g.info.nbytes * len(g.keys)
        if shards[-1] and size + nbytes > max_shard_size:
            shards.append([])
            size = 0
        shards[-1].append(g)
        size += nbytes
    return shards


def shard_names(out_path: Path, count: int) -> list[str]:
    """``model-00001-of-00003.pt``..., or just the output's name when there is one shard."""
    if count == 1:
        return [out_path.name]
    return [f"{out_path.stem}-{i:05d}-of-{count:05d}{out_path.suffix}" for i in range(1, count + 1)]


def index_path(out_path: Path) -> Path:
    return out_path.with_name(out_path.name + ".index.json")


def write_index(path: str, shards: list[list[Group]], names: list[str], groups: list[Group]) -> None:
    """Every key's shard file, and the total tensor bytes."""
    weight_map = {key: name for shard, name in zip(shards, names) for g in shard for key in g.keys}
    total = sum(g.info.nbytes * len(g.keys) for g in groups)
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
