"""Suggestions: prefixes (high only when clean), containers, module renames (never by shape
alone), shape adapters; and how ``auto`` applies them."""
from __future__ import annotations

import torch

import ckptlab
from ckptlab.align.matcher import align
from ckptlab.align.suggest.rename import similar_names
from ckptlab.recipe.model import Recipe


def sd(mapping: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    return {k: torch.zeros(shape) for k, shape in mapping.items()}


NET = {"conv1.weight": (8, 3, 3, 3), "conv1.bias": (8,), "bn1.weight": (8,), "bn1.bias": (8,),
       "layer1.0.conv.weight": (8, 8, 3, 3), "layer1.1.conv.weight": (8, 8, 3, 3), "fc.weight": (10, 8),
       "fc.bias": (10,)}


def prefixed(prefix: str, mapping=NET) -> dict[str, tuple[int, ...]]:
    return {prefix + k: v for k, v in mapping.items()}


def only_rules(al):
    return [s for s in al.suggestions if "container" not in s.rule]


# -- prefixes -----------------------------------------------------------------------------
def test_wrapper_and_deep_prefixes_are_high_and_applied():
    cases = [
        (prefixed("_orig_mod."), NET, {"strip_prefix": "_orig_mod."}),
        (prefixed("module._orig_mod."), NET, {"strip_prefix": "module._orig_mod."}),
        (NET, prefixed("backbone."), {"add_prefix": "backbone."}),
        (NET, prefixed("a.b.c."), {"add_prefix": "a.b.c."}),
        (prefixed("encoder."), prefixed("backbone."), {"replace": {"pattern": "^encoder\\.", "with": "backbone."}}),
        (prefixed("model.net."), prefixed("net."), {"replace": {"pattern": "^model\\.", "with": ""}}),
    ]
    for source, target, rule in cases:
        al = align(sd(source), sd(target))
        [s] = only_rules(al)
        assert s.rule == rule or (rule.get("replace", {}).get("with") == "" and s.rule == {"strip_prefix": "model."})
        assert s.confidence == "high" and s.applied and s.keys == len(NET)
        assert al.summary["renamed"] == len(NET) and al.warning is None


def test_prefix_on_one_side_for_a_subset_only():
    """The target wraps only the stem under ``backbone.``; fc stays where it was."""
    target = {("backbone." + k if not k.startswith("fc.") else k): v for k, v in NET.items()}
    al = align(sd(NET), sd(target))
    [s] = only_rules(al)
    assert s.confidence == "high" and s.applied
    assert s.keys == len(NET) - 2
    assert set(al.fed) == set(target) and al.summary["renamed"] == len(NET) - 2
    assert al.row("fc.weight").status == "exact"  # the rule left the head alone


def test_prefix_strip_for_a_subset_of_source_keys():
    source = {**prefixed("module.", {k: v for k, v in NET.items() if not k.startswith("fc.")}),
              "fc.weight": (10, 8), "fc.bias": (10,)}
    al = align(sd(source), sd(NET))
    [s] = only_rules(al)
    assert s.rule == {"strip_prefix": "module."} and s.confidence == "high"
    assert set(al.fed) == set(NET)


def test_prefix_that_would_create_a_conflict_is_never_high():
    source = {**prefixed("module."), "conv1.weight": (8, 3, 3, 3), "conv1.bias": (8,)}
    al = align(sd(source), sd(NET))
    strip = [s for s in al.suggestions if s.rule == {"strip_prefix": "module."}]
    assert strip and all(s.confidence != "high" and not s.applied for s in strip)
    assert al.summary["conflict"] == 0  # nothing applied, nothing overwritten


def test_prefix_that_maps_onto_wrong_shapes_is_not_high():
    target = {"backbone." + k: tuple(d + 1 for d in v) if v else v for k, v in NET.items()}
    al = align(sd(NET), sd(target))
    assert not any(s.confidence == "high" for s in al.suggestions)
    assert al.fed == []


def test_prefix_counts_whole_components_only():
    """``xconv1.weight`` does not end with ``conv1.weight`` as a name."""
    al = align(sd({"xconv1.weight": (8, 3, 3, 3), "xconv1.bias": (8,)}),
               sd({"conv1.weight": (8, 3, 3, 3), "conv1.bias": (8,)}))
    assert not any(s.confidence == "high" for s in al.suggestions)


# -- containers ---------------------------------------------------------------------------
def test_container_holding_the_weights_is_suggested_and_applied(tmp_path):
    path = tmp_path / "nested.pt"
    torch.save({"ema": {"a.w": torch.zeros(2), "a.b": torch.zeros(2)},
                "net": {k: torch.zeros(v) for k, v in NET.items()}}, path)
    wrong = ckptlab.open(path, container="ema")
    al = align(wrong, sd(NET))
    [s] = [s for s in al.suggestions if "container" in s.rule]
    assert s.rule == {"container": "net"} and s.confidence == "high" and s.applied
    assert al.source.container == "net" and al.summary["exact"] == len(NET)
    assert al.effective_recipe.container == "net"
    none = align(wrong, sd(NET), auto="none")
    assert none.source.container == "ema" and none.fed == []
    assert none.warning.endswith(f"best fix: container 'net' (high, explains {len(NET)} keys)")
    pinned = align(wrong, sd(NET), {"container": "net"}, auto="none")  # the recipe names it
    assert pinned.source.container == "net" and len(pinned.fed) == len(NET)


# -- module renames -----------------------------------------------------------------------
LAYER = {"attn.q.weight": (4, 4), "attn.k.weight": (4, 4), "mlp.fc1.weight": (8, 4), "mlp.fc2.weight": (4, 8),
         "norm.weight": (4,)}


def layers(n: int, rename: dict[int, tuple[str, str]] | None = None):
    out = {}
    for i in range(n):
        for k, v in LAYER.items():
            old, new = (rename or {}).get(i, ("", ""))
            out[f"blocks.{i}." + (k.replace(old, new, 1) if old and k.startswith(old) else k)] = v
    return out


def test_module_renamed_inside_its_parent_is_medium_without_name_similarity():
    """``blocks.2.mlp`` -> ``blocks.2.ffn``: the only unmatched modules there, same parameters."""
    al = align(sd(layers(4)), sd(layers(4, {2: ("mlp.", "ffn.")})))
    [s] = al.suggestions
    assert s.rule == {"replace": {"pattern": "^blocks\\.2\\.mlp\\.", "with": "blocks.2.ffn."}}
    assert s.confidence == "medium" and s.keys == 2 and not s.applied
    assert align(sd(layers(4)), sd(layers(4, {2: ("mlp.", "ffn.")})), auto="all").summary["renamed"] == 2


def test_rebuilt_module_is_never_paired_child_by_child():
    """Same module name, different parameters inside: its children are not renamed even
    where one old and one new child have equal shapes (as SelfAttention's value and
    LinearAttention's to_out do)."""
    source = {"attn.gamma": (1,), "attn.query.weight": (1, 8), "attn.value.weight": (8, 8), "attn.value.bias": (8,),
              "head.weight": (3, 8)}
    target = {"attn.to_qkv.weight": (48, 8), "attn.to_out.weight": (8, 8), "attn.to_out.bias": (8,),
              "head.weight": (3, 8)}
    for auto in ("none", "all"):
        al = align(sd(source), sd(target), auto=auto)
        assert al.suggestions == []
        assert al.row("attn.to_out.weight").status == "missing"


def test_unrelated_modules_with_equal_shapes_are_not_paired():
    """Two modules with the same parameter shapes, far apart in the order and with
    unrelated names, among other unmatched modules: no suggestion."""
    source = {"stem.weight": (4, 4), "a.weight": (1,), "b.weight": (2,), "c.weight": (3,), "d.weight": (5,),
              "e.weight": (6,), "f.weight": (7,), "g.weight": (9,), "h.weight": (10,), "value.weight": (8, 8),
              "extra.weight": (2, 2)}
    target = {"stem.weight": (4, 4), "a.weight": (1,), "b.weight": (2,), "c.weight": (3,), "d.weight": (5,),
              "to_out.weight": (8, 8), "e.weight": (6,), "f.weight": (7,), "g.weight": (9,), "h.weight": (10,),
              "other.weight": (3, 3)}
    al = align(sd(source), sd(target), auto="all")
    assert al.suggestions == []


def test_similar_names():
    assert similar_names("conv1", "backbone_conv")
    assert similar_names("norm", "final_norm")
    assert similar_names("LayerNorm", "layer_norm")
    assert not similar_names("value", "to_out")
    assert not similar_names("query", "to_qkv")


# -- shape adapters -----------------------------------------------------------------------
def test_head_with_fewer_classes_is_truncated_only_as_a_low_guess():
    """Fewer classes rarely means 'the first N of the old ones' (detectron2 keeps background
    last): the truncation is offered low, with the caveat and the alternative in its reason."""
    target = {**NET, "fc.weight": (4, 8), "fc.bias": (4,)}
    al = align(sd(NET), sd(target))
    [s] = al.suggestions
    assert s.rule == {"adapt": {"fc.weight": {"op": "truncate", "dim": 0}, "fc.bias": {"op": "truncate", "dim": 0}}}
    assert s.confidence == "low"
    assert "right only if the new classes are the old first 4" in s.reason and "keep-target" in s.reason
    # a low guess is never applied by any auto level (it used to be, by auto="all")
    assert align(sd(NET), sd(target), auto="all").summary["mismatch"] == 2
    assert align(sd(NET), sd(target), recipe=Recipe().merged(s.rule), auto="none").summary["adapted"] == 2


def test_detection_heads_81_to_21_classes_are_never_medium():
    source = {"backbone.res2.weight": (8, 3, 3, 3), "roi_heads.box_predictor.cls_score.weight": (81, 8),
              "roi_heads.box_predictor.cls_score.bias": (81,), "roi_heads.box_predictor.bbox_pred.weight": (320, 8),
              "roi_heads.box_predictor.bbox_pred.bias": (320,)}
    target = {**source, "roi_heads.box_predictor.cls_score.weight": (21, 8),
              "roi_heads.box_predictor.cls_score.bias": (21,), "roi_heads.box_predictor.bbox_pred.weight": (80, 8),
              "roi_heads.box_predictor.bbox_pred.bias": (80,)}
    suggestions = align(sd(source), sd(target)).suggestions
    assert len(suggestions) == 2 and {s.confidence for s in suggestions} == {"low"}


def test_head_with_more_classes_pads_and_says_which_rows_are_old():
    target = {**NET, "fc.weight": (12, 8), "fc.bias": (12,)}
    [s] = align(sd(NET), sd(target)).suggestions
    assert s.confidence == "medium" and s.rule["adapt"]["fc.bias"] == {"op": "pad", "dim": 0, "fill": "init"}
    old = NET["fc.bias"][0]
    assert f"rows 0..{old - 1} keep the old outputs" in s.reason


def test_more_input_channels_by_a_whole_multiple_mention_repeat():
    six = {**NET, "conv1.weight": (8, 6, 3, 3)}
    [s] = align(sd(NET), sd(six)).suggestions
    assert s.rule == {"adapt": {"conv1.weight": {"op": "pad", "dim": 1}}} and "fill: repeat" in s.reason
    [s] = align(sd(NET), sd({**NET, "conv1.weight": (8, 4, 3, 3)})).suggestions
    assert "repeat" not in s.reason


def test_grayscale_input_sums_channels_and_a_deeper_conv_is_low():
    gray = {**NET, "conv1.weight": (8, 1, 3, 3)}
    [s] = align(sd(NET), sd(gray)).suggestions
    assert s.rule == {"adapt": {"conv1.weight": {"op": "sum", "dim": 1}}} and s.confidence == "medium"
    deeper = {**NET, "layer1.1.conv.weight": (8, 16, 3, 3)}
    [s] = align(sd(NET), sd(deeper)).suggestions
    assert s.rule == {"adapt": {"layer1.1.conv.weight": {"op": "pad", "dim": 1}}} and s.confidence == "low"


def test_other_one_dim_changes_are_low_and_rank_changes_get_nothing():
    [s] = align(sd({"pos.embed": (1, 16, 8)}), sd({"pos.embed": (1, 24, 8)})).suggestions
    assert s.rule == {"adapt": {"pos.embed": {"op": "pad", "dim": 1, "fill": "init"}}} and s.confidence == "low"
    assert align(sd({"w": (4, 4)}), sd({"w": (16,)})).suggestions == []


def test_suggestion_views():
    al = align(sd(prefixed("module.")), sd(NET))
    [s] = al.suggestions
    assert s.to_dict() == {"rule": {"strip_prefix": "module."}, "confidence": "high", "reason": s.reason}
    assert s.describe() == "strip_prefix 'module.'"
    assert "DataParallel" in s.reason


def test_an_ema_copy_beside_the_chosen_weights_is_named(tmp_path):
    weights = {"model.conv.weight": torch.ones(2, 2), "model.conv.bias": torch.ones(2)}
    torch.save({"state_dict": weights, "state_dict_ema": {k: v / 2 for k, v in weights.items()}, "epoch": 3},
               tmp_path / "lightning.ckpt")
    target = {"conv.weight": torch.zeros(2, 2), "conv.bias": torch.zeros(2)}
    container = align(tmp_path / "lightning.ckpt", target).suggestions[0]
    assert container.rule == {"container": "state_dict"} and container.applied
    assert container.reason.endswith("also in the file with 2 tensors: 'state_dict_ema' "
                                     "(choose it as the container to load it instead)")
    torch.save({"net": weights, "optimizer": {"state": {0: {"exp_avg": torch.ones(2)}}}}, tmp_path / "plain.pt")
    assert align(tmp_path / "plain.pt", target).suggestions[0].reason == "the tensors sit under 'net' (chosen when opening)"


def test_a_low_guess_is_never_called_the_best_fix():
    source = {"head.weight": (81, 8), "head.bias": (81,)}
    target = {"head.weight": (21, 8), "head.bias": (21,)}
    al = align(sd(source), sd(target))
    assert al.warning == ("only 0 of 2 target keys are fed by the source; no confident fix, only a low guess: "
                          "adapt 'head.weight': truncate dim 0, adapt 'head.bias': truncate dim 0 "
                          "(explains 2 keys; check it)")
