"""Conversion ops: each op's tensor function against torch, its shape function against the
tensors it makes, and its inverse undoing it bit for bit (property-tested)."""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ckptlab.errors import RecipeError
from ckptlab.recipe.conversion import Conversion
from ckptlab.recipe.groups import find_groups
from ckptlab.recipe.key_patterns import KeyPattern
from ckptlab.recipe.ops import (
    OPS, Cat, Chunk, ConvertError, Narrow, Op, Permute, Reshape, RopePermute, RopeUnpermute, Split, Squeeze, Stack,
    Transpose, Unbind, Unsqueeze, parse_op, preview, run,
)

FAST = settings(max_examples=40, deadline=None)


def _tensor(shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g)


shapes = st.lists(st.integers(1, 4), min_size=1, max_size=4).map(tuple)


# -- each op and its inverse -----------------------------------------------------------------
def _roundtrip(op: Op, tensors: list[torch.Tensor], parts: int | None = None, back_parts: int | None = None):
    out = op.apply(tensors, parts)
    assert [tuple(t.shape) for t in out] == op.shapes([tuple(t.shape) for t in tensors], parts)
    inverse = op.inverse([tuple(t.shape) for t in tensors])
    back = inverse.apply(out, back_parts if back_parts is not None else len(tensors))
    assert len(back) == len(tensors)
    for a, b in zip(back, tensors):
        assert a.dtype == b.dtype and torch.equal(a, b)
    return out


@FAST
@given(shapes, st.data())
def test_transpose_permute_squeeze_unsqueeze_invert(shape, data):
    t = _tensor(shape)
    rank = len(shape)
    a = data.draw(st.integers(-rank, rank - 1))
    b = data.draw(st.integers(-rank, rank - 1))
    out = _roundtrip(Transpose((a, b)), [t])
    assert torch.equal(out[0], t.transpose(a, b))
    perm = tuple(data.draw(st.permutations(range(rank))))
    out = _roundtrip(Permute(perm), [t])
    assert torch.equal(out[0], t.permute(*perm))
    d = data.draw(st.integers(-rank - 1, rank))
    out = _roundtrip(Unsqueeze(d), [t])
    assert torch.equal(out[0], t.unsqueeze(d))
    ones = [i for i, n in enumerate(shape) if n == 1]
    if ones:
        d = data.draw(st.sampled_from(ones))
        out = _roundtrip(Squeeze(d), [t])
        assert torch.equal(out[0], t.squeeze(d))


def test_bare_transpose_is_2d_t_and_its_own_inverse():
    t = _tensor((3, 5))
    assert torch.equal(Transpose().apply([t])[0], t.t())
    _roundtrip(Transpose(), [t])
    with pytest.raises(ConvertError, match=r"needs a 2-D tensor, got \(2, 3, 4\)"):
        Transpose().shapes([(2, 3, 4)])


@FAST
@given(shapes)
def test_reshape_with_minus_one_and_its_inverse(shape):
    t = _tensor(shape)
    op = Reshape((-1,))
    out = _roundtrip(op, [t])
    assert out[0].shape == (t.numel(),)
    op = Reshape((shape[0], -1))
    assert torch.equal(op.apply([t])[0], t.reshape(shape[0], -1))
    _roundtrip(op, [t])


@FAST
@given(shapes, st.integers(1, 4), st.data())
def test_chunk_split_cat_stack_unbind_invert(shape, parts, data):
    rank = len(shape)
    d = data.draw(st.integers(-rank, rank - 1))
    big = list(shape)
    big[d] *= parts
    t = _tensor(tuple(big))
    out = _roundtrip(Chunk(d), [t], parts=parts, back_parts=1)
    assert all(torch.equal(a, b) for a, b in zip(out, t.chunk(parts, d)))
    sizes = tuple(data.draw(st.lists(st.integers(0, 3), min_size=1, max_size=4)))
    big[d] = sum(sizes)
    t = _tensor(tuple(big))
    op = Split(d, sizes)
    out = _roundtrip(op, [t], back_parts=1)
    assert [o.shape[d] for o in out] == list(sizes)
    # cat of unequal parts: the inverse (given the shapes) is a split with those sizes
    back = Cat(d).inverse([tuple(o.shape) for o in out])
    assert back.name == "split" or len(set(sizes)) == 1
    _roundtrip(Cat(d), out)
    many = [_tensor(shape, seed=i) for i in range(parts)]
    s = data.draw(st.integers(-rank - 1, rank))
    out = _roundtrip(Stack(s), many)
    assert torch.equal(out[0], torch.stack(many, s))
    t = _tensor(shape)
    out = _roundtrip(Unbind(d), [t])
    assert len(out) == t.shape[d]


