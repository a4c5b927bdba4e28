"""``rope_permute`` / ``rope_unpermute``: Meta's interleaved rotary pairs <-> HF's half-split
halves, per head, along dim 0 (``{rope_permute: {heads: 32}}``); each undoes the other."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from ckptlab.errors import RecipeError
from ckptlab.recipe.ops.base import ConvertError, Op, Shape, is_int, parse_fields

__all__ = ["RopePermute", "RopeUnpermute"]


@dataclass(frozen=True)
class _Rope(Op):
    """The pair's shared body; ``forward``: interleaved -> halves."""

    forward: ClassVar[bool]
    heads: int

    @classmethod
    def parse(cls, value: Any, where: str) -> "_Rope":
        got = parse_fields(value, where, ("heads",))
        if not is_int(got["heads"]) or got["heads"] < 1:
            raise RecipeError(f"{where}: heads must be a positive integer, got {got['heads']!r}")
        return cls(got["heads"])

    @property
    def arg(self) -> Any:
        return {"heads": self.heads}

    def shape_one(self, s: Shape) -> Shape:
        if not s or s[0] % (2 * self.heads):
            first = s[0] if s else "a scalar"
            raise ConvertError(f"{self.describe()}: dim 0 of {s} ({first}) is not heads x an even head size")
        return s

    def apply_one(self, tensor: Any) -> Any:
        """As transformers' ``convert_llama_weights_to_hf.py`` ``permute`` does for a 2-D weight:
        view (heads, n/heads/2, 2, ...), swap the two middle dims, flatten back (and the reverse)."""
        n, rest = tensor.shape[0], tuple(tensor.shape[1:])
        half = n // self.heads // 2
        grouped = (self.heads, half, 2, *rest) if self.forward else (self.heads, 2, half, *rest)
        return tensor.reshape(grouped).transpose(1, 2).reshape(n, *rest)


@dataclass(frozen=True)
class RopePermute(_Rope):
    name = "rope_permute"
    forward = True
    example = ({"heads": 2}, ((8, 3),))

    def inverse(self, in_shapes: list[Shape] | None = None) -> "RopeUnpermute":
        return RopeUnpermute(self.heads)


@dataclass(frozen=True)
class RopeUnpermute(_Rope):
    name = "rope_unpermute"
    forward = False
    example = ({"heads": 2}, ((8, 3),))

    def inverse(self, in_shapes: list[Shape] | None = None) -> RopePermute:
        return RopePermute(self.heads)
