"""``dtype: {to: bfloat16, keep: "norm|bias"}``: cast floating tensors on write, keeping those
whose target key matches ``keep`` in their own dtype.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

from ckptlab.errors import RecipeError
from ckptlab.recipe.parsing import _type_name, quote, unknown
from ckptlab.recipe.rules import _compile

__all__ = ["CAST_DTYPES", "DTYPE_FIELDS", "DtypeSpec"]

CAST_DTYPES = ("bfloat16", "float16", "float32", "float64", "float8_e4m3fn", "float8_e5m2")
DTYPE_FIELDS = ("to", "keep")


@dataclass(frozen=True)
class DtypeSpec:
    """``dtype: {to: bfloat16, keep: "norm|bias"}``: floating tensors are written in ``to``,
    except those whose target key matches the ``keep`` regex (they keep their own dtype)."""

    to: str
    keep: str | None = None

    def __post_init__(self) -> None:
        if self.to not in CAST_DTYPES:
            raise RecipeError(f"dtype: {unknown('dtype', self.to, CAST_DTYPES)}")
        if self.keep is not None:
            if not isinstance(self.keep, str):
                raise RecipeError(f"dtype: 'keep' must be a regex string, got {_type_name(self.keep)}")
            _compile(self.keep, "dtype (keep)")

    @cached_property
    def keep_regex(self):
        return None if self.keep is None else _compile(self.keep, "dtype (keep)")

    def casts(self, key: str) -> bool:
        """Whether ``key`` (a floating tensor) is written in ``to``."""
        return self.keep_regex is None or not self.keep_regex.search(key)

    def describe(self) -> str:
        return f"cast to {self.to}" + (f" (keeping {quote(self.keep)})" if self.keep else "")

    def to_dict(self) -> dict:
        return {"to": self.to} if self.keep is None else {"to": self.to, "keep": self.keep}

    @classmethod
    def from_dict(cls, data: Any) -> "DtypeSpec":
        if isinstance(data, DtypeSpec):
            return data
        if isinstance(data, str):
            return cls(data)
        if not isinstance(data, dict):
            raise RecipeError(f"dtype: expected {{to: ..., keep: ...}}, got {_type_name(data)}")
        extra = sorted(set(map(str, data)) - set(DTYPE_FIELDS))
        if extra:
            raise RecipeError(f"dtype: {unknown('field', extra[0], DTYPE_FIELDS)}")
        if "to" not in data:
            raise RecipeError(f"dtype: needs 'to' ({', '.join(CAST_DTYPES)})")
        return cls(data["to"], data.get("keep"))
