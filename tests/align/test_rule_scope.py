"""``rule_scope``: the rules' regexes skipped on keys they cannot match, with the very results
(names, reasons, drops) of running every rule on every key."""
from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from ckptlab.align.rule_scope import literal_head, passes_over, rename
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
