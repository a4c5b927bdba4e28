"""``permute``: reorder every dim (``{permute: [2, 0, 1]}``)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ckptlab.errors import RecipeError
from ckptlab.recipe.ops.base import ConvertError, Op, Shape, parse_ints

__all__ = ["Permute"]


@dataclass(frozen=True)
class Permute(Op):
    name = "permute"
    example = ([2, 0, 1], ((2, 3, 4),))

    dims: tuple[int, ...]

    @classmethod
    def parse(cls, value: Any, where: str) -> "Permute":
        dims = parse_ints(value, where, "the dims")
        n = len(dims)
        if sorted(d % n for d in dims) != list(range(n)) or any(not -n <= d < n for d in dims):
            raise RecipeError(f"{where}: {list(dims)} is not a permutation of the dims")
        return cls(dims)

    @property
    def arg(self) -> Any:
        return self.dims

    def shape_one(self, s: Shape) -> Shape:
        if len(self.dims) != len(s):
            raise ConvertError(f"{self.describe()}: names {len(self.dims)} dims, the tensor {s} has {len(s)}")
        return tuple(s[d % len(s)] for d in self.dims)

    def apply_one(self, tensor: Any) -> Any:
        return tensor.permute(*self.dims)

    def inverse(self, in_shapes: list[Shape] | None = None) -> "Permute":
        back = [0] * len(self.dims)
        for i, d in enumerate(self.dims):
            back[d % len(self.dims)] = i
        return Permute(tuple(back))
