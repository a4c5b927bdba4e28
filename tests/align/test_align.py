"""align: row statuses, reasons, conflicts, the explicit map, adapters, views, invariants."""
from __future__ import annotations

import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import ckptlab
from ckptlab.align.matcher import STATUSES, Alignment, Row, align
from ckptlab.errors import AdaptError, RecipeError
from ckptlab.recipe.adapt_spec import AdaptSpec
from ckptlab.recipe.adapters import preview_shape
from ckptlab.recipe.model import Recipe


def t(*shape, dtype=torch.float32):
    return torch.zeros(shape, dtype=dtype)


def test_contract_entry_point_is_the_function():
    import importlib

    module = importlib.import_module("ckptlab.align")  # importing the package must not shadow the function
    assert ckptlab.align is align and module.align is align
    assert isinstance(ckptlab.align({"a": t(1)}, {"a": t(1)}), Alignment)


def test_every_status_with_its_reason():
    source = {"a.w": t(2, 3), "old.w": t(4), "m.w": t(5, 3), "x.w": t(1), "y.w": t(1), "gone.w": t(7),
              "fc.w": t(3)}
    target = {"a.w": t(2, 3), "new.w": t(4), "m.w": t(5, 4), "z.w": t(1), "lonely.w": t(9), "fc.w": t(6)}
    recipe = {"rules": [{"replace": {"pattern": "^old\\.", "with": "new."}},
                        {"replace": {"pattern": "^[xy]\\.", "with": "z."}}],
              "adapt": {"fc.w": {"op": "pad", "dim": 0}}}
    al = align(source, target, recipe, auto="none")
    assert [r.target for r in al.rows] == [*target, None, None][: len(al.rows)]
    by = {r.target: r for r in al.rows if r.target}
    assert by["a.w"].status == "exact" and by["a.w"].reason == "same key and shape"
    assert by["new.w"].status == "renamed" and by["new.w"].source == "old.w"
    assert by["new.w"].reason == "replace '^old\\.' -> 'new.' (rule 1)"
    assert by["m.w"].status == "mismatch" and by["m.w"].reason == "shape (5, 3) vs (5, 4): dim 1 differs"
    assert by["z.w"].status == "conflict" and by["z.w"].source is None
    assert by["z.w"].sources == ("x.w", "y.w")
    assert by["z.w"].reason.startswith("2 source keys map here: 'x.w' (replace")
    assert by["lonely.w"].status == "missing" and by["lonely.w"].reason == "no source key maps here"
    assert by["fc.w"].status == "adapted" and by["fc.w"].adapt == AdaptSpec("pad", 0)
    assert by["fc.w"].reason == "adapt pad dim 0 (fill zeros): (3,) -> (6,) (explicit)"
    unused = [r for r in al.rows if r.status == "unused"]
    assert [r.source for r in unused] == ["gone.w"]
    assert unused[0].target is None and unused[0].reason == "the target has no such key"
    assert al.summary == {"exact": 1, "renamed": 1, "adapted": 1, "converted": 0, "mismatch": 1, "missing": 1,
                          "unused": 1, "conflict": 1}
    assert al.fed == ["a.w", "new.w", "fc.w"]


def test_rank_and_multi_dim_differences_are_described():
    al = align({"a": t(2, 3), "b": t(2, 3)}, {"a": t(6), "b": t(3, 4)}, auto="none")
    assert al.row("a").reason == "shape (2, 3) vs (6,): rank 2 vs 1"
    assert al.row("b").reason == "shape (2, 3) vs (3, 4): dims 0, 1 differ"


def test_adapter_that_cannot_fit_leaves_a_mismatch_naming_why():
    al = align({"w": t(10, 3)}, {"w": t(10, 4)}, {"adapt": {"w": {"op": "truncate", "dim": 1}}}, auto="none")
    row = al.row("w")
    assert row.status == "mismatch" and row.adapt == AdaptSpec("truncate", 1)
    with pytest.raises(AdaptError) as info:
        preview_shape((10, 3), (10, 4), AdaptSpec("truncate", 1))
    detail = info.value.message.rsplit(": ", 1)[-1]
    assert "cannot grow" in detail
    assert row.reason == f"shape (10, 3) vs (10, 4): dim 1 differs; adapt truncate dim 1 does not fit: {detail}"


