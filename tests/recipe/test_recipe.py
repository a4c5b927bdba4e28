"""Recipes: rule semantics, exact YAML/JSON round trips, one-line errors naming the rule."""
from __future__ import annotations

import json
import re

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from ckptlab.errors import RecipeError
from ckptlab.recipe.adapt_spec import AdaptSpec
from ckptlab.recipe.model import Recipe
from ckptlab.recipe.rules import Rule
from ckptlab.vocab import ADAPT_FILLS, ADAPT_OPS

FULL = {
    "rules": [
        {"strip_prefix": "module."},
        {"add_prefix": "attention_map."},
        {"replace": {"pattern": r"^conv1\.", "with": "backbone_conv."}},
        {"drop": r"^fc\."},
        {"keep": "backbone"},
    ],
    "map": {"backbone_conv.weight": "conv1.weight"},
    "adapt": {"conv1.weight": {"op": "pad", "dim": 1}, "fc.weight": {"op": "truncate"},
              "fc.bias": {"op": "pad", "dim": 0, "fill": "init"}},
    "container": "net",
}


# -- round trips --------------------------------------------------------------------------
def test_full_recipe_round_trips_through_dict_yaml_json_and_files(tmp_path):
    recipe = Recipe.from_dict(FULL)
    assert recipe.to_dict() == FULL
    assert Recipe.from_dict(recipe.to_dict()) == recipe
    assert Recipe.from_text(recipe.to_yaml()) == recipe
    assert Recipe.from_text(recipe.to_yaml()).to_yaml() == recipe.to_yaml()
    assert Recipe.from_text(recipe.to_json()) == recipe
    assert json.loads(recipe.to_json()) == FULL
    for name in ("r.yaml", "r.json"):
        path = recipe.save(tmp_path / name)
        assert Recipe.load(path) == recipe
        assert Recipe.coerce(str(path)) == recipe
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json", "r.yaml"]  # no temp files left


def test_yaml_is_the_design_document_form():
    text = """
rules:
  - strip_prefix: "module."
  - replace: {pattern: "^conv1\\\\.", with: "backbone_conv."}
map:
  backbone_conv.weight: conv1.weight
adapt:
  conv1.weight: {op: pad, dim: 1, fill: zeros}
"""
    recipe = Recipe.from_text(text)
    assert recipe.rules == [Rule("strip_prefix", "module."), Rule("replace", r"^conv1\.", "backbone_conv.")]
    assert recipe.map == {"backbone_conv.weight": "conv1.weight"}
    assert recipe.adapt == {"conv1.weight": AdaptSpec("pad", 1, "zeros")}
    assert recipe.container is None


def test_empty_and_none_recipes_are_empty():
    assert Recipe.coerce(None) == Recipe() == Recipe.from_text("") == Recipe.from_dict({})
    assert Recipe().to_dict() == {"rules": []}


def test_with_methods_copy_and_never_mutate():
    base = Recipe.from_dict(FULL)
    before = base.to_dict()
    grown = base.with_rule({"drop": "x"}).with_map("a", "b").with_adapt("c", {"op": "reinit"})
    assert base.to_dict() == before
    assert grown.rules[-1] == Rule("drop", "x")
    assert grown.map["a"] == "b" and grown.adapt["c"] == AdaptSpec("reinit")
    assert base.merged({"map": {"t": "s"}}).map["t"] == "s"
    assert base.merged({"container": "state_dict"}).container == "state_dict"
    assert base.merged({"add_prefix": "p."}).rules[-1] == Rule("add_prefix", "p.")


