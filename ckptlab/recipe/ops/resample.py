"""``resample``: a position embedding's grid interpolated to another size, the prefix tokens
(class, register, distillation) kept apart (``{resample: {grid: [14, 14], prefix: 1}}``).

A ViT trained at 224 px (a 14 x 14 grid of 16 px patches) fine-tuned at 448 px needs a 28 x 28
grid. Padding or cutting the rows would leave positions that mean nothing; the grid is
interpolated instead, as timm's ``resample_abs_pos_embed`` does (bicubic, antialiased when it
shrinks). Positions are new values, so the model's outputs change, and no inverse gives the old
ones back bit for bit: the op is lossy and says so.
"""
from __future__ import annotations

from dataclasses import dataclass
from math import isqrt
from typing import Any

from ckptlab.errors import RecipeError
from ckptlab.recipe.ops.base import ConvertError, Op, Shape, is_int, parse_fields, parse_ints

__all__ = ["Resample"]

MODES = ("bicubic", "bilinear", "nearest")


@dataclass(frozen=True)
class Resample(Op):
    name = "resample"
    invertible = False
    example = ({"grid": [3, 3], "prefix": 1}, ((1, 5, 4),))

    grid: tuple[int, int]
    prefix: int = 0
    mode: str = "bicubic"

    @classmethod
    def parse(cls, value: Any, where: str) -> "Resample":
        got = parse_fields(value, where, ("grid",), ("prefix", "mode"))
        grid = parse_ints(got["grid"], where, "grid")
        if len(grid) != 2 or min(grid) < 1:
            raise RecipeError(f"{where}: grid must be [rows, columns] of positive sizes, got {list(grid)}")
        prefix = got.get("prefix", 0)
        if not is_int(prefix) or prefix < 0:
            raise RecipeError(f"{where}: prefix (tokens before the grid) must be an integer >= 0")
        mode = got.get("mode", "bicubic")
        if mode not in MODES:
            raise RecipeError(f"{where}: mode must be one of {', '.join(MODES)}, got {mode!r}")
        return cls(tuple(grid), prefix, mode)

    @property
    def arg(self) -> Any:
        out: dict[str, Any] = {"grid": self.grid}
        if self.prefix:
            out["prefix"] = self.prefix
        if self.mode != "bicubic":
            out["mode"] = self.mode
        return out

    def _source_grid(self, s: Shape) -> tuple[int, int]:
        """The square grid the source's positions form (``(1, prefix + H*W, D)`` or ``(prefix + H*W, D)``)."""
        if len(s) not in (2, 3) or (len(s) == 3 and s[0] != 1):
            raise ConvertError(f"{self.describe()}: expected (1, tokens, dim) or (tokens, dim), got {s}")
        cells = s[-2] - self.prefix
        side = isqrt(cells) if cells > 0 else 0
        if side * side != cells or side == 0:
            raise ConvertError(f"{self.describe()}: {s[-2]} tokens less {self.prefix} prefix is not a square grid")
        return side, side

    def shape_one(self, s: Shape) -> Shape:
        self._source_grid(s)
        return s[:-2] + (self.prefix + self.grid[0] * self.grid[1], s[-1])

    def apply_one(self, tensor: Any) -> Any:
        import torch.nn.functional as F

        h, w = self._source_grid(tuple(tensor.shape))
        flat = tensor.reshape(tensor.shape[-2], tensor.shape[-1])
        head, cells = flat[: self.prefix], flat[self.prefix:]
        image = cells.float().reshape(1, h, w, -1).permute(0, 3, 1, 2)          # (1, dim, h, w)
        smaller = self.grid[0] * self.grid[1] < h * w
        kwargs = {} if self.mode == "nearest" else {"align_corners": False, "antialias": smaller}
        out = F.interpolate(image, size=self.grid, mode=self.mode, **kwargs)
        out = out.permute(0, 2, 3, 1).reshape(-1, flat.shape[-1]).to(tensor.dtype)
        joined = torch_cat(head, out)
        return joined.reshape(tensor.shape[:-2] + joined.shape)

    def inverse(self, in_shapes: list[Shape] | None = None) -> Op:
        raise ConvertError(f"{self.describe()}: interpolates positions, which cannot be undone bit for bit")


def torch_cat(head: Any, tail: Any) -> Any:
    import torch

    return torch.cat([head, tail], dim=0)
