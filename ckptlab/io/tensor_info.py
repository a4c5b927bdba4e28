"""TensorInfo: what ckptlab knows of a tensor without reading its bytes."""
from __future__ import annotations

from dataclasses import dataclass
from math import prod

import torch

__all__ = ["dtype_name", "TensorInfo"]


def dtype_name(dtype: torch.dtype) -> str:
    """``torch.float32`` -> ``"float32"`` (the spelling of the CLI's JSON)."""
    return str(dtype).removeprefix("torch.")


@dataclass(frozen=True)
class TensorInfo:
    """Shape, dtype and byte size of a tensor (immutable: a file's tensors of one shape and
    dtype share one)."""

    shape: tuple[int, ...]
    dtype: torch.dtype
    nbytes: int

    @property
    def numel(self) -> int:
        return prod(self.shape)

    @property
    def dtype_name(self) -> str:
        return dtype_name(self.dtype)

    @classmethod
    def of(cls, tensor: torch.Tensor) -> "TensorInfo":
        return cls(tuple(tensor.shape), tensor.dtype, tensor.numel() * tensor.element_size())
