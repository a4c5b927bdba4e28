"""The rule/map grids, accepted suggestions and shape fixes as pure recipe edits."""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import ckptlab
from ckptlab.errors import AdaptError, RecipeError
from ckptlab.recipe import edits as editing
from ckptlab.recipe.adapt_spec import AdaptSpec
from ckptlab.recipe.model import Recipe
from ckptlab.recipe.rules import Rule
from tests.paths import SAMPLES


def rows(*items):
    return [dict(zip(editing.RULE_COLUMNS, item)) for item in items]


# -- rules grid -------------------------------------------------------------------------
prefixes = st.text(alphabet="abcxyz_.", min_size=1, max_size=8)
regexes = st.sampled_from([r"^fc\.", "backbone", r"\.weight$", r"^(a|b)\.", "^conv1\\."])
rule_strategy = st.one_of(
    st.builds(lambda p: Rule("strip_prefix", p), prefixes),
    st.builds(lambda p: Rule("add_prefix", p), prefixes),
    st.builds(lambda p, r: Rule("replace", p, r), regexes, st.sampled_from(["", "x.", "backbone_conv."])),
    st.builds(lambda p: Rule("drop", p), regexes),
    st.builds(lambda p: Rule("keep", p), regexes),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(rule_strategy, max_size=6))
def test_rules_grid_round_trip(rules: list[Rule]) -> None:
    recipe = Recipe(rules, {"t.w": "s.w"}, {"t.w": AdaptSpec("pad", 1)}, "net")
    back = editing.with_rule_rows(recipe, editing.rules_to_rows(recipe))
    assert back == recipe


@settings(max_examples=40, deadline=None)
@given(st.lists(rule_strategy, min_size=1, max_size=6), st.randoms())
def test_position_column_orders_rules(rules: list[Rule], rnd) -> None:
    grid = editing.rules_to_rows(Recipe(rules))
    shuffled = grid[:]
    rnd.shuffle(shuffled)          # the grid's line order does not matter, positions do
    assert editing.rows_to_rules(shuffled) == rules


def test_reordering_by_position_changes_the_result() -> None:
    grid = rows((1, "strip_prefix", "module.", ""), (2, "add_prefix", "backbone.", ""))
    keys = ["module.conv.weight"]
    first = Recipe(editing.rows_to_rules(grid)).rename(keys)
    grid[1]["position"] = 0
    second = Recipe(editing.rows_to_rules(grid)).rename(keys)
    assert first["module.conv.weight"][0] == "backbone.conv.weight"
    assert second["module.conv.weight"][0] == "backbone.module.conv.weight"


def test_blank_and_unnumbered_rows() -> None:
    grid = rows((None, "add_prefix", "z.", None), (2, "strip_prefix", "a.", None), (float("nan"), None, None, None),
                (1, "drop", "^fc", ""))
    assert editing.rows_to_rules(grid) == [Rule("drop", "^fc"), Rule("strip_prefix", "a."), Rule("add_prefix", "z.")]


def test_lines_being_typed_are_skipped_and_reported() -> None:
    grid = rows((1, "strip_prefix", None, None), (2, None, "module.", None), (3, "add_prefix", "a.", None),
                (None, None, None, None), (4, None, None, "x"))
    assert editing.rows_to_rules(grid) == [Rule("add_prefix", "a.")]
    assert editing.incomplete_rows(grid) == [1, 2, 5]


def test_replacement_beside_other_kind_is_ignored() -> None:
    assert editing.rows_to_rules(rows((1, "strip_prefix", "module.", "leftover"))) == [Rule("strip_prefix", "module.")]


def test_replace_rule_from_grid() -> None:
    rules = editing.rows_to_rules(rows((1, "replace", r"^conv1\.", "backbone_conv.")))
    assert rules == [Rule("replace", r"^conv1\.", "backbone_conv.")]
    assert rules[0].to_dict() == {"replace": {"pattern": r"^conv1\.", "with": "backbone_conv."}}


@pytest.mark.parametrize("grid, match", [
    (rows((1, "add_prefix", "a.", ""), (2, "replace", "(", "x")), r"^rule 2 \(replace\): bad regex"),
    (rows((1, "unknown", "x", "")), r"^rule 1: unknown rule kind"),
    (rows(("first", "drop", "x", "")), r"position 'first' is not a number"),
])
def test_invalid_rows_name_the_rule(grid, match) -> None:
    with pytest.raises(RecipeError, match=match) as info:
        editing.rows_to_rules(grid)
    assert "\n" not in str(info.value)


