"""``resample``: a ViT position embedding's grid interpolated to another size, prefix tokens kept
apart, and the warning when an adapter pads or cuts a position embedding instead."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import ckptlab
from ckptlab.errors import RecipeError
from ckptlab.recipe.ops import parse_op


def reference(posemb: torch.Tensor, prefix: int, new: tuple[int, int]) -> torch.Tensor:
    """timm's resample_abs_pos_embed, written from its documented steps (no timm here)."""
    head, grid = posemb[:, :prefix], posemb[:, prefix:]
    side = int(grid.shape[1] ** 0.5)
    grid = grid.reshape(1, side, side, -1).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=new, mode="bicubic", antialias=new[0] * new[1] < side * side, align_corners=False)
    return torch.cat([head, grid.permute(0, 2, 3, 1).reshape(1, new[0] * new[1], -1)], dim=1)


@pytest.mark.parametrize("new", [(14, 14), (4, 4), (7, 10)])
def test_the_grid_is_interpolated_and_the_class_token_kept(new):
    posemb = torch.randn(1, 1 + 7 * 7, 16, generator=torch.Generator().manual_seed(0))
    op = parse_op({"resample": {"grid": list(new), "prefix": 1}})
    [out] = op.apply([posemb], 1)
    assert out.shape == (1, 1 + new[0] * new[1], 16) == (1, *op.shapes([(1, 50, 16)])[0][1:])
    assert torch.equal(out[:, :1], posemb[:, :1])
    torch.testing.assert_close(out, reference(posemb, 1, new), rtol=0, atol=1e-6)


def test_a_vit_at_a_larger_resolution_loads_through_a_resample_with_its_warning_free_recipe(tmp_path):
    source = {"pos_embed": torch.randn(1, 50, 8), "cls_token": torch.randn(1, 1, 8)}
    target = {"pos_embed": torch.zeros(1, 197, 8), "cls_token": torch.zeros(1, 1, 8)}
    padded = ckptlab.align(source, target, recipe={"adapt": {"pos_embed": {"op": "pad", "dim": 1}}})
    assert any("positions are not interpolated" in w for w in padded.warnings) and not padded.strict_ok
    recipe = {"convert": [{"from": "pos_embed", "to": "pos_embed", "ops": [{"resample": {"grid": [14, 14],
                                                                                         "prefix": 1}}]}]}
    al = ckptlab.align(source, target, recipe=recipe)
    assert al.row("pos_embed").status == "converted" and al.warnings == []
    ckptlab.remap(source, target, tmp_path / "out.pt", recipe=recipe)
    out = torch.load(tmp_path / "out.pt", weights_only=True)
    torch.testing.assert_close(out["pos_embed"], reference(source["pos_embed"], 1, (14, 14)), rtol=0, atol=1e-6)


def test_bad_arguments_and_a_grid_that_is_not_square_are_one_line_errors():
    with pytest.raises(RecipeError, match="grid must be"):
        parse_op({"resample": {"grid": [14]}})
    with pytest.raises(RecipeError, match="not a square grid"):
        parse_op({"resample": {"grid": [2, 2], "prefix": 1}}).shapes([(1, 11, 4)])
    with pytest.raises(RecipeError, match="cannot be inverted"):
        ckptlab.Recipe.from_dict({"convert": [{"from": "p", "to": "p", "ops": [{"resample": {"grid": [2, 2]}}]}]}
                                 ).inverted()