def test_reinit_adapter_marks_even_a_fitting_tensor_adapted():
    al = align({"w": t(2)}, {"w": t(2)}, {"adapt": {"w": {"op": "reinit"}}}, auto="none")
    assert al.row("w").status == "adapted"


def test_dtype_difference_is_noted_and_target_dtype_kept():
    al = align({"w": t(2, dtype=torch.float16)}, {"w": t(2)}, auto="none")
    row = al.row("w")
    assert row.status == "exact"
    assert row.source_dtype == "float16" and row.target_dtype == "float32"
    assert "dtype float16 vs float32 (the merge keeps float32)" in row.reason


def test_explicit_map_wins_over_rules_and_can_reuse_a_source():
    source = {"emb.w": t(4, 2), "head.w": t(4, 2)}
    target = {"emb.w": t(4, 2), "head.w": t(4, 2)}
    al = align(source, target, {"map": {"head.w": "emb.w"}}, auto="none")  # tie the head to the embedding
    assert al.row("emb.w").status == "exact"
    head = al.row("head.w")
    assert head.status == "renamed" and head.source == "emb.w" and head.reason == "map (explicit)"
    unused = al.by_status("unused")
    assert [r.source for r in unused] == ["head.w"]
    assert unused[0].reason == "'head.w' is fed by map (explicit) instead"


def test_map_naming_an_absent_source_key_is_a_missing_row():
    al = align({"a": t(1)}, {"b": t(1)}, {"map": {"b": "nope"}}, auto="none")
    assert al.row("b").status == "missing"
    assert al.row("b").reason == "map names 'nope', which the source does not have"


def test_drop_and_keep_explain_both_sides():
    source = {"backbone.w": t(1), "fc.w": t(2)}
    target = {"backbone.w": t(1), "fc.w": t(2)}
    al = align(source, target, {"rules": [{"keep": "backbone"}]}, auto="none")
    assert al.row("fc.w").status == "missing"
    assert al.row("fc.w").reason == "no source key maps here (the source's 'fc.w' was not kept by rule 1 (keep 'backbone'))"
    assert al.by_status("unused")[0].reason == "not kept by rule 1 (keep 'backbone')"


def test_renamed_away_source_says_where_it_went():
    al = align({"a.w": t(1)}, {"a.w": t(1)}, {"rules": [{"add_prefix": "p."}]}, auto="none")
    assert al.row("a.w").reason == "no source key maps here (the source's 'a.w' was renamed to 'p.a.w')"
    assert al.by_status("unused")[0].reason == "renamed to 'p.a.w', which the target does not have (add_prefix 'p.' (rule 1))"


def test_rule_order_changes_the_alignment():
    source, target = {"enc.w": t(1)}, {"backbone.w": t(1)}
    good = [{"replace": {"pattern": "^enc\\.", "with": "backbone."}}, {"drop": "^enc"}]
    bad = list(reversed(good))
    assert align(source, target, {"rules": good}, auto="none").row("backbone.w").status == "renamed"
    assert align(source, target, {"rules": bad}, auto="none").row("backbone.w").status == "missing"


def test_sources_of_every_kind_give_the_same_rows(tmp_path):
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    sd = model.state_dict()
    path = tmp_path / "m.pt"
    torch.save(sd, path)
    expected = [(k, "exact") for k in sd]
    for source in (sd, model, str(path), path, ckptlab.open(path)):
        al = align(source, model)
        assert [(r.target, r.status) for r in al.rows] == expected


