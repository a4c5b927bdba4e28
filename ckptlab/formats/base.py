"""What every format reader hands back: a tree of objects with lazy tensors as leaves.

A reader parses only headers (a pickle, a JSON header, an index); tensor bytes stay on
disk until ``LazyTensor.load()`` is called. ``containers`` then finds the tensor mapping
inside the tree and ``Checkpoint`` wraps it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Hashable

import torch

from ckptlab.info import TensorInfo


class LazyTensor:
    """A tensor in a file: its metadata now, its bytes on demand.

    ``storage_id`` identifies the underlying storage (and ``view`` the offset, shape and
    stride into it) so that tied or shared tensors can be recognised without reading them.
    """

    __slots__ = ("info", "_load", "storage_id", "view")

    def __init__(
        self,
        info: TensorInfo,
        load: Callable[[], torch.Tensor],
        storage_id: Hashable | None = None,
        view: tuple | None = None,
    ):
        self.info = info
        self._load = load
        self.storage_id = storage_id
        self.view = view

    def load(self) -> torch.Tensor:
        """Read the bytes and return a CPU tensor that owns its memory."""
        return self._load()

    def __repr__(self) -> str:
        return f"LazyTensor(shape={self.info.shape}, dtype={self.info.dtype_name})"


@dataclass
class Loaded:
    """The parsed file: its format name, its object tree, and what was stood in for."""

    format: str
    root: Any
    placeholders: tuple[str, ...] = ()
    metadata: dict[str, str] = field(default_factory=dict)