# -- rule semantics -----------------------------------------------------------------------
def test_each_rule_kind_renames_as_documented():
    keys = ["module.conv1.weight", "module.fc.bias", "head.w"]
    cases = {
        "strip_prefix": ({"strip_prefix": "module."}, ["conv1.weight", "fc.bias", "head.w"]),
        "add_prefix": ({"add_prefix": "net."}, ["net.module.conv1.weight", "net.module.fc.bias", "net.head.w"]),
        "replace": ({"replace": {"pattern": r"\.conv(\d)\.", "with": r".c\1."}},
                    ["module.c1.weight", "module.fc.bias", "head.w"]),
        "drop": ({"drop": r"\.fc\."}, ["module.conv1.weight", None, "head.w"]),
        "keep": ({"keep": "^module"}, ["module.conv1.weight", "module.fc.bias", None]),
    }
    for kind, (rule, expected) in cases.items():
        out = Recipe.from_dict({"rules": [rule]}).rename(keys)
        assert [out[k][0] for k in keys] == expected, kind
        # the rule's own apply agrees with the recipe engine
        assert [Rule.from_dict(rule).apply(k) for k in keys] == expected, kind


def test_rename_reasons_name_rules_by_position():
    recipe = Recipe.from_dict({"rules": [{"strip_prefix": "module."}, {"drop": r"^fc\."},
                                         {"add_prefix": "net."}, {"keep": "conv"}]})
    out = recipe.rename(["module.conv1.weight", "module.fc.bias", "bn.weight", "conv2.w"])
    assert out["module.conv1.weight"] == ("net.conv1.weight", "strip_prefix 'module.' (rule 1); add_prefix 'net.' (rule 3)")
    assert out["module.fc.bias"] == (None, "dropped by rule 2 (drop '^fc\\.')")
    assert out["bn.weight"] == (None, "not kept by rule 4 (keep 'conv')")
    assert out["conv2.w"] == ("net.conv2.w", "add_prefix 'net.' (rule 3)")
    assert recipe.rename(["conv.y"], {2: "suggested, high"})["conv.y"][1] == "add_prefix 'net.' (suggested, high)"


def test_rule_order_changes_the_result():
    strip_then_add = Recipe.from_dict({"rules": [{"strip_prefix": "a."}, {"add_prefix": "a."}]})
    add_then_strip = Recipe.from_dict({"rules": [{"add_prefix": "a."}, {"strip_prefix": "a."}]})
    assert strip_then_add.rename(["b.w"])["b.w"][0] == "a.b.w"
    assert add_then_strip.rename(["b.w"])["b.w"][0] == "b.w"
    drop_first = Recipe.from_dict({"rules": [{"drop": "^x"}, {"replace": {"pattern": "^y", "with": "x"}}]})
    replace_first = Recipe.from_dict({"rules": [{"replace": {"pattern": "^y", "with": "x"}}, {"drop": "^x"}]})
    assert drop_first.rename(["y.w"])["y.w"][0] == "x.w"
    assert replace_first.rename(["y.w"])["y.w"][0] is None