def test_frame_and_dict_views():
    al = align({"a": t(2, 3), "b": t(1)}, {"a": t(2, 3), "c": t(4)}, auto="none")
    frame = al.to_frame()
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == ["target", "target_shape", "target_dtype", "source", "source_shape",
                                   "source_dtype", "status", "reason"]
    assert frame.iloc[0].to_dict() == {"target": "a", "target_shape": "(2, 3)", "target_dtype": "float32",
                                       "source": "a", "source_shape": "(2, 3)", "source_dtype": "float32",
                                       "status": "exact", "reason": "same key and shape"}
    assert list(frame.status) == ["exact", "missing", "unused"]
    data = al.to_dict()
    assert set(data) == {"rows", "summary", "suggestions", "warning", "warnings"}
    assert data["rows"][0] == {"target": "a", "source": "a", "status": "exact", "target_shape": [2, 3],
                               "source_shape": [2, 3], "reason": "same key and shape"}
    assert data["rows"][1]["source_shape"] is None and data["rows"][2]["target"] is None
    assert list(data["summary"]) == list(STATUSES)
    with pytest.raises(KeyError):
        al.row("nope")


def test_auto_must_be_a_known_level():
    with pytest.raises(RecipeError, match="auto: expected one of none, high, all"):
        align({"a": t(1)}, {"a": t(1)}, auto="some")


def test_warning_when_fewer_than_half_are_fed():
    target = {f"k{i}": t(1) for i in range(5)}
    assert align({"k0": t(1), "k1": t(1)}, target).warning == \
        "only 2 of 5 target keys are fed by the source; no suggestion explains the rest"
    assert align({"k0": t(1), "k1": t(1), "k2": t(1)}, target).warning is None
    assert align({"x": t(3)}, target).warning.startswith("only 0 of 5 target keys are fed")


# -- invariants ---------------------------------------------------------------------------
_names = st.lists(st.from_regex(r"(m\.|a\.b\.)?[a-d]{1,2}\.(w|b)", fullmatch=True), min_size=1, max_size=12, unique=True)
_rules = st.lists(st.sampled_from([{"strip_prefix": "m."}, {"add_prefix": "m."}, {"strip_prefix": "a.b."},
                                   {"replace": {"pattern": r"^(\w)", "with": "a"}}, {"drop": "^c"},
                                   {"keep": r"\.w$"}, {"replace": {"pattern": r"\.b$", "with": ".w"}}]), max_size=4)


@settings(max_examples=120, deadline=None)
@given(_names, _names, _rules, st.sampled_from(["none", "high", "all"]), st.data())
def test_no_key_is_lost_or_duplicated(source_names, target_names, rules, auto, data):
    shapes = st.sampled_from([(1,), (2,), (2, 3)])
    source = {k: t(*data.draw(shapes)) for k in source_names}
    target = {k: t(*data.draw(shapes)) for k in target_names}
    al = align(source, target, {"rules": rules}, auto=auto)
    # every target key in exactly one row, in target order, before the unused rows
    targets = [r.target for r in al.rows if r.target is not None]
    assert targets == target_names
    assert all(r.target is None for r in al.rows[len(targets):])
    # every source key ends in exactly one row: a fed/mismatch source, a conflict candidate, or unused;
    # only a conversion (a chunk of one fused tensor) feeds several rows from one key
    placed = [s for r in al.rows for s in (r.sources if r.status == "conflict" or r.source is None else (r.source,))
              if s is not None]  # a row fed by several sources (a cat) has source None and names them all
    assert sorted(set(placed)) == sorted(source_names)
    fanned = {s for g in al.groups if len(g.targets) > 1 for s in g.sources}
    assert all(placed.count(s) == 1 or s in fanned for s in placed), placed
    assert sum(al.summary.values()) == len(al.rows)
    for row in al.rows:
        assert row.reason
        if row.status in ("exact", "renamed"):
            assert tuple(source[row.source].shape) == tuple(target[row.target].shape)
        if row.status == "exact":
            assert row.source == row.target
    # deterministic
    again = align(source, target, {"rules": rules}, auto=auto)
    assert again.rows == al.rows and again.suggestions == al.suggestions
    assert isinstance(al.rows[0], Row)
    assert al.effective_recipe.rules[: len(rules)] == Recipe.from_dict({"rules": rules}).rules


