"""Streaming, atomic checkpoint writers: ``.safetensors`` and torch's zip format (``.pt``/``.pth``).

Every output shape and dtype is known before a tensor is read, so the headers are written
first and the tensors follow one at a time: memory holds one tensor, never the checkpoint.
Output goes to temporary files renamed into place at the end (``atomic``). Tensors whose
bytes already lie in a file (``FileSpan``) are copied file to file, never loaded.

Modules: ``entries`` (what to write), ``atomic``, ``progress``, ``shards``, ``sink``
(positional writes and file-to-file copies), ``staging`` (strided tensors put in C order in
one reused buffer), ``safetensors``, ``torchzip`` + ``zipout`` + ``torch_pickle`` (.pt/.pth).
"""
from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ckptlab.errors import MergeError
from ckptlab.io.writers.atomic import AtomicFiles
from ckptlab.io.writers.entries import FileSpan, OutTensor, group_tensors
from ckptlab.io.writers.progress import ByteProgress, Progress
from ckptlab.io.writers.safetensors import SAFETENSORS_DTYPES, write_safetensors
from ckptlab.io.writers.shards import index_path, shard_names, split, write_index
from ckptlab.io.writers.torchzip import write_torch_zip

SUFFIXES = (".safetensors", ".pt", ".pth", ".bin", ".ckpt")

__all__ = ["write", "write_tensors", "OutTensor", "FileSpan", "Progress", "SUFFIXES", "SAFETENSORS_DTYPES"]


def write(plan: Any, out_path: str | Path, progress: Progress | None = None,
          max_shard_size: int | None = None, exclusive: bool = False) -> list[Path]:
    """Write a merge plan (anything with ``outputs()``, ``metadata()`` and ``wrap``).

    safetensors gets the plan's string metadata; .pt gets its object tree (``wrap``).
    ``exclusive``: never replace an existing file (see ``write_tensors``).
    """
    if Path(out_path).suffix.lower() == ".safetensors":
        return write_tensors(plan.outputs(), out_path, metadata=plan.metadata(), progress=progress,
                             max_shard_size=max_shard_size, exclusive=exclusive)
    return write_tensors(plan.outputs(), out_path, wrap=plan.wrap, progress=progress,
                         max_shard_size=max_shard_size, exclusive=exclusive)


def write_tensors(
    tensors: Sequence[OutTensor],
    out_path: str | Path,
    *,
    metadata: Mapping[str, str] | None = None,
    wrap: Callable[[dict[str, Any]], Any] | None = None,
    progress: Progress | None = None,
    max_shard_size: int | None = None,
    exclusive: bool = False,
) -> list[Path]:
    """Write ``tensors`` to ``out_path`` (format by suffix); returns the files written.

    ``wrap`` (``.pt`` only) builds the saved object around the tensor mapping, e.g. a
    Lightning-style ``{"state_dict": ..., "epoch": ...}``. ``max_shard_size`` (bytes) splits
    the output into ``name-0000i-of-0000N.ext`` files plus ``name.ext.index.json``.
    Tied entries (equal ``share``) are one storage in .pt and copies in safetensors, their
    groups recorded in the metadata under ``ckptlab.aliases``. ``exclusive``: an existing
    file (even one another writer made while this one ran) is never replaced; the write
    fails in one line instead, leaving nothing.
    """
    out_path = Path(out_path)
    suffix = out_path.suffix.lower()
    if suffix not in SUFFIXES:
        got = f"not {suffix!r}" if suffix else "it has no suffix"
        raise MergeError(f"output must end in {', '.join(SUFFIXES)}; {got}", out_path)
    if sys.byteorder != "little":
        raise MergeError("writing needs a little-endian machine", out_path)
    is_safetensors = suffix == ".safetensors"
    groups = group_tensors(tensors, by_itemsize=is_safetensors)
    metadata = dict(metadata or {})
    aliases = [list(g.keys) for g in groups if len(g.keys) > 1]
    if aliases:
        metadata["ckptlab.aliases"] = json.dumps(aliases)
    shards = split(groups, max_shard_size)
    if wrap is not None and len(shards) > 1:
        raise MergeError("a nested output or kept extras cannot be split into shards; drop max_shard_size", out_path)
    names = shard_names(out_path, len(shards))
    copies = (lambda g: len(g.keys)) if is_safetensors else (lambda g: 1)
    bar = ByteProgress(progress, sum(g.info.nbytes * copies(g) for g in groups))
    finals = [out_path.with_name(n) for n in names] + ([index_path(out_path)] if len(shards) > 1 else [])
    with AtomicFiles(finals, exclusive=exclusive) as tmp:
        for shard, tmp_path in zip(shards, tmp.paths):
            with open(tmp_path, "r+b") as f:  # mkstemp made it empty; "wb" would truncate, and ext4 then flushes on close
                if is_safetensors:
                    write_safetensors(f, shard, metadata, bar)
                else:
                    write_torch_zip(f, shard, wrap, Path(tmp.finals[0]).stem, bar)
        if len(shards) > 1:
            write_index(tmp.paths[-1], shards, names, groups)
    return [Path(p) for p in tmp.finals]
