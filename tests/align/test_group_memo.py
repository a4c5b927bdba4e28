"""``group_memo``: within an alignment a conversion's groups are found once for the keys it is
offered, and handed out again only for those very keys (names, order, shapes) — never stale."""
from __future__ import annotations

import threading

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import ckptlab.recipe.groups as groups_module
from ckptlab.align.group_memo import remembering
from ckptlab.align.matcher import align
from ckptlab.align.rule_scope import find_groups_among
from ckptlab.errors import RecipeError
from ckptlab.io.checkpoint import Checkpoint
from ckptlab.recipe.conversion import Conversion
from ckptlab.recipe.groups import find_groups

SHAPES = {"model.embed.weight": (10, 4), "model.layers.0.q.weight": (4, 4), "model.layers.0.k.weight": (4, 4),
          "model.layers.1.q.weight": (4, 4), "model.layers.1.k.weight": (4, 4), "model.layers.0.q.bias": (4,),
          "head.weight": (3, 4), "layers.0.q.weight": (4, 4), "model.layers.2.q.weight": (8, 4)}
ENTRIES = [
    {"from": "model.layers.{i}.q.weight", "to": "blocks.{i}.q.weight", "ops": ["transpose"]},
    {"from": ["model.layers.{i}.q.weight", "model.layers.{i}.k.weight"], "to": "blocks.{i}.qk.weight",
     "ops": [{"cat": 0}]},
    {"from": "{a}.layers.{i}.q.{p}", "to": "x.{a}.{i}.{p}"},
    {"from": "model.{name}.weight", "to": "m.{name}"},
    {"from": "head.weight", "to": "out.weight"},
    {"from": "model.layers.{i}.{w}.weight", "to": "stack.{w}", "ops": [{"stack": 0}]},
]


def _convs(picked: list[int]) -> list[Conversion]:
    return [Conversion.from_dict(ENTRIES[i], n) for n, i in enumerate(picked, start=1)]


def test_the_same_keys_get_the_same_groups_found_once():
    convs = _convs([0, 3])
    with remembering():
        first = find_groups_among(convs, SHAPES, strict=False)
        again = find_groups_among(convs, dict(SHAPES), strict=False)  # another mapping, the same keys
    assert first.groups == again.groups == find_groups(convs, SHAPES, strict=False).groups
    assert all(a is b for a, b in zip(first.groups, again.groups))  # handed out again, not found again


def test_an_entry_at_another_position_gets_its_own_number():
    with remembering():
        find_groups_among(_convs([0]), SHAPES, strict=False)
        later = find_groups_among(_convs([0]), SHAPES, strict=False, start=3)
    assert later.groups == find_groups(_convs([0]), SHAPES, strict=False, start=3).groups
    assert {g.index for g in later.groups} == {3}
    assert later.groups[0].describe().startswith("convert 3: transpose of ")


def test_outside_an_alignment_nothing_is_kept():
    convs = _convs([0])
    first, again = (find_groups_among(convs, SHAPES, strict=False) for _ in range(2))
    assert first.groups == again.groups and not any(a is b for a, b in zip(first.groups, again.groups))


def test_a_strict_miss_still_raises_after_a_lenient_one():
    convs = [Conversion.from_dict({"from": "model.layer.{i}.q.weight", "to": "b.{i}"}, 1)]
    with remembering():
        assert find_groups_among(convs, SHAPES, strict=False).groups == []
        with pytest.raises(RecipeError, match="did you mean"):
            find_groups_among(convs, SHAPES)


def test_another_thread_keeps_its_own():
    convs = _convs([0])
    seen = []
    with remembering():
        mine = find_groups_among(convs, SHAPES, strict=False).groups
        thread = threading.Thread(target=lambda: seen.append(find_groups_among(convs, SHAPES, strict=False).groups))
        thread.start()
        thread.join()
    assert seen[0] == mine and not any(a is b for a, b in zip(seen[0], mine))


