"""Shape adapters: each op keeps the promise it makes, on any dims and dtypes, or says why not."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from ckptlab.errors import AdaptError
from ckptlab.recipe import adapters as adapt

DTYPES = [torch.float32, torch.float16, torch.float64, torch.bfloat16, torch.float8_e4m3fn,
          torch.float8_e5m2, torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8,
          torch.bool, torch.complex64, torch.complex128]


def rand(*shape: int, dtype: torch.dtype = torch.float32, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(tuple(shape), generator=g, dtype=torch.float64) * 4
    if dtype == torch.bool:
        return x > 0
    if dtype.is_complex:
        return torch.complex(x, -x).to(dtype)
    return x.to(dtype)


def bits(t: torch.Tensor) -> torch.Tensor:
    """Raw bytes, so equality is bitwise and NaN-safe."""
    t = t.contiguous().reshape(-1)
    if t.is_complex():
        t = torch.view_as_real(t).reshape(-1)
    return t.view(torch.uint8)


def same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and torch.equal(bits(a), bits(b))


# -- pad -------------------------------------------------------------------------------
@pytest.mark.parametrize("shape,dim", [((5,), 0), ((8, 3), 1), ((8, 3, 3, 3), 1), ((2, 3, 2, 2, 2), 1), ((4, 8), 0)])
def test_pad_zeros_keeps_source_and_zeroes_the_rest(shape, dim):
    src = rand(*shape)
    target = list(shape)
    target[dim] += 2
    out = adapt.apply(src, target, {"op": "pad", "dim": dim, "fill": "zeros"})
    assert tuple(out.shape) == tuple(target)
    assert same_bits(out.narrow(dim, 0, shape[dim]), src)
    assert torch.count_nonzero(out.narrow(dim, shape[dim], 2)) == 0


def test_pad_infers_the_one_dim_that_differs():
    src = rand(8, 3, 3, 3)
    out = adapt.apply(src, (8, 4, 3, 3), {"op": "pad"})
    assert same_bits(out[:, :3], src)


def test_pad_mean_fills_new_slices_with_the_mean_of_the_existing_ones():
    src = rand(8, 3, 3, 3)
    out = adapt.apply(src, (8, 5, 3, 3), {"op": "pad", "dim": 1, "fill": "mean"})
    expected = src.mean(dim=1)
    for c in (3, 4):
        torch.testing.assert_close(out[:, c], expected)
    assert same_bits(out[:, :3], src)


def test_pad_init_takes_the_targets_own_values_for_the_new_part():
    src, tgt = rand(10, 16), rand(100, 16, seed=1)
    out = adapt.apply(src, (100, 16), {"op": "pad", "dim": 0, "fill": "init"}, target_value=tgt)
    assert same_bits(out[:10], src)
    assert same_bits(out[10:], tgt[10:])


def test_pad_repeat_keeps_the_output_for_a_signal_shared_by_all_channels():
    """RGB -> 6 channels: a grey input through the new conv gives the RGB conv's output."""
    w, b = rand(8, 3, 3, 3, dtype=torch.float64), rand(8, dtype=torch.float64, seed=2)
    grey = rand(2, 1, 7, 7, dtype=torch.float64, seed=3)
    out = adapt.apply(w, (8, 6, 3, 3), {"op": "pad", "dim": 1, "fill": "repeat"})
    torch.testing.assert_close(F.conv2d(grey.expand(2, 6, 7, 7), out, b), F.conv2d(grey.expand(2, 3, 7, 7), w, b))
    assert torch.equal(out[:, :3], out[:, 3:])


def test_pad_repeat_to_a_non_multiple_tiles_and_scales():
    w = rand(4, 3)
    out = adapt.apply(w, (4, 4), {"op": "pad", "fill": "repeat"})
    torch.testing.assert_close(out, torch.cat([w, w[:, :1]], 1) * 3 / 4)


def test_pad_cannot_shrink_and_names_key_shapes_and_adapter():
    with pytest.raises(AdaptError) as err:
        adapt.apply(rand(8, 3, 3, 3), (8, 2, 3, 3), {"op": "pad", "dim": 1}, key="conv1.weight")
    msg = str(err.value)
    assert "conv1.weight" in msg and "(8, 3, 3, 3)" in msg and "(8, 2, 3, 3)" in msg and "pad(dim=1" in msg
    assert "\n" not in msg


# -- truncate, resize, sum, reinit -------------------------------------------------------
def test_truncate_keeps_the_leading_slices():
    src = rand(100, 16)
    out = adapt.apply(src, (10, 16), {"op": "truncate"})
    assert same_bits(out, src[:10])
    with pytest.raises(AdaptError, match="truncate cannot grow"):
        adapt.apply(src, (120, 16), {"op": "truncate"})


def test_resize_pads_and_truncates_each_dim_as_needed():
    src = rand(6, 3, 5)
    out = adapt.apply(src, (4, 5, 5), {"op": "resize"})
    assert same_bits(out[:, :3], src[:4])
    assert torch.count_nonzero(out[:, 3:]) == 0


def test_resize_with_init_keeps_the_overlap_and_takes_the_rest_from_the_target():
    src, tgt = rand(6, 3), rand(4, 5, seed=4)
    out = adapt.apply(src, (4, 5), {"op": "resize", "fill": "init"}, target_value=tgt)
    assert same_bits(out[:, :3], src[:4, :3])
    assert same_bits(out[:, 3:], tgt[:, 3:])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 4)), min_size=0, max_size=4),
       st.sampled_from(["zeros", "mean", "init"]))