# -- invalid recipes: one line, naming the rule or key --------------------------------------
INVALID = [
    ({"rules": [{"strip_prefix": "m."}, {"add_prefix": "p."}, {"replace": {"pattern": "(", "with": "x"}}]},
     "rule 3 (replace): bad regex '(': missing ), unterminated subpattern at position 0"),
    ({"rules": [{"drop": "[a-"}]}, "rule 1 (drop): bad regex '[a-'"),
    ({"rules": [{"keep": "*x"}]}, "rule 1 (keep): bad regex '*x'"),
    ({"rules": [{"strip_prefix": "m."}, {"rename": "x"}]}, "rule 2: unknown rule kind 'rename'"),
    ({"rules": [{"strip_prefix": 3}]}, "rule 1 (strip_prefix): expected a string, got int"),
    ({"rules": [{"add_prefix": ["a"]}]}, "rule 1 (add_prefix): expected a string, got list"),
    ({"rules": [{"add_prefix": ""}]}, "rule 1 (add_prefix): empty prefix"),
    ({"rules": [{"replace": "x"}]}, "rule 1 (replace): expected {pattern: ..., with: ...}, got str"),
    ({"rules": [{"replace": {"pattern": "a"}}]}, "rule 1 (replace): needs both 'pattern' and 'with'"),
    ({"rules": [{"replace": {"pattern": "a", "with": 1}}]}, "rule 1 (replace): 'with' must be a string, got int"),
    ({"rules": [{"replace": {"pattern": "a", "with": "b", "count": 1}}]}, "rule 1 (replace): unknown field 'count'"),
    ({"rules": [{"replace": {"pattern": "a", "with": r"\1"}}]}, "rule 1 (replace): bad replacement"),
    ({"rules": [{"strip_prefix": "a", "add_prefix": "b"}]}, "rule 1: expected one 'kind: argument' pair, got 2 keys"),
    ({"rules": ["strip_prefix"]}, "rule 1: expected one 'kind: argument' pair, got str"),
    ({"rules": {"strip_prefix": "a"}}, "recipe: 'rules' must be a list, got dict"),
    ({"map": {"a": 1}}, "map: 'a': 1 is not str -> str"),
    ({"map": ["a"]}, "recipe: 'map' must be a mapping"),
    ({"adapt": {"fc.weight": {"op": "grow"}}}, "adapt 'fc.weight': unknown op 'grow'"),
    ({"adapt": {"fc.weight": {"op": "pad", "fill": "ones"}}}, "adapt 'fc.weight': unknown fill 'ones'"),
    ({"adapt": {"fc.weight": {"op": "pad", "dim": "1"}}}, "adapt 'fc.weight': dim must be an integer, got str"),
    ({"adapt": {"fc.weight": {"op": "pad", "dim": True}}}, "adapt 'fc.weight': dim must be an integer, got bool"),
    ({"adapt": {"fc.weight": {"dim": 0}}}, "adapt 'fc.weight': needs an 'op'"),
    ({"adapt": {"fc.weight": "pad"}}, "adapt 'fc.weight': expected {op: ..., dim: ..., fill: ...}, got str"),
    ({"adapt": {"fc.weight": {"op": "pad", "size": 3}}}, "adapt 'fc.weight': unknown field 'size'"),
    ({"container": 3}, "recipe: 'container' must be a string, got int"),
    ({"rulez": []}, "recipe: unknown key 'rulez'"),
    (["rules"], "recipe: expected a mapping at the top level, got list"),
]


@pytest.mark.parametrize("data, message", INVALID, ids=[m.split(":")[0] + str(i) for i, (_, m) in enumerate(INVALID)])
def test_invalid_recipes_raise_one_line_errors(data, message):
    with pytest.raises(RecipeError) as info:
        Recipe.from_dict(data)
    text = str(info.value)
    assert text.startswith(message)
    assert "\n" not in text


def test_invalid_yaml_and_unreadable_files(tmp_path):
    with pytest.raises(RecipeError, match=r"^recipe: not valid YAML at line 1, column \d+") as info:
        Recipe.from_text("rules: [a: b")
    assert "\n" not in str(info.value)
    missing = tmp_path / "nope.yaml"
    with pytest.raises(RecipeError, match="nope.yaml: cannot read recipe"):
        Recipe.load(missing)
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  - drop: '('\n")
    with pytest.raises(RecipeError, match=r"bad.yaml: rule 1 \(drop\): bad regex"):
        Recipe.coerce(bad)
    with pytest.raises(RecipeError, match="expected a Recipe, a dict or a path, got int"):
        Recipe.coerce(3)


def test_yaml_loading_is_safe(tmp_path):
    """A YAML tag that would construct a Python object is refused, not executed."""
    with pytest.raises(RecipeError, match="not valid YAML"):
        Recipe.from_text("rules: !!python/object/apply:os.system ['echo hi']")


def test_direct_construction_validates_too():
    with pytest.raises(RecipeError, match="unknown rule kind"):
        Rule("rename", "x")
    with pytest.raises(RecipeError, match="bad regex"):
        Rule("drop", "(")
    with pytest.raises(RecipeError, match="unknown op"):
        AdaptSpec("grow")


