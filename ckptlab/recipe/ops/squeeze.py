"""``squeeze`` / ``unsqueeze``: drop or add a dim of size 1 (``{squeeze: 0}``); each undoes the other."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ckptlab.recipe.ops.base import ConvertError, DimOp, Shape, dim_index

__all__ = ["Squeeze", "Unsqueeze"]


@dataclass(frozen=True)
class Squeeze(DimOp):
    name = "squeeze"
    example = (1, ((3, 1, 2),))

    def shape_one(self, s: Shape) -> Shape:
        d = dim_index(self.dim, len(s), self.describe())
        if s[d] != 1:
            raise ConvertError(f"{self.describe()}: dim {self.dim} of {s} is {s[d]}, not 1")
        return s[:d] + s[d + 1:]

    def apply_one(self, tensor: Any) -> Any:
        return tensor.squeeze(self.dim)

    def inverse(self, in_shapes: list[Shape] | None = None) -> "Unsqueeze":
        return Unsqueeze(self.dim)


@dataclass(frozen=True)
class Unsqueeze(DimOp):
    name = "unsqueeze"
    example = (-1, ((3, 2),))

    def shape_one(self, s: Shape) -> Shape:
        d = dim_index(self.dim, len(s), self.describe(), extra=1)
        return s[:d] + (1,) + s[d:]

    def apply_one(self, tensor: Any) -> Any:
        return tensor.unsqueeze(self.dim)

    def inverse(self, in_shapes: list[Shape] | None = None) -> Squeeze:
        return Squeeze(self.dim)
