"""``stack`` / ``unbind``: many equal tensors into one along a new dim, and back (per-expert
weights <-> one fused experts tensor); each undoes the other. An unbind gives as many tensors
as that dim is long, so its count is known from the shapes only."""
from __future__ import annotations

from dataclasses import dataclass

from ckptlab.recipe.ops.base import MANY_TO_ONE, ONE_TO_MANY, VARIABLE, ConvertError, DimOp, Shape, dim_index

__all__ = ["Stack", "Unbind"]


@dataclass(frozen=True)
class Stack(DimOp):
    name = "stack"
    arity = MANY_TO_ONE
    example = (1, ((2, 3), (2, 3), (2, 3)))

    def shape_all(self, shapes: list[Shape], parts: int | None) -> list[Shape]:
        if not shapes:
            raise ConvertError(f"{self.describe()}: no tensors to stack")
        first = shapes[0]
        for s in shapes[1:]:
            if s != first:
                raise ConvertError(f"{self.describe()}: {first} and {s} differ (stack needs equal shapes)")
        d = dim_index(self.dim, len(first), self.describe(), extra=1)
        return [first[:d] + (len(shapes),) + first[d:]]

    def apply_all(self, tensors: list, parts: int | None) -> list:
        import torch

        return [torch.stack(tensors, self.dim)]

    def inverse(self, in_shapes: list[Shape] | None = None) -> "Unbind":
        return Unbind(self.dim)


@dataclass(frozen=True)
class Unbind(DimOp):
    name = "unbind"
    arity = ONE_TO_MANY
    example = (0, ((3, 2),))

    def outputs(self, parts: int | None, where: str) -> int:
        return VARIABLE

    def shape_all(self, shapes: list[Shape], parts: int | None) -> list[Shape]:
        s = self.single(shapes)
        d = dim_index(self.dim, len(s), self.describe())
        return [s[:d] + s[d + 1:]] * s[d]

    def apply_all(self, tensors: list, parts: int | None) -> list:
        return list(tensors[0].unbind(self.dim))

    def inverse(self, in_shapes: list[Shape] | None = None) -> Stack:
        return Stack(self.dim)