def test_rule_numbers_in_errors_follow_positions() -> None:
    grid = rows((5, "drop", "[", ""), (1, "add_prefix", "a.", ""))
    with pytest.raises(RecipeError, match=r"^rule 2 \(drop\)"):
        editing.rows_to_rules(grid)


# -- map grid ----------------------------------------------------------------------------
def test_map_grid_round_trip_and_blank_rows() -> None:
    recipe = Recipe([Rule("add_prefix", "a.")], {"backbone_conv.weight": "conv1.weight", "x": "y"})
    grid = editing.map_to_rows(recipe) + [{"target": None, "source": float("nan")}]
    assert editing.with_map_rows(recipe, grid) == recipe


@pytest.mark.parametrize("grid, match", [
    ([{"target": "a", "source": ""}], r"map row 1: the source key is empty"),
    ([{"target": "a", "source": "b"}, {"target": None, "source": "c"}], r"map row 2: the target key is empty"),
    ([{"target": "a", "source": "b"}, {"target": "a", "source": "c"}], r"map row 2: target 'a' is already mapped"),
])
def test_invalid_map_rows(grid, match) -> None:
    with pytest.raises(RecipeError, match=match):
        editing.rows_to_map(grid)


# -- suggestions -------------------------------------------------------------------------
def test_accepting_the_prefix_suggestion_feeds_every_attention_map_key() -> None:
    source, target = str(SAMPLES / "attention_net_ckpt.pt"), str(SAMPLES / "attention_wrapper.pt")
    recipe = Recipe()
    before = ckptlab.align(source, target, recipe, auto="none")
    for suggestion in before.suggestions:          # accept the high ones, as a visitor would
        if suggestion.confidence == "high":
            recipe = editing.accept_suggestion(recipe, suggestion.rule)
    after = ckptlab.align(source, target, recipe, auto="none")
    wrapped = {k for k in ckptlab.open(target).keys() if k.startswith("attention_map.")}
    source_keys = set(torch.load(SAMPLES / "attention_net_ckpt.pt", weights_only=True)["net"])
    assert wrapped == {"attention_map." + k for k in source_keys}
    assert {r.target for r in after.rows if r.status == "renamed"} == wrapped
    assert after.fed_warning is None and before.fed_warning is not None  # the empty-load alarm is gone


def test_accepting_twice_adds_the_rule_once() -> None:
    once = editing.accept_suggestion(Recipe(), {"add_prefix": "attention_map."})
    assert editing.accept_suggestion(once, {"add_prefix": "attention_map."}) == once
    assert once.rules == [Rule("add_prefix", "attention_map.")]


def test_accepting_map_adapt_and_container_fragments() -> None:
    recipe = editing.accept_suggestion(Recipe(), {"map": {"t": "s"}})
    recipe = editing.accept_suggestion(recipe, {"adapt": {"fc.weight": {"op": "pad", "dim": 0, "fill": "init"}}})
    recipe = editing.accept_suggestion(recipe, {"container": "net"})
    assert recipe == Recipe([], {"t": "s"}, {"fc.weight": AdaptSpec("pad", 0, "init")}, "net")


def test_describe_fragment_and_ids() -> None:
    assert editing.describe_fragment({"add_prefix": "attention_map."}) == "add_prefix 'attention_map.'"
    assert editing.describe_fragment({"map": {"a": "b"}}) == "map 'a' <- 'b'"
    assert editing.describe_fragment({"container": "net"}) == "use container 'net'"
    assert "pad dim 1" in editing.describe_fragment({"adapt": {"conv1.weight": {"op": "pad", "dim": 1}}})
    assert editing.fragment_id({"a": 1, "b": 2}) == editing.fragment_id({"b": 2, "a": 1})
    assert editing.fragment_id({"add_prefix": "x."}) != editing.fragment_id({"add_prefix": "y."})


