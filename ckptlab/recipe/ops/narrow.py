"""``narrow``: keep ``length`` entries of one dim from ``start`` (``{narrow: {dim, start, length}}``).
The only op that drops values, so the only one a recipe cannot be inverted through."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ckptlab.errors import RecipeError
from ckptlab.recipe.ops.base import ConvertError, Op, Shape, dim_index, parse_dim, parse_fields

__all__ = ["Narrow"]


@dataclass(frozen=True)
class Narrow(Op):
    name = "narrow"
    invertible = False
    example = ({"dim": 0, "start": 1, "length": 2}, ((4, 3),))

    dim: int
    start: int
    length: int

    @classmethod
    def parse(cls, value: Any, where: str) -> "Narrow":
        got = parse_fields(value, where, ("dim", "start", "length"))
        for f in ("dim", "start", "length"):
            parse_dim(got[f], where)
        if got["start"] < 0 or got["length"] < 0:
            raise RecipeError(f"{where}: start and length must be >= 0")
        return cls(got["dim"], got["start"], got["length"])

    @property
    def arg(self) -> Any:
        return {"dim": self.dim, "start": self.start, "length": self.length}

    def shape_one(self, s: Shape) -> Shape:
        d = dim_index(self.dim, len(s), self.describe())
        if self.start + self.length > s[d]:
            raise ConvertError(f"{self.describe()}: dim {self.dim} of {s} has only {s[d]}")
        return s[:d] + (self.length,) + s[d + 1:]

    def apply_one(self, tensor: Any) -> Any:
        return tensor.narrow(self.dim, self.start, self.length)

    def inverse(self, in_shapes: list[Shape] | None = None) -> Op:
        raise ConvertError(f"{self.describe()}: drops part of the tensor")