def test_unused_reasons_name_the_map_entry_that_took_the_key_away(tmp_path):
    """A map typo must not read as 'the target has no such key' for a key the target has."""
    source = {"conv1.weight": t(8, 3), "fc.weight": t(2, 8)}
    target = {"conv1.weight": t(8, 3), "fc.weight": t(2, 8)}
    recipe = {"map": {"conv1.weight": "conv9.weight", "fc.wieght": "fc.weight"}}
    al = align(source, target, recipe=recipe, auto="none")
    assert al.row("conv1.weight").status == "missing"
    assert al.row("conv1.weight").reason == "map names 'conv9.weight', which the source does not have"
    unused = {row.source: row.reason for row in al.by_status("unused")}
    assert unused == {
        "conv1.weight": "the map feeds 'conv1.weight' from 'conv9.weight' instead (the source has no such key)"}
    # fc.weight still feeds its own name: the map entry to a non-existent target changes nothing
    assert al.row("fc.weight").status == "exact"
    al = align({"head.w": t(2)}, {"w": t(2)}, recipe={"map": {"hed.w": "head.w"}}, auto="none")
    assert al.by_status("unused")[0].reason == "the map sends it to 'hed.w', which the target does not have"


def test_a_row_fed_by_several_sources_lists_them_in_json_and_one_to_one_rows_stay_as_they_were(tmp_path, capsys):
    """``source`` names the one source key; a row fed by several (a cat of q/k/v, a conflict)
    has ``source: null`` as before, and ``sources`` lists every one, in the order they feed it."""
    from safetensors.torch import save_file

    from ckptlab.cli import main

    source = {"l.0.q": t(4, 8), "l.0.k": t(4, 8), "l.0.v": t(4, 8), "other.w": t(2), "a.x": t(3), "x": t(3)}
    target = {"l.0.qkv": t(12, 8), "other.w": t(2), "x": t(3)}
    recipe = {"rules": [{"strip_prefix": "a."}],
              "convert": [{"from": ["l.{i}.q", "l.{i}.k", "l.{i}.v"], "to": "l.{i}.qkv", "ops": [{"cat": 0}]}]}
    rows = {(r["target"], r["status"]): r for r in align(source, target, recipe, auto="none").to_dict()["rows"]}
    fused = rows[("l.0.qkv", "converted")]
    assert fused["source"] is None and fused["sources"] == ["l.0.q", "l.0.k", "l.0.v"]
    assert fused["reason"].startswith("convert 1: cat 0 of 'l.0.q', 'l.0.k', 'l.0.v'")
    conflict = rows[("x", "conflict")]
    assert conflict["source"] is None and sorted(conflict["sources"]) == ["a.x", "x"]
    assert rows[("other.w", "exact")] == {"target": "other.w", "source": "other.w", "status": "exact",
                                          "target_shape": [2], "source_shape": [2], "reason": "same key and shape"}
    # the CLI prints the same rows
    save_file(source, tmp_path / "s.safetensors")
    save_file(target, tmp_path / "t.safetensors")
    (tmp_path / "r.yaml").write_text(Recipe.from_dict(recipe).to_yaml())
    assert main(["align", str(tmp_path / "s.safetensors"), str(tmp_path / "t.safetensors"), "--recipe",
                 str(tmp_path / "r.yaml"), "--auto", "none", "--json"]) == 0
    import json

    printed = {(r["target"], r["status"]): r for r in json.loads(capsys.readouterr().out)["rows"]}
    assert printed[("l.0.qkv", "converted")]["sources"] == ["l.0.q", "l.0.k", "l.0.v"]
    assert printed[("other.w", "exact")] == rows[("other.w", "exact")]


def test_parts_of_a_fused_tensor_found_only_after_a_rename_are_described_without_a_crash():
    """'a.b' and 'b.b' (no module) become 'm.a.b' / 'm.b.b' by the rule: the parts of 'm.a.w' by
    shape and module, suggested as a cat, described by their renamed names (was a TypeError)."""
    source = {k: t(1) for k in ["a.b", "b.b", "b.w", "c.b", "aa.w"]}
    target = {k: t(2) if k == "m.a.w" else t(1)
              for k in ["a.w", "b.w", "m.a.b", "aa.b", "ab.b", "ba.b", "m.a.w", "a.b", "b.b"]}
    al = align(source, target, {"rules": [{"add_prefix": "m."}]}, auto="none")
    cats = [s for s in al.suggestions if "convert" in s.rule and "cat along dim 0" in s.reason]
    assert cats and cats[0].confidence == "medium", [s.reason for s in al.suggestions]
