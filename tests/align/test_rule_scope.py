"""``rule_scope``: the rules' regexes skipped on keys they cannot match, with the very results
(names, reasons, drops) of running every rule on every key."""
from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ckptlab.align.rule_scope import (
    find_groups_among,
    literal_head,
    passes_over,
    rename,
)
from ckptlab.errors import RecipeError
from ckptlab.recipe.conversion import Conversion
from ckptlab.recipe.groups import find_groups
from ckptlab.recipe.model import Recipe
from ckptlab.recipe.rules import Rule

KEYS = st.lists(st.text("ab._", max_size=7), max_size=12, unique=True)
ATOMS = ["a", "b", r"\.", ".", "*", "+", "?", "{1}", "(", ")", "[ab]", "|", r"\d", "$", "_"]
PATTERNS = st.lists(st.sampled_from(ATOMS), max_size=5).map(lambda parts: "^" + "".join(parts))


def _valid(pattern: str) -> bool:
    try:
        re.compile(pattern)
        return True
    except re.error:
        return False


RULES = st.one_of(
    st.sampled_from(["a.", "b", "a_"]).map(lambda p: {"strip_prefix": p}),
    st.sampled_from(["a.", "b_"]).map(lambda p: {"add_prefix": p}),
    st.tuples(PATTERNS.filter(_valid), st.sampled_from(["", "x.", "a"])).map(
        lambda pw: {"replace": {"pattern": pw[0], "with": pw[1]}}),
    st.sampled_from([r"a\.b", "b", r"^\d"]).map(lambda p: {"replace": {"pattern": p, "with": "z"}}),
    PATTERNS.filter(_valid).map(lambda p: {"drop": p}),
    st.sampled_from([r"^a", "b"]).map(lambda p: {"keep": p}),
)


@settings(max_examples=300, deadline=None)
@given(keys=KEYS, rules=st.lists(RULES, max_size=4), labelled=st.booleans())
def test_rename_gives_what_every_rule_on_every_key_gives(keys, rules, labelled):
    recipe = Recipe.from_dict({"rules": rules})
    labels = {0: "suggested, high"} if labelled else None
    assert rename(keys, recipe, labels) == recipe.rename(keys, labels)
    assert list(rename(keys, recipe, labels)) == keys  # in the keys' order


@settings(max_examples=500, deadline=None)
@given(pattern=PATTERNS.filter(_valid), key=st.text("ab._x", max_size=6))
def test_a_key_without_the_literal_head_never_matches(pattern, key):
    head = literal_head(pattern)
    if head and not key.startswith(head):
        assert re.search(pattern, key) is None


def test_literal_heads():
    assert literal_head(r"^model\.layers\.3\.mlp\.") == "model.layers.3.mlp."
    assert literal_head(r"^ab*c") == "a"          # b may be absent
    assert literal_head(r"^a\.(b|c)") == ""       # an alternation anywhere: not told
    assert literal_head(r"^\d+\.") == ""
    assert literal_head(r"model\.") == ""         # not anchored: may match anywhere


def test_passes_over_is_none_when_a_rule_may_touch_any_key():
    assert passes_over([Rule.from_dict({"add_prefix": "m."})]) is None
    assert passes_over([Rule.from_dict({"keep": "^a"})]) is None
    passes = passes_over([Rule.from_dict({"replace": {"pattern": r"^a\.", "with": "b."}})])
    assert passes("b.c") and not passes("a.c")


SHAPES = {"model.embed.weight": (10, 4), "model.layers.0.q.weight": (4, 4), "model.layers.0.k.weight": (4, 4),
          "model.layers.1.q.weight": (4, 4), "model.layers.1.k.weight": (4, 4), "model.layers.0.q.bias": (4,),
          "head.weight": (3, 4), "layers.0.q.weight": (4, 4)}
ENTRIES = [
    {"from": "model.layers.{i}.q.weight", "to": "blocks.{i}.q.weight"},
    {"from": ["model.layers.{i}.q.weight", "model.layers.{i}.k.weight"], "to": "blocks.{i}.qk.weight",
     "ops": [{"cat": 0}]},  # overlaps the first: it only gets what the first leaves
    {"from": "{a}.layers.{i}.q.{p}", "to": "x.{a}.{i}.{p}"},  # ends in a placeholder: every key offered
    {"from": "model.{name}.weight", "to": "m.{name}"},
    {"from": "head.weight", "to": "out.weight"},
]


@pytest.mark.parametrize("picked", [[0], [1], [0, 1], [1, 0], [2, 3], [3, 2, 4], [0, 1, 2, 3, 4]])
def test_find_groups_among_finds_what_find_groups_finds(picked):
    convs = [Conversion.from_dict(ENTRIES[i], n) for n, i in enumerate(picked, start=1)]
    want, got = find_groups(convs, SHAPES, strict=False), find_groups_among(convs, SHAPES, strict=False)
    assert got.groups == want.groups and got.claimed == want.claimed
    assert got.groups  # (something to compare)


def test_a_strict_miss_says_what_find_groups_says():
    convs = [Conversion.from_dict({"from": "model.layer.{i}.q.weight", "to": "b.{i}"}, 1)]
    with pytest.raises(RecipeError) as want:
        find_groups(convs, SHAPES)
    with pytest.raises(RecipeError) as got:
        find_groups_among(convs, SHAPES)
    assert str(got.value) == str(want.value) and "did you mean" in str(got.value)