def test_resize_always_gives_the_target_shape_and_keeps_the_overlap(dims, fill):
    src_shape = tuple(s for s, _ in dims)
    tgt_shape = tuple(t for _, t in dims)
    src, tgt = rand(*src_shape), rand(*tgt_shape, seed=5)
    out = adapt.apply(src, tgt_shape, {"op": "resize", "fill": fill}, target_value=tgt)
    assert tuple(out.shape) == tgt_shape == adapt.preview_shape(src_shape, tgt_shape, {"op": "resize", "fill": fill})
    overlap = tuple(slice(0, min(s, t)) for s, t in dims)
    assert same_bits(out[overlap], src[overlap])


def test_sum_collapses_rgb_to_grey_so_a_grey_image_gives_the_same_output():
    w, b = rand(8, 3, 3, 3, dtype=torch.float64), rand(8, dtype=torch.float64, seed=6)
    grey = rand(2, 1, 6, 6, dtype=torch.float64, seed=7)
    out = adapt.apply(w, (8, 1, 3, 3), {"op": "sum"})
    torch.testing.assert_close(F.conv2d(grey, out, b), F.conv2d(grey.expand(2, 3, 6, 6), w, b))


def test_sum_groups_consecutive_channels():
    w = rand(4, 12)
    out = adapt.apply(w, (4, 4), {"op": "sum"})
    torch.testing.assert_close(out, w.reshape(4, 4, 3).sum(-1))
    with pytest.raises(AdaptError, match="multiple"):
        adapt.apply(w, (4, 5), {"op": "sum"})


def test_reinit_gives_the_targets_value():
    tgt = rand(20, 16, seed=8)
    out = adapt.apply(rand(10, 16), (20, 16), {"op": "reinit"}, target_value=tgt)
    assert same_bits(out, tgt) and out.data_ptr() != tgt.data_ptr()


# -- every op: dtype kept, input untouched, errors -------------------------------------
CASES = [
    ((3, 4), (5, 4), {"op": "pad", "fill": "zeros"}),
    ((3, 4), (5, 4), {"op": "pad", "fill": "mean"}),
    ((3, 4), (5, 4), {"op": "pad", "fill": "repeat"}),
    ((3, 4), (5, 4), {"op": "pad", "fill": "init"}),
    ((3, 4), (2, 4), {"op": "truncate"}),
    ((3, 4), (5, 2), {"op": "resize", "fill": "mean"}),
    ((3, 6), (3, 2), {"op": "sum"}),
    ((3, 4), (5, 4), {"op": "reinit"}),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("src_shape,tgt_shape,spec", CASES, ids=lambda v: str(v))
def test_every_op_keeps_dtype_and_never_modifies_its_input(dtype, src_shape, tgt_shape, spec):
    src = rand(*src_shape, dtype=dtype)
    before = src.clone()
    out = adapt.apply(src, tgt_shape, spec, target_value=rand(*tgt_shape, dtype=dtype, seed=9))
    assert out.dtype == dtype
    assert tuple(out.shape) == tgt_shape
    assert same_bits(src, before)
    if out.numel():
        assert out.untyped_storage().data_ptr() != src.untyped_storage().data_ptr()


@pytest.mark.parametrize("src_shape,tgt_shape,spec,why", [
    ((8, 3, 3, 3), (8, 4, 3, 4), {"op": "pad"}, "2 dims differ"),
    ((8, 3), (8, 3, 1), {"op": "pad"}, "rank differs"),
    ((8, 3), (8, 4), {"op": "pad", "dim": 5}, "out of range"),
    ((8, 3), (9, 4), {"op": "pad", "dim": 1}, "differ too"),
    ((8, 3), (8, 4), {"op": "pad", "fill": "init"}, "target's own value"),
    ((8, 3), (8, 4), {"op": "reinit"}, "target's own value"),
    ((8, 3), (8, 4), {"op": "stretch"}, "unknown op"),
    ((8, 3), (8, 4), {"op": "pad", "fill": "noise"}, "unknown fill"),
    ((8, 0), (8, 4), {"op": "pad", "fill": "repeat"}, "at least one slice"),
])
def test_impossible_adaptations_raise_one_line_errors(src_shape, tgt_shape, spec, why):
    with pytest.raises(AdaptError) as err:
        adapt.apply(rand(*src_shape), tgt_shape, spec, key="head.weight")
    msg = str(err.value)
    assert why in msg and "head.weight" in msg and str(src_shape) in msg and str(tgt_shape) in msg
    assert "\n" not in msg


def test_preview_shape_checks_without_tensors():
    assert adapt.preview_shape((8, 3, 3, 3), (8, 4, 3, 3), {"op": "pad", "dim": 1}) == (8, 4, 3, 3)
    with pytest.raises(AdaptError):
        adapt.preview_shape((8, 3, 3, 3), (8, 2, 3, 3), {"op": "pad", "dim": 1})


def test_describe_spells_the_adapter():
    assert adapt.describe({"op": "pad", "dim": 1, "fill": "zeros"}) == "pad(dim=1, fill=zeros)"
    assert adapt.describe({"op": "truncate"}) == "truncate()"