MAPPINGS = st.lists(st.sampled_from(sorted(SHAPES)), unique=True).flatmap(
    lambda keys: st.fixed_dictionaries({k: st.sampled_from([SHAPES[k], (4, 4), (2, 4)]) for k in keys}))


@settings(max_examples=300, deadline=None)
@given(picked=st.lists(st.integers(0, len(ENTRIES) - 1), min_size=1, max_size=4),
       asked=st.lists(st.tuples(MAPPINGS, st.booleans()), min_size=1, max_size=4), start=st.integers(1, 3))
def test_remembered_groups_are_those_find_groups_finds_for_every_mapping(picked, asked, start):
    """Whatever was asked before (other keys, other orders, other shapes, strict or not), the
    answer is what ``find_groups`` gives for this mapping, or the same error."""
    convs = _convs(picked)
    with remembering():
        for shapes, strict in asked:
            assert _outcome(find_groups_among, convs, shapes, strict, start) == _outcome(
                find_groups, convs, shapes, strict, start)


def _outcome(find, convs, shapes, strict, start):
    try:
        found = find(convs, shapes, strict=strict, start=start)
    except RecipeError as exc:  # a strict miss, an op that does not fit these shapes
        return str(exc)
    return found.groups, found.claimed


def _hf_meta_pair(layers: int = 3):
    """HF LLaMA names against Meta LLaMA names (the known conversion ``hf-llama-to-meta-llama``)."""
    block = {"self_attn.q_proj.weight": ("attention.wq.weight", (64, 64)),
             "self_attn.k_proj.weight": ("attention.wk.weight", (16, 64)),
             "self_attn.v_proj.weight": ("attention.wv.weight", (16, 64)),
             "self_attn.o_proj.weight": ("attention.wo.weight", (64, 64)),
             "mlp.gate_proj.weight": ("feed_forward.w1.weight", (96, 64)),
             "mlp.down_proj.weight": ("feed_forward.w2.weight", (64, 96)),
             "mlp.up_proj.weight": ("feed_forward.w3.weight", (96, 64)),
             "input_layernorm.weight": ("attention_norm.weight", (64,)),
             "post_attention_layernorm.weight": ("ffn_norm.weight", (64,))}
    hf = {"model.embed_tokens.weight": torch.empty(100, 64, device="meta")}
    meta = {"tok_embeddings.weight": torch.empty(100, 64, device="meta")}
    for i in range(layers):
        for name, (other, shape) in block.items():
            hf[f"model.layers.{i}.{name}"] = torch.empty(shape, device="meta")
            meta[f"layers.{i}.{other}"] = torch.empty(shape, device="meta")
    hf["model.norm.weight"], meta["norm.weight"] = torch.empty(64, device="meta"), torch.empty(64, device="meta")
    hf["lm_head.weight"], meta["output.weight"] = torch.empty(100, 64, device="meta"), torch.empty(100, 64, device="meta")
    return Checkpoint.from_mapping(hf), Checkpoint.from_mapping(meta)


def test_align_of_a_known_conversion_finds_each_entrys_groups_once(monkeypatch):
    source, target = _hf_meta_pair()
    calls = []
    real = groups_module._groups_of
    monkeypatch.setattr(groups_module, "_groups_of", lambda *a: calls.append(a[1]) or real(*a))
    al = align(source, target, auto="high", params={"heads": 4})
    entries = al.effective_recipe.convert
    assert entries and all(row.status == "converted" for row in al.rows)
    assert len(calls) == len(entries)  # graded, then the rows: each entry's groups found once
    shapes = {k: tuple(source.info(k).shape) for k in source}
    want = {t: g for g in find_groups(entries, shapes).groups for t in g.targets}
    assert all(row.convert == want[row.target] for row in al.rows)  # numbered as the entry is
    assert al.rows[1].reason.startswith("convert 2: rope_unpermute heads=4 of 'model.layers.0.self_attn.q_proj.weight'")