# -- properties ---------------------------------------------------------------------------
_text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=12)
_regex = st.sampled_from([r"^conv1\.", r"\.fc\.", "bias$", "(a|b)", r"\d+", "layers", "^", "x*"])
_rule = st.one_of(
    st.builds(lambda p: {"strip_prefix": p}, _text),
    st.builds(lambda p: {"add_prefix": p}, _text),
    st.builds(lambda p, w: {"replace": {"pattern": p, "with": w.replace("\\", "")}}, _regex, _text),
    st.builds(lambda p: {"drop": p}, _regex),
    st.builds(lambda p: {"keep": p}, _regex),
)
_adapt = st.builds(lambda op, dim, fill: {k: v for k, v in (("op", op), ("dim", dim), ("fill", fill))
                                          if v is not None and not (k == "fill" and v == "zeros")},
                   st.sampled_from(ADAPT_OPS), st.one_of(st.none(), st.integers(-4, 4)), st.sampled_from(ADAPT_FILLS))
_recipe = st.builds(
    lambda rules, mapping, adapt, container: {
        "rules": rules, **({"map": mapping} if mapping else {}), **({"adapt": adapt} if adapt else {}),
        **({"container": container} if container is not None else {})},
    st.lists(_rule, max_size=6), st.dictionaries(_text, _text, max_size=3),
    st.dictionaries(_text, _adapt, max_size=3), st.one_of(st.none(), _text))


@settings(max_examples=150, deadline=None)
@given(_recipe)
def test_save_and_load_is_the_identity(data):
    recipe = Recipe.from_dict(data)
    assert recipe.to_dict() == data
    assert Recipe.from_text(recipe.to_yaml()) == recipe
    assert Recipe.from_text(recipe.to_yaml()).to_yaml() == recipe.to_yaml()
    assert Recipe.from_text(recipe.to_json()) == recipe
    assert yaml.safe_load(recipe.to_yaml()) == data


@settings(max_examples=150, deadline=None)
@given(st.lists(_rule, max_size=6), st.lists(st.from_regex(r"[a-z_]{1,6}(\.[a-z0-9_]{1,6}){0,3}", fullmatch=True),
                                              max_size=20, unique=True))
def test_rename_is_deterministic_and_keeps_every_key(rules, keys):
    recipe = Recipe.from_dict({"rules": rules})
    try:
        first = recipe.rename(keys)
    except RecipeError as exc:  # rules that grow a key past the limit (x* -> 9 chars per position)
        assert "MAX_KEY_CHARS" in str(exc)
        with pytest.raises(RecipeError, match="MAX_KEY_CHARS"):
            for key in keys:
                for rule in recipe.rules:
                    key = rule.apply(key)
                    if key is None:
                        break
        return
    second = Recipe.from_dict(recipe.to_dict()).rename(list(keys))
    assert first == second
    assert list(first) == keys  # one entry per source key, in order
    for key, (new, why) in first.items():
        expected = key
        for rule in recipe.rules:
            expected = rule.apply(expected)
            if expected is None:
                break
        assert new == expected
        assert (new is None) == why.startswith(("dropped by", "not kept by"))
        assert bool(why) or new == key
    assert all(re.fullmatch(r"(.*\(rule \d+\)(; )?)*", why) or new is None for new, why in first.values())


@pytest.mark.parametrize("data, hint", [
    ({"rules": [{"strip_prefx": "module."}]}, "unknown rule kind 'strip_prefx' (did you mean 'strip_prefix'?"),
    ({"rule": [{"strip_prefix": "module."}]}, "unknown key 'rule' (did you mean 'rules'?"),
    ({"adapt": {"fc.weight": {"op": "padd"}}}, "unknown op 'padd' (did you mean 'pad'?"),
    ({"adapt": {"fc.weight": {"op": "pad", "fill": "zero"}}}, "unknown fill 'zero' (did you mean 'zeros'?"),
    ({"rules": [{"replace": {"pattern": "a", "width": "b"}}]}, "unknown field 'width' (did you mean 'with'?"),
])
def test_a_typo_is_named_with_its_likely_fix(tmp_path, data, hint):
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(RecipeError) as info:
        Recipe.load(path)
    message = str(info.value)
    assert hint in message and "recipe.yaml" in message and "\n" not in message


def test_an_unrelated_word_gets_no_guess():
    with pytest.raises(RecipeError) as info:
        Recipe.from_dict({"rules": [{"frobnicate": "x"}]})
    assert "did you mean" not in str(info.value) and "expected strip_prefix" in str(info.value)
