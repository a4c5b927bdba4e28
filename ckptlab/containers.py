"""Find the tensor mapping inside a nested checkpoint object.

TEMPORARY bootstrap: picks the dict holding the most tensors directly; the full version
(candidates, dotted container choice, whole pickled modules) replaces it.
"""
from __future__ import annotations

from dataclasses import dataclass

from ckptlab.checkpoint import Checkpoint, OtherEntry
from ckptlab.errors import ContainerError
from ckptlab.formats.base import LazyTensor, Loaded


@dataclass(frozen=True)
class Candidate:
    path: str
    tensors: int
    nbytes: int


def _walk(obj, prefix=""):
    if isinstance(obj, dict):
        n = sum(isinstance(v, LazyTensor) for v in obj.values())
        nbytes = sum(v.info.nbytes for v in obj.values() if isinstance(v, LazyTensor))
        if n:
            yield Candidate(prefix, n, nbytes), obj
        for k, v in obj.items():
            yield from _walk(v, f"{prefix}.{k}" if prefix else str(k))


def to_checkpoint(loaded: Loaded, path, container: str | None) -> Checkpoint:
    found = list(_walk(loaded.root))
    if not found:
        raise ContainerError("no tensors found", path)
    found.sort(key=lambda cd: -cd[0].nbytes)
    if container is not None:
        match = [cd for cd in found if cd[0].path == container]
        if not match:
            raise ContainerError(f"no tensor mapping at {container!r}", path)
        cand, mapping = match[0]
    else:
        cand, mapping = found[0]
    tensors = {str(k): v for k, v in mapping.items() if isinstance(v, LazyTensor)}
    other = tuple(OtherEntry(str(k), type(v).__name__) for k, v in mapping.items() if not isinstance(v, LazyTensor))
    return Checkpoint(tensors, path=path, format=loaded.format, container=cand.path,
                      candidates=tuple(c for c, _ in found), other=other)
