"""Checkpoint: a lazy, read-only view of the tensors of one file, shard set or object.

Opening reads headers only. ``keys()`` and ``info()`` never touch tensor bytes;
``tensor(key)`` reads exactly one tensor. The same class wraps in-memory mappings and
modules so that every other part of ckptlab sees one interface.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ckptlab.errors import CheckpointError
from ckptlab.io.formats.base import LazyTensor, TensorTable
from ckptlab.io.tensor_info import TensorInfo


__all__ = ["OtherEntry", "Checkpoint"]


@dataclass(frozen=True)
class Candidate:
    """A place in the file that holds tensors: its dotted path, tensor count and bytes."""

    path: str
    tensors: int
    nbytes: int


@dataclass(frozen=True)
class OtherEntry:
    """A non-tensor entry beside the tensors (epoch, hyper-parameters, optimizer, ...)."""

    key: str
    type: str


class Checkpoint:
    """Tensors by key, with where they came from.

    Attributes: ``path``, ``format`` (e.g. ``"torch-zip"``), ``container`` (dotted path of
    the chosen tensor mapping, ``""`` at top level), ``candidates`` (every container found),
    ``other`` (non-tensor entries), ``placeholders`` (classes the restricted unpickler stood
    in for), ``metadata`` (string metadata of the file, e.g. safetensors' header),
    ``extras`` (the plain-Python values of ``other`` that can be written back: numbers,
    strings, lists/dicts of them and tensors; never a placeholder object), ``beside`` (every
    entry beside the tensors as read, ``(key path, value)``: what ``keep_extras`` writes back).
    """

    def __init__(
        self,
        tensors: Mapping[str, LazyTensor],
        *,
        path: str | Path | None = None,
        format: str = "memory",
        container: str = "",
        candidates: tuple[Candidate, ...] = (),
        other: tuple[OtherEntry, ...] = (),
        placeholders: tuple[str, ...] = (),
        metadata: Mapping[str, str] | None = None,
        extras: Mapping[str, Any] | None = None,
        beside: tuple[tuple[tuple, Any], ...] | None = None,
    ):
        # a reader's TensorTable is kept as it is: its LazyTensors are made when first asked for
        self._tensors = tensors if type(tensors) is TensorTable else dict(tensors)
        self._infos = tensors.infos if type(tensors) is TensorTable else None  # info() without a LazyTensor
        self.path = str(path) if path is not None else None
        self.format = format
        self.container = container
        self.candidates = tuple(candidates)
        self.other = tuple(other)
        self.placeholders = tuple(placeholders)
        self.metadata = dict(metadata or {})
        self.extras = dict(extras or {})
        self.beside = tuple(beside) if beside is not None else tuple(((k,), v) for k, v in self.extras.items())

    # -- construction -------------------------------------------------------------------
    @classmethod
    def from_mapping(cls, mapping: Mapping[str, torch.Tensor], name: str = "<memory>") -> "Checkpoint":
        """Wrap an in-memory state_dict; non-tensor values become ``other`` entries."""
        tensors, other, extras = {}, [], {}
        for key, value in mapping.items():
            if isinstance(value, torch.Tensor):
                tensors[str(key)] = _eager(value)
            else:
                other.append(OtherEntry(str(key), type(value).__name__))
                extras[str(key)] = value
        return cls(tensors, format="memory", other=tuple(other), metadata={"name": name}, extras=extras)

    @classmethod
    def from_module(cls, module: torch.nn.Module) -> "Checkpoint":
        """Wrap a module's state_dict (keep_vars, so tied parameters stay recognisable)."""
        sd = module.state_dict(keep_vars=True)
        ck = cls.from_mapping(sd, name=type(module).__name__)
        ck.format = "module"
        ck.module = module  # the model itself, for what needs it whole (ckptlab.models.proof)
        return ck

    def with_aliases(self, aliases: Mapping[str, str], why: str = "") -> "Checkpoint":
        """A copy where each new key stands for an existing one (the same lazy tensor, so the
        pair reads as tied); ``restored_ties`` says which and ``why`` (for the rows' reasons)."""
        copy = Checkpoint.__new__(Checkpoint)
        copy.__dict__.update(self.__dict__)
        copy._tensors = {**self._tensors, **{new: self._tensors[old] for new, old in aliases.items()}}
        copy._infos = None
        copy.restored_ties = {**getattr(self, "restored_ties", {}), **{new: (old, why) for new, old in aliases.items()}}
        return copy

    # -- the mapping --------------------------------------------------------------------
    def keys(self) -> list[str]:
        return list(self._tensors)

    def info(self, key: str) -> TensorInfo:
        infos = self._infos
        if infos is not None:
            try:
                return infos[key]
            except KeyError:
                raise CheckpointError(f"no tensor named {key!r}", self.path) from None
        return self._ref(key).info

    def tensor(self, key: str) -> torch.Tensor:
        """Read one tensor (CPU, owning its memory)."""
        return self._ref(key).load()

    def lazy(self, key: str) -> LazyTensor:
        return self._ref(key)

    def __contains__(self, key: object) -> bool:
        return key in self._tensors

    def __len__(self) -> int:
        return len(self._tensors)

    def __iter__(self) -> Iterator[str]:
        return iter(self._tensors)

    @property
    def total_params(self) -> int:
        return sum(self.info(key).numel for key in self._tensors)

    @property
    def total_bytes(self) -> int:
        return sum(self.info(key).nbytes for key in self._tensors)

    def aliases(self) -> list[tuple[str, ...]]:
        """Groups of keys that are the same tensor in the file (tied weights)."""
        groups: dict[tuple, list[str]] = {}
        for key, ref in self._tensors.items():
            # a tensor with no elements shares no bytes: never tied (else every empty
            # tensor, all at data_ptr 0, would be one group of thousands)
            if ref.storage_id is not None and ref.view is not None and ref.info.nbytes:
                groups.setdefault((ref.storage_id, ref.view), []).append(key)
        return [tuple(keys) for keys in groups.values() if len(keys) > 1]

    @property
    def name(self) -> str:
        return self.path or self.metadata.get("name", "<memory>")

    def _ref(self, key: str) -> LazyTensor:
        try:
            return self._tensors[key]
        except KeyError:
            raise CheckpointError(f"no tensor named {key!r}", self.path) from None

    def __repr__(self) -> str:
        where = f" container={self.container!r}" if self.container else ""
        return f"Checkpoint({self.name!r}, format={self.format!r}{where}, tensors={len(self)})"


def _eager(tensor: torch.Tensor) -> LazyTensor:
    """A LazyTensor over a tensor already in memory (detached; meta tensors have no bytes)."""
    t = tensor.detach()

    def load() -> torch.Tensor:
        if t.device.type == "meta":
            raise CheckpointError("tensor lives on the meta device and has no values")
        return t.cpu()

    storage_id = None
    view = None
    if t.device.type != "meta" and t.numel():  # empty tensors share nothing (all at data_ptr 0)
        storage_id = ("mem", t.untyped_storage().data_ptr())
        view = (t.storage_offset(), tuple(t.shape), tuple(t.stride()), t.dtype)
    return LazyTensor(TensorInfo.of(t), load, storage_id, view)
