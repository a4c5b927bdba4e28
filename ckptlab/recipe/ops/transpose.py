"""``transpose``: swap two dims (``{transpose: [a, b]}``), or bare ``transpose`` for a 2-D
``.t()`` (GPT-2's Conv1D weights are stored as the transpose of an ``nn.Linear``'s)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ckptlab.errors import RecipeError
from ckptlab.recipe.ops.base import ConvertError, Op, Shape, dim_index, parse_ints

__all__ = ["Transpose"]


@dataclass(frozen=True)
class Transpose(Op):
    name = "transpose"
    bare = True
    example = ([0, 2], ((2, 3, 4),))

    dims: tuple[int, int] | None = None  # None: the bare 2-D form

    @classmethod
    def parse(cls, value: Any, where: str) -> "Transpose":
        if value is None:
            return cls()
        dims = parse_ints(value, where, "the dims")
        if len(dims) != 2:
            raise RecipeError(f"{where}: expected two dims [a, b], got {len(dims)}")
        return cls(dims)

    @property
    def arg(self) -> Any:
        return self.dims

    def shape_one(self, s: Shape) -> Shape:
        if self.dims is None:
            if len(s) != 2:
                raise ConvertError(f"transpose: needs a 2-D tensor, got {s} (give the dims: {{transpose: [a, b]}})")
            return (s[1], s[0])
        a, b = (dim_index(d, len(s), self.describe()) for d in self.dims)
        out = list(s)
        out[a], out[b] = s[b], s[a]
        return tuple(out)

    def apply_one(self, tensor: Any) -> Any:
        return tensor.t() if self.dims is None else tensor.transpose(*self.dims)

    def inverse(self, in_shapes: list[Shape] | None = None) -> "Transpose":
        return self