# -- shape fixes -------------------------------------------------------------------------
@pytest.mark.parametrize("src, dst, expected", [
    ((8, 3, 3, 3), (8, 4, 3, 3), AdaptSpec("pad", 1)),
    ((100, 16), (10, 16), None),          # only a lossy op fits: the visitor chooses it, never the page
    ((4, 4), (5, 6), None),
    ((4,), (4, 1), AdaptSpec("reinit")),
])
def test_default_fix(src, dst, expected) -> None:
    spec = editing.default_fix(src, dst)
    assert spec == expected
    if spec is not None and spec.op != "reinit":
        assert editing.shape_fix(src, dst, spec.op, spec.dim, spec.fill)[1] == dst


def test_shape_fix_turns_the_rgb_row_adapted_and_the_merge_matches_old_weights() -> None:
    source, target = str(SAMPLES / "convnet_rgb.pt"), str(SAMPLES / "convnet_rgba.pt")
    al = ckptlab.align(source, target, Recipe(), auto="none")
    row = al.row("conv1.weight")
    assert row.status == "mismatch"
    recipe = editing.with_shape_fix(Recipe(), row.target, row.source_shape, row.target_shape, "pad", 1, "zeros")
    fixed = ckptlab.align(source, target, recipe, auto="none")
    assert fixed.row("conv1.weight").status == "adapted"
    from ckptlab import merge

    merged = merge.merged_tensor(merge.plan(fixed), "conv1.weight")
    original = torch.load(SAMPLES / "convnet_rgb.pt", weights_only=True)["conv1.weight"]
    assert torch.equal(merged[:, :3], original) and torch.count_nonzero(merged[:, 3]) == 0


def test_shape_fix_that_cannot_fit_raises_and_leaves_recipe() -> None:
    recipe = Recipe()
    with pytest.raises(AdaptError, match="conv1.weight"):
        editing.with_shape_fix(recipe, "conv1.weight", (8, 4, 3, 3), (8, 3, 3, 3), "pad", 1)
    assert recipe == Recipe()


def test_fill_ignored_for_ops_without_one_and_removal() -> None:
    spec, shape = editing.shape_fix((10, 16), (100, 16), "reinit", None, "mean")
    assert spec == AdaptSpec("reinit") and shape == (100, 16)
    recipe = editing.with_shape_fix(Recipe(), "fc.weight", (10, 16), (100, 16), "pad", 0, "mean")
    assert recipe.adapt == {"fc.weight": AdaptSpec("pad", 0, "mean")}
    assert editing.without_shape_fix(recipe, "fc.weight") == Recipe()


def test_differing_dims() -> None:
    assert editing.differing_dims((8, 3, 3, 3), (8, 4, 3, 3)) == [1]
    assert editing.differing_dims((2, 2), (3, 3)) == [0, 1]
    assert editing.differing_dims((2,), (2, 1)) == [0, 1]
    assert editing.differing_dims((1,), (1,)) == []


def test_pretrained_keys_leave_out_what_trains_as_new() -> None:
    """A grown head is fed (adapted) yet trains at lr x mult: the param groups agree."""
    from ckptlab.models.finetune import param_groups
    from sample_ckpts.models import Classifier

    recipe = {"rules": [{"strip_prefix": "classifier."}],
              "adapt": {"fc.weight": {"op": "pad", "dim": 0, "fill": "init"}, "fc.bias": {"op": "pad", "fill": "init"}}}
    alignment = ckptlab.align(SAMPLES / "projector.pt", SAMPLES / "classifier_100.pt", recipe, auto="none")
    assert {"fc.weight", "fc.bias"} <= set(alignment.fed)
    assert editing.pretrained_keys(alignment.fed, "") == alignment.fed
    kept = editing.pretrained_keys(alignment.fed, r"^fc\.")
    assert kept == [k for k in alignment.fed if not k.startswith("fc.")]
    model = Classifier(100)
    groups = {g["name"]: g for g in param_groups(model, kept, lr=0.01, new_lr_mult=10.0)}
    names = {id(p): n for n, p in model.named_parameters()}
    assert sorted(names[id(p)] for p in groups["new"]["params"]) == ["fc.bias", "fc.weight"]
    assert groups["new"]["lr"] == pytest.approx(0.1)
    with pytest.raises(RecipeError, match=r"train-as-new pattern '\(' is not a valid regex"):
        editing.pretrained_keys(alignment.fed, "(")