def test_narrow_has_no_inverse():
    t = _tensor((6, 2))
    assert torch.equal(Narrow(0, 2, 3).apply([t])[0], t[2:5])
    assert not Narrow(0, 2, 3).invertible
    with pytest.raises(ConvertError, match="drops part of the tensor"):
        Narrow(0, 2, 3).inverse()
    with pytest.raises(ConvertError, match=r"dim 0 of \(6, 2\) has only 6"):
        Narrow(0, 4, 3).shapes([(6, 2)])


def _transformers_permute(w, n_heads, dim1, dim2):
    """transformers' convert_llama_weights_to_hf.py ``permute``, written out from its
    documented steps (view (heads, dim1/heads/2, 2, dim2), swap dims 1 and 2, reshape)."""
    return w.view(n_heads, dim1 // n_heads // 2, 2, dim2).transpose(1, 2).reshape(dim1, dim2)


@FAST
@given(st.integers(1, 4), st.integers(1, 4), st.integers(1, 5))
def test_rope_permute_matches_the_transformers_converter_and_unpermute_undoes_it(heads, half, cols):
    rows = heads * half * 2
    w = _tensor((rows, cols))
    op = RopePermute(heads)
    got = op.apply([w])[0]
    assert torch.equal(got, _transformers_permute(w, heads, rows, cols))
    back = RopeUnpermute(heads).apply([got])[0]
    assert torch.equal(back, w)
    assert op.inverse() == RopeUnpermute(heads)
    # not its own inverse (head sizes 2 and 4 happen to be involutions)
    if half > 2:
        assert not torch.equal(op.apply([got])[0], w)
    # a bias (1-D) permutes the same way as a weight's rows
    b = _tensor((rows,))
    assert torch.equal(op.apply([b])[0], _transformers_permute(b[:, None], heads, rows, 1)[:, 0])


def test_rope_permute_moves_interleaved_pairs_into_halves():
    # one head, head size 4: Meta rows (r0 i0 r1 i1) -> HF (r0 r1 i0 i1)
    w = torch.tensor([[0.0], [1.0], [2.0], [3.0]])
    assert RopePermute(1).apply([w])[0].flatten().tolist() == [0.0, 2.0, 1.0, 3.0]
    with pytest.raises(ConvertError, match="not heads x an even head size"):
        RopePermute(3).shapes([(8, 2)])


# -- shape errors are one line naming the op and the shapes ---------------------------------
@pytest.mark.parametrize("op, shapes, message", [
    (Chunk(0, 3), [(10, 2)], r"dim 0 of \(10, 2\) \(10\) does not split into 3 equal parts"),
    (Split(1, (1, 1)), [(2, 3)], r"sizes add up to 2, dim 1 of \(2, 3\) is 3"),
    (Cat(0), [(2, 3), (2, 4)], r"\(2, 3\) and \(2, 4\) differ outside dim 0"),
    (Stack(0), [(2, 3), (3, 2)], r"differ \(stack needs equal shapes\)"),
    (Squeeze(0), [(2, 3)], r"dim 0 of \(2, 3\) is 2, not 1"),
    (Permute((1, 0)), [(2, 3, 4)], r"names 2 dims, the tensor \(2, 3, 4\) has 3"),
    (Reshape((5, -1)), [(2, 3)], r"\(2, 3\) \(6 elements\) does not fit"),
    (Transpose((0, 5)), [(2, 3)], r"dim 5 is out of range for a 2-D tensor"),
])
def test_shape_errors_are_one_line(op, shapes, message):
    with pytest.raises(ConvertError, match=message) as info:
        op.shapes(shapes)
    assert "\n" not in str(info.value)


def test_preview_names_the_op_position_and_matches_run():
    ops = [Transpose(), Chunk(1)]
    t = _tensor((6, 4))
    assert preview(ops, [(6, 4)], 2) == [tuple(o.shape) for o in run(ops, [t], 2)] == [(4, 3), (4, 3)]
    with pytest.raises(ConvertError, match=r"^op 2 \(chunk 1: dim 1 of \(4, 6\) \(6\) does not split into 4"):
        preview(ops, [(6, 4)], 4)


# -- YAML forms --------------------------------------------------------------------------------
@pytest.mark.parametrize("value", [
    "transpose", {"transpose": [0, 2]}, {"permute": [2, 0, 1]}, {"reshape": [4, -1]}, {"squeeze": 1},
    {"unsqueeze": -1}, {"chunk": 0}, {"chunk": {"dim": 0, "parts": 3}}, {"split": {"dim": 0, "sizes": [4, 2]}},
    {"cat": 0}, {"stack": 0}, {"unbind": 0}, {"narrow": {"dim": 0, "start": 1, "length": 2}},
    {"rope_permute": {"heads": 8}}, {"rope_unpermute": {"heads": 8}},
])
def test_every_op_form_round_trips(value):
    op = parse_op(value)
    assert op.to_value() == value
    assert op.name in OPS


@pytest.mark.parametrize("value, message", [
    ("transpos", r"unknown op 'transpos' \(did you mean 'transpose'\?"),
    ({"chunk": "0"}, r"expected an integer dim or \{dim: ..., parts: ...\}, got str"),
    ({"cat": 1.5}, r"expected an integer dim, got float"),
    ({"split": {"dim": 0, "size": [1]}}, r"unknown field 'size' \(did you mean 'sizes'\?"),
    ({"rope_permute": {"heads": 0}}, r"heads must be a positive integer"),
    ({"permute": [0, 0]}, r"\[0, 0\] is not a permutation"),
    ({"reshape": [-1, -1]}, r"one -1"),
    ("cat", r"cat needs an argument"),
    ({"cat": 0, "stack": 0}, r"got 2 keys"),
])
def test_op_errors_are_one_line_and_name_the_op(value, message):
    with pytest.raises(RecipeError, match=message) as info:
        parse_op(value, "convert 1, op 1")
    assert str(info.value).startswith("convert 1, op 1")
    assert "\n" not in str(info.value)


# -- patterns and groups -------------------------------------------------------------------------
def test_placeholders_match_one_or_more_chars_without_a_dot():
    p = KeyPattern("h.{i}.attn.{i}.w")
    assert p.match("h.3.attn.3.w") == {"i": "3"}
    assert p.match("h.3.attn.4.w") is None  # the same name twice means the same value
    assert KeyPattern("h.{i}.w").match("h..w") is None
    assert KeyPattern("h.{i}.w").match("h.1.2.w") is None
    assert KeyPattern("a+{x}.w").match("a+b.w") == {"x": "b"}  # literal text is not a regex


def test_stacking_placeholder_orders_matches_numerically_and_unbind_inverts_it():
    conv = Conversion.from_dict({"from": "l.{i}.experts.{e}.w", "to": "l.{i}.experts.w", "ops": [{"stack": 0}]})
    shapes = {f"l.{i}.experts.{e}.w": (2, 3) for i in range(2) for e in (10, 2, 0, 1, 3, 4, 5, 6, 7, 8, 9)}
    found = find_groups([conv], shapes)
    assert len(found.groups) == 2
    g = found.groups[0]
    assert g.sources == tuple(f"l.0.experts.{e}.w" for e in range(11))
    assert g.targets == ("l.0.experts.w",) and g.target_shapes == ((11, 2, 3),)
    back = conv.inverted()
    assert back.to_dict() == {"from": "l.{i}.experts.w", "to": "l.{i}.experts.{e}.w", "ops": [{"unbind": 0}]}
    g2 = find_groups([back], {"l.0.experts.w": (11, 2, 3)}).groups[0]
    assert g2.targets == g.sources


def test_a_group_missing_one_of_its_sources_is_left_out_and_an_earlier_entry_claims_first():
    fuse = Conversion.from_dict({"from": ["b.{i}.q", "b.{i}.k"], "to": "b.{i}.qk", "ops": [{"cat": 0}]})
    rename = Conversion.from_dict({"from": "b.{i}.q", "to": "x.{i}.q"})
    found = find_groups([fuse, rename], {"b.0.q": (2,), "b.0.k": (2,), "b.1.q": (2,)})
    assert [(g.index, g.sources) for g in found.groups] == [(1, ("b.0.q", "b.0.k")), (2, ("b.1.q",))]
    assert found.claimed["b.0.q"].index == 1


def test_a_conversion_that_matches_nothing_says_so_with_a_did_you_mean():
    conv = Conversion.from_dict({"from": "h.{i}.attn.c_atn.weight", "to": "x.{i}", "ops": ["transpose"]})
    with pytest.raises(RecipeError, match=r"^convert 1: 'h.\{i\}.attn.c_atn.weight' matches no source key "
                                          r"\(did you mean 'h.0.attn.c_attn.weight'\?\)$"):
        find_groups([conv], {"h.0.attn.c_attn.weight": (2, 3)})
    assert find_groups([conv], {"h.0.attn.c_attn.weight": (2, 3)}, strict=False).groups == []


def test_an_op_whose_shapes_do_not_work_names_the_entry_the_op_and_the_key():
    conv = Conversion.from_dict({"from": "b.{i}.qkv", "to": ["q.{i}", "k.{i}", "v.{i}"], "ops": [{"chunk": 0}]})
    with pytest.raises(ConvertError, match=r"^convert 1: op 1 \(chunk 0: dim 0 of \(10, 4\) \(10\) does not "
                                           r"split into 3 equal parts\) on 'b.0.qkv' \(10, 4\)$"):
        find_groups([conv], {"b.0.qkv": (10, 4)})


# -- entries in a recipe: one-line errors naming the entry, exact round trips ----------------------
@pytest.mark.parametrize("entry, message", [
    ({"from": "x.{i}", "to": "y.{i}.{j}", "ops": ["transpose"]},
     r"^convert 2: 'to' has placeholder \{j\} that 'from' lacks \(only an unbind op makes one target per index\)$"),
    ({"from": "x.{i}.{e}", "to": "y.{i}", "ops": ["transpose"]},
     r"^convert 2: the ops give a variable number of tensors but 'to' names 1 \(add a stack or cat op\)$"),
    ({"from": ["a.{i}", "b.{j}"], "to": "c.{i}", "ops": [{"cat": 0}]},
     r"^convert 2: the 'from' patterns use different placeholders"),
    ({"from": "x.{i}", "to": ["a.{i}", "b.{i}"], "ops": ["transpose"]},
     r"^convert 2: the ops give 1 tensor but 'to' names 2$"),
    ({"from": "x.{i}", "to": "a.{i}.{e}", "ops": [{"chunk": 0}]},
     r"^convert 2, op 1 \(chunk\): chunk needs \{chunk: \{dim: d, parts: n\}\} here"),
    ({"from": ["a.{i}", "b.{i}"], "to": ["c.{i}", "d.{i}"], "ops": [{"chunk": 0}]},
     r"^convert 2, op 1 \(chunk\): chunk takes one tensor, but 2 reach it$"),
    ({"from": "x.{i", "to": "y", "ops": []}, r"^convert 2 \(from\): bad placeholder in 'x.\{i'"),
    ({"from": "x.{a}{b}", "to": "y.{a}{b}", "ops": []}, r"touch each other"),
    ({"form": "x", "to": "y"}, r"^convert 2: unknown field 'form' \(did you mean 'from'\?"),
    ({"from": "x"}, r"^convert 2: needs 'from' and 'to'$"),
    ({"from": [], "to": "y"}, r"^convert 2 \(from\): expected a key pattern or a non-empty list of them, got list$"),
    ({"from": "x", "to": "y", "ops": "transpose"}, r"^convert 2: 'ops' must be a list, got str$"),
    ("x -> y", r"^convert 2: expected \{from: ..., to: ..., ops: \[...\]\}, got str$"),
])
def test_conversion_errors_are_one_line_and_name_the_entry(entry, message):
    from ckptlab.recipe.model import Recipe

    first = {"from": "ok.{i}", "to": "ok.{i}", "ops": ["transpose"]}
    with pytest.raises(RecipeError, match=message) as info:
        Recipe.from_dict({"convert": [first, entry]})
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("dtype, message", [
    ({"to": "bf16"}, r"^dtype: unknown dtype 'bf16' \(did you mean 'bfloat16'\?"),
    ({"to": "bfloat16", "kept": "norm"}, r"^dtype: unknown field 'kept' \(did you mean 'keep'\?"),
    ({"to": "bfloat16", "keep": "("}, r"^dtype \(keep\): bad regex '\('"),
    ({"keep": "norm"}, r"^dtype: needs 'to'"),
])
def test_dtype_errors_are_one_line(dtype, message):
    from ckptlab.recipe.model import Recipe

    with pytest.raises(RecipeError, match=message):
        Recipe.from_dict({"dtype": dtype})


def test_convert_and_dtype_round_trip_exactly_through_yaml_and_json(tmp_path):
    from ckptlab.recipe.dtype_policy import DtypeSpec
    from ckptlab.recipe.model import Recipe

    data = {"rules": [{"strip_prefix": "module."}],
            "convert": [{"from": "h.{i}.w", "to": "h.{i}.w", "ops": ["transpose"]},
                        {"from": "b.{i}.qkv", "to": ["b.{i}.q", "b.{i}.k", "b.{i}.v"], "ops": [{"chunk": 0}]},
                        {"from": ["b.{i}.q", "b.{i}.k"], "to": "b.{i}.qk", "ops": [{"cat": 0}, {"transpose": [0, 1]}]},
                        {"from": "e.{i}.x.{e}", "to": "e.{i}.x", "ops": [{"stack": 0}]},
                        {"from": "m.{i}", "to": "m.{i}.{e}", "ops": [{"unbind": 1}]},
                        {"from": "r.{i}", "to": "r.{i}", "ops": [{"rope_permute": {"heads": 4}}, {"reshape": [-1]},
                                                              {"split": {"dim": 0, "sizes": [2, 6]}}, {"stack": 0}]},
                        {"from": "s", "to": "t", "ops": []}],
            "dtype": {"to": "bfloat16", "keep": "norm|bias"}}
    recipe = Recipe.from_dict(data)
    assert recipe.to_dict() == data
    assert Recipe.from_text(recipe.to_yaml()) == recipe and Recipe.from_text(recipe.to_yaml()).to_yaml() == recipe.to_yaml()
    assert Recipe.from_text(recipe.to_json()) == recipe
    assert Recipe.load(recipe.save(tmp_path / "r.json")) == recipe
    assert recipe.dtype == DtypeSpec("bfloat16", "norm|bias")
    assert recipe.dtype.casts("h.0.w") and not recipe.dtype.casts("h.0.norm.weight")
    # suggestion fragments and the with_* copies carry conversions along
    grown = recipe.merged({"convert": {"from": "u", "to": "v", "ops": ["transpose"]}}).with_rule({"add_prefix": "p."})
    assert len(grown.convert) == 8 and grown.dtype == recipe.dtype and len(recipe.convert) == 7
    assert recipe.merged({"dtype": None}).dtype is None
    with pytest.raises(RecipeError, match=r"^convert 8, op 1: unknown op 'transposed'"):
        recipe.with_convert({"from": "u", "to": "v", "ops": ["transposed"]})


def test_a_stacking_index_that_is_a_digit_but_no_number_sorts_after_the_numbers():
    # '²'.isdigit() is True but int('²') raises: a key from a file must not crash the ordering
    conv = Conversion.from_dict({"from": "e.{e}.w", "to": "e.w", "ops": [{"stack": 0}]})
    g = find_groups([conv], {"e.\u00b2.w": (2,), "e.10.w": (2,), "e.9.w": (2,)}).groups[0]
    assert g.sources == ("e.9.w", "e.10.w", "e.\u00b2.w")
