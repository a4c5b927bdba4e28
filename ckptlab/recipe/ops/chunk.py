"""``chunk`` / ``split`` / ``cat``: cut one tensor along a dim into equal parts or given sizes,
and join many back (timm's fused ``qkv`` <-> HF's q, k, v). One module, because each is the
other's inverse: ``cat`` undoes both, and is undone by a ``chunk`` or, for unequal parts, a ``split``.

A bare ``{chunk: d}`` cuts into as many parts as the entry names targets (``parts``, given by
the conversion); ``{chunk: {dim: d, parts: n}}`` says it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ckptlab.errors import RecipeError
from ckptlab.recipe.ops.base import (
    MANY_TO_ONE, ONE_TO_MANY, ConvertError, DimOp, Op, Shape, dim_index, is_int, parse_dim, parse_fields,
    parse_ints,
)
from ckptlab.recipe.parsing import _type_name

__all__ = ["Chunk", "Split", "Cat"]


@dataclass(frozen=True)
class Chunk(Op):
    name = "chunk"
    arity = ONE_TO_MANY
    example = ({"dim": 1, "parts": 3}, ((2, 6),))

    dim: int
    parts: int | None = None  # None: as many as the conversion's targets

    @classmethod
    def parse(cls, value: Any, where: str) -> "Chunk":
        if is_int(value):
            return cls(value)
        if not isinstance(value, dict):
            raise RecipeError(f"{where}: expected an integer dim or {{dim: ..., parts: ...}}, got {_type_name(value)}")
        got = parse_fields(value, where, ("dim", "parts"))
        parse_dim(got["dim"], where)
        if not is_int(got["parts"]) or got["parts"] < 1:
            raise RecipeError(f"{where}: parts must be a positive integer, got {got['parts']!r}")
        return cls(got["dim"], got["parts"])

    @property
    def arg(self) -> Any:
        return self.dim if self.parts is None else {"dim": self.dim, "parts": self.parts}

    def n_parts(self, default: int | None) -> int | None:
        return default if self.parts is None else self.parts

    def outputs(self, parts: int | None, where: str) -> int:
        n = self.n_parts(parts)
        if n is None:
            raise RecipeError(f"{where}: chunk needs {{chunk: {{dim: d, parts: n}}}} here "
                              "(the number of targets does not say how many parts)")
        return n

    def shape_all(self, shapes: list[Shape], parts: int | None) -> list[Shape]:
        s = self.single(shapes)
        n = self.n_parts(parts)
        if n is None or n < 1:
            raise ConvertError(f"{self.describe()}: the number of parts is unknown")
        d = dim_index(self.dim, len(s), self.describe())
        if s[d] % n:
            raise ConvertError(f"{self.describe()}: dim {self.dim} of {s} ({s[d]}) does not split into {n} equal parts")
        return [s[:d] + (s[d] // n,) + s[d + 1:]] * n

    def apply_all(self, tensors: list, parts: int | None) -> list:
        return list(tensors[0].chunk(self.n_parts(parts), self.dim))

    def inverse(self, in_shapes: list[Shape] | None = None) -> "Cat":
        return Cat(self.dim)


@dataclass(frozen=True)
class Split(Op):
    """``{split: {dim, sizes}}``, or ``{split: {dim, ratio}}``: parts in proportion (a fused qkv of
    grouped-query attention split ``[heads, kv_heads, kv_heads]`` without knowing the head size)."""

    name = "split"
    arity = ONE_TO_MANY
    example = ({"dim": 0, "sizes": [4, 2]}, ((6, 3),))

    dim: int
    sizes: tuple[int, ...] = ()
    ratio: tuple[int, ...] = ()

    @classmethod
    def parse(cls, value: Any, where: str) -> "Split":
        if isinstance(value, dict) and "ratio" in value and "sizes" not in value:
            got = parse_fields(value, where, ("dim", "ratio"))
            parse_dim(got["dim"], where)
            ratio = parse_ints(got["ratio"], where, "ratio")
            if not ratio or any(r < 1 for r in ratio):
                raise RecipeError(f"{where}: ratio must be a non-empty list of integers >= 1")
            return cls(got["dim"], ratio=ratio)
        got = parse_fields(value, where, ("dim", "sizes"))
        parse_dim(got["dim"], where)
        sizes = parse_ints(got["sizes"], where, "sizes")
        if not sizes or any(s < 0 for s in sizes):
            raise RecipeError(f"{where}: sizes must be a non-empty list of sizes >= 0")
        return cls(got["dim"], sizes)

    @property
    def arg(self) -> Any:
        return {"dim": self.dim, "ratio": self.ratio} if self.ratio else {"dim": self.dim, "sizes": self.sizes}

    def outputs(self, parts: int | None, where: str) -> int:
        return len(self.ratio or self.sizes)

    def sizes_of(self, s: Shape) -> tuple[int, ...]:
        """The sizes along ``dim`` of a tensor of shape ``s``: as given, or from the ratio."""
        if not self.ratio:
            return self.sizes
        d = dim_index(self.dim, len(s), self.describe())
        if s[d] % sum(self.ratio):
            raise ConvertError(f"{self.describe()}: dim {self.dim} of {s} ({s[d]}) does not split "
                               f"in the ratio {':'.join(map(str, self.ratio))}")
        return tuple(s[d] // sum(self.ratio) * r for r in self.ratio)

    def shape_all(self, shapes: list[Shape], parts: int | None) -> list[Shape]:
        s = self.single(shapes)
        d = dim_index(self.dim, len(s), self.describe())
        sizes = self.sizes_of(s)
        if sum(sizes) != s[d]:
            raise ConvertError(f"{self.describe()}: sizes add up to {sum(sizes)}, dim {self.dim} of {s} is {s[d]}")
        return [s[:d] + (n,) + s[d + 1:] for n in sizes]

    def apply_all(self, tensors: list, parts: int | None) -> list:
        return list(tensors[0].split(list(self.sizes_of(tuple(tensors[0].shape))), self.dim))

    def inverse(self, in_shapes: list[Shape] | None = None) -> "Cat":
        return Cat(self.dim)


@dataclass(frozen=True)
class Cat(DimOp):
    name = "cat"
    arity = MANY_TO_ONE
    example = (0, ((2, 3), (4, 3)))

    def shape_all(self, shapes: list[Shape], parts: int | None) -> list[Shape]:
        if not shapes:
            raise ConvertError(f"{self.describe()}: no tensors to join")
        first = shapes[0]
        d = dim_index(self.dim, len(first), self.describe())
        for s in shapes[1:]:
            if len(s) != len(first) or s[:d] + s[d + 1:] != first[:d] + first[d + 1:]:
                raise ConvertError(f"{self.describe()}: {first} and {s} differ outside dim {self.dim}")
        return [first[:d] + (sum(s[d] for s in shapes),) + first[d + 1:]]

    def apply_all(self, tensors: list, parts: int | None) -> list:
        import torch

        return [torch.cat(tensors, self.dim)]

    def inverse(self, in_shapes: list[Shape] | None = None) -> Chunk | Split:
        """Without ``in_shapes`` equal parts are assumed (align flags a part that does not fit)."""
        if in_shapes is None:
            return Chunk(self.dim)
        d = dim_index(self.dim, len(in_shapes[0]), "cat")
        sizes = [s[d] for s in in_shapes]
        if len(set(sizes)) == 1:
            return Chunk(self.dim, len(sizes))
        return Split(self.dim, tuple(sizes))
