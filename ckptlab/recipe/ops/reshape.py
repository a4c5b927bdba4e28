"""``reshape``: a new shape of the same elements (``{reshape: [4, -1]}``; one ``-1`` at most).
Undoing it needs the shape it started from, which the recipe text does not hold."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ckptlab.errors import RecipeError
from ckptlab.recipe.ops.base import ConvertError, Op, Shape, numel, parse_ints

__all__ = ["Reshape"]


@dataclass(frozen=True)
class Reshape(Op):
    name = "reshape"
    example = ([4, -1], ((2, 3, 4),))

    shape: tuple[int, ...]

    @classmethod
    def parse(cls, value: Any, where: str) -> "Reshape":
        shape = parse_ints(value, where, "the shape")
        if sum(d == -1 for d in shape) > 1 or any(d < -1 for d in shape):
            raise RecipeError(f"{where}: the shape may hold one -1 and sizes >= 0, got {list(shape)}")
        return cls(shape)

    @property
    def arg(self) -> Any:
        return self.shape

    def shape_one(self, s: Shape) -> Shape:
        n = numel(s)
        known = numel(d for d in self.shape if d != -1)
        if -1 in self.shape:
            if known == 0 or n % known:
                raise ConvertError(f"{self.describe()}: {s} ({n} elements) does not fit")
            return tuple(n // known if d == -1 else d for d in self.shape)
        if known != n:
            raise ConvertError(f"{self.describe()}: {s} has {n} elements, the shape {known}")
        return tuple(self.shape)

    def apply_one(self, tensor: Any) -> Any:
        return tensor.reshape(self.shape_one(tuple(tensor.shape)))

    def inverse(self, in_shapes: list[Shape] | None = None) -> "Reshape":
        if in_shapes is None:
            raise ConvertError("reshape: needs the shape it started from (give the source's shapes)")
        return Reshape(tuple(in_shapes[0]))
