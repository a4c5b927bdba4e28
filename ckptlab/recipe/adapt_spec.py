"""``AdaptSpec``: how a source tensor of another shape is fitted to its target (``pad``,
``truncate``, ``resize``, ``sum``, ``reinit``; fill ``zeros``/``mean``/``init``/``repeat``). The
tensor functions that do it live in ``adapters``; this is the recipe's word for it (no torch).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ckptlab.errors import RecipeError
from ckptlab.recipe.parsing import _type_name, unknown
from ckptlab.vocab import ADAPT_FILLS, ADAPT_OPS

__all__ = ["AdaptSpec"]


@dataclass(frozen=True)
class AdaptSpec:
    """How a source tensor of another shape is fitted to a target key (applied by merge)."""

    op: str
    dim: int | None = None
    fill: str = "zeros"

    def __post_init__(self) -> None:
        self.validate()

    def validate(self, key: str | None = None) -> None:
        where = f"adapt {key!r}" if key is not None else "adapt"
        if self.op not in ADAPT_OPS:
            raise RecipeError(f"{where}: {unknown('op', self.op, ADAPT_OPS)}")
        if self.fill not in ADAPT_FILLS:
            raise RecipeError(f"{where}: {unknown('fill', self.fill, ADAPT_FILLS)}")
        if self.dim is not None and (isinstance(self.dim, bool) or not isinstance(self.dim, int)):
            raise RecipeError(f"{where}: dim must be an integer, got {_type_name(self.dim)}")

    def describe(self) -> str:
        """``pad dim 1 (fill zeros)``, ``truncate``, ``reinit``."""
        text = self.op + (f" dim {self.dim}" if self.dim is not None else "")
        return text + (f" (fill {self.fill})" if self.op in ("pad", "resize") else "")

    def to_dict(self) -> dict:
        out: dict[str, Any] = {"op": self.op}
        if self.dim is not None:
            out["dim"] = self.dim
        if self.fill != "zeros":
            out["fill"] = self.fill
        return out

    @classmethod
    def from_dict(cls, data: Any, key: str | None = None) -> "AdaptSpec":
        if isinstance(data, AdaptSpec):
            return data
        where = f"adapt {key!r}" if key is not None else "adapt"
        if not isinstance(data, dict):
            raise RecipeError(f"{where}: expected {{op: ..., dim: ..., fill: ...}}, got {_type_name(data)}")
        extra = sorted(set(map(str, data)) - {"op", "dim", "fill"})
        if extra:
            raise RecipeError(f"{where}: {unknown('field', extra[0], ('op', 'dim', 'fill'))}")
        if "op" not in data:
            raise RecipeError(f"{where}: needs an 'op' ({', '.join(ADAPT_OPS)})")
        spec = object.__new__(cls)
        object.__setattr__(spec, "op", data["op"])
        object.__setattr__(spec, "dim", data.get("dim"))
        object.__setattr__(spec, "fill", data.get("fill", "zeros"))
        spec.validate(key)
        return spec
