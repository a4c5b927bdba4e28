"""The five stories of DESIGN.md, on the bundled sample pairs, rows asserted exactly.

Expected key sets come from the files themselves (``torch.load(weights_only=True)``),
never from hand-typed lists.
"""
from __future__ import annotations

import pytest
import torch

from ckptlab.align.matcher import align
from tests.paths import SAMPLES


def keys(name: str, *inside: str) -> list[str]:
    obj = torch.load(SAMPLES / name, map_location="cpu", weights_only=True)
    for part in inside:
        obj = obj[part]
    return [k for k, v in obj.items() if isinstance(v, torch.Tensor)]


def statuses(al) -> dict[str | None, str]:
    return {r.target: r.status for r in al.rows if r.target is not None}


def unused(al) -> list[str]:
    return [r.source for r in al.rows if r.status == "unused"]


def rule_suggestions(al):
    return [s for s in al.suggestions if "container" not in s.rule]


# -- 1. attention swap --------------------------------------------------------------------
def test_attention_swap_loads_all_but_attention_and_never_pairs_the_attention():
    src, tgt = keys("font_unet_self_attention.pt"), keys("font_unet_linear_attention.pt")
    for auto in ("none", "high", "all"):
        al = align(SAMPLES / "font_unet_self_attention.pt", SAMPLES / "font_unet_linear_attention.pt", auto=auto)
        shared = [k for k in tgt if k in src]
        assert {k for k, s in statuses(al).items() if s == "exact"} == set(shared)
        assert {k for k, s in statuses(al).items() if s == "missing"} == {k for k in tgt if k not in src}
        assert {k for k in tgt if k not in src} and all(".attn." in k for k in tgt if k not in src)
        assert unused(al) == [k for k in src if k not in tgt]
        assert all(".attn." in k for k in unused(al))
        assert not any(".attn." in str(s.rule) or "attn" in s.reason for s in al.suggestions)
        # the rebuilt attention starts fresh: said once, naming both sides, never paired by shapes
        [warning] = al.warnings
        assert "left at their init" in warning and "attn" in warning and "pair one to one" not in warning
        assert not al.strict_ok
        kept = align(SAMPLES / "font_unet_self_attention.pt", SAMPLES / "font_unet_linear_attention.pt", auto=auto,
                     recipe={"keep_target": r"\.attn\.", "rules": [{"drop": r"\.attn\."}]})
        assert kept.warnings == [] and kept.strict_ok  # the same job, said to be on purpose


# -- 2. RGB -> RGBA -----------------------------------------------------------------------
@pytest.mark.parametrize("source", ["convnet_rgb.pt", "convnet_rgb.safetensors"])
def test_rgb_to_rgba_suggests_padding_the_first_conv(source):
    tgt = keys("convnet_rgba.pt")
    al = align(SAMPLES / source, SAMPLES / "convnet_rgba.pt")
    assert statuses(al) == {k: ("mismatch" if k == "conv1.weight" else "exact") for k in tgt}
    assert al.row("conv1.weight").reason == "shape (8, 3, 3, 3) vs (8, 4, 3, 3): dim 1 differs"
    [fix] = al.suggestions
    assert fix.rule == {"adapt": {"conv1.weight": {"op": "pad", "dim": 1}}}  # fill zeros (the default)
    assert fix.confidence == "medium" and not fix.applied
    al_all = align(SAMPLES / source, SAMPLES / "convnet_rgba.pt", auto="all")
    assert statuses(al_all) == {k: ("adapted" if k == "conv1.weight" else "exact") for k in tgt}
    assert al_all.row("conv1.weight").reason == \
        "adapt pad dim 1 (fill zeros): (8, 3, 3, 3) -> (8, 4, 3, 3) (suggested, medium)"
    assert al_all.effective_recipe.adapt["conv1.weight"].to_dict() == {"op": "pad", "dim": 1}


# -- 3. fine-tune -------------------------------------------------------------------------
def test_finetune_head_grows_from_10_to_100_classes():
    tgt = keys("classifier_100.pt")
    al = align(SAMPLES / "classifier_10.pt", SAMPLES / "classifier_100.pt")
    head = {"fc.weight", "fc.bias"}
    assert statuses(al) == {k: ("mismatch" if k in head else "exact") for k in tgt}
    [fix] = al.suggestions
    assert fix.rule == {"adapt": {"fc.weight": {"op": "pad", "dim": 0, "fill": "init"},
                                  "fc.bias": {"op": "pad", "dim": 0, "fill": "init"}}}
    assert fix.confidence == "medium" and fix.keys == 2
    assert statuses(align(SAMPLES / "classifier_10.pt", SAMPLES / "classifier_100.pt", auto="all")) == \
        {k: ("adapted" if k in head else "exact") for k in tgt}


def test_finetune_projector_strips_classifier_prefix():
    src, tgt = keys("projector.pt"), keys("classifier_100.pt")
    al = align(SAMPLES / "projector.pt", SAMPLES / "classifier_100.pt")
    strip = [s for s in al.suggestions if s.rule == {"strip_prefix": "classifier."}]
    assert len(strip) == 1 and strip[0].confidence == "high" and strip[0].applied
    head = {"fc.weight", "fc.bias"}
    assert statuses(al) == {k: ("mismatch" if k in head else "renamed") for k in tgt}
    assert al.row("backbone.0.weight").reason == "strip_prefix 'classifier.' (suggested, high)"
    assert al.row("backbone.0.weight").source == "classifier.backbone.0.weight"
    assert unused(al) == [k for k in src if k.startswith("projector.")] and unused(al)
    assert any(s.rule.get("adapt", {}).keys() == head for s in al.suggestions)


def test_finetune_keep_backbone_leaves_the_head_missing():
    tgt = keys("classifier_100.pt")
    al = align(SAMPLES / "classifier_10.pt", SAMPLES / "classifier_100.pt", {"rules": [{"keep": "backbone"}]})
    assert statuses(al) == {k: ("exact" if "backbone" in k else "missing") for k in tgt}
    assert {r.source for r in al.rows if r.status == "unused"} == {k for k in keys("classifier_10.pt") if "backbone" not in k}
    assert not al.suggestions  # nothing left to fix: the head is out on purpose


# -- 4. warm start ------------------------------------------------------------------------
def test_warm_start_suggests_the_conv1_rename_as_medium():
    src, tgt = keys("smallnet.pt"), keys("warmstart_net.pt")
    al = align(SAMPLES / "smallnet.pt", SAMPLES / "warmstart_net.pt")
    rename = {"replace": {"pattern": r"^conv1\.", "with": "backbone_conv."}}
    [s] = al.suggestions
    assert s.rule == rename and s.confidence == "medium" and not s.applied and s.keys == 2
    assert "conv1" in s.reason and "backbone_conv" in s.reason
    new = {k for k in tgt if k not in src}
    assert statuses(al) == {k: ("missing" if k in new else "exact") for k in tgt}
    assert set(unused(al)) == {k for k in src if k not in tgt}

    al_all = align(SAMPLES / "smallnet.pt", SAMPLES / "warmstart_net.pt", auto="all")
    renamed = {k for k in tgt if k.startswith("backbone_conv.")}
    assert statuses(al_all) == {k: "renamed" if k in renamed else "missing" if k in new else "exact" for k in tgt}
    assert {k for k, s in statuses(al_all).items() if s == "missing"} == {"new_fc.weight", "new_fc.bias"}
    assert al_all.row("backbone_conv.weight").reason == "replace '^conv1\\.' -> 'backbone_conv.' (suggested, medium)"
    assert unused(al_all) == [k for k in src if k.startswith("fc.")]


# -- 5. the silent empty load -------------------------------------------------------------
def test_silent_empty_load_warns_and_one_prefix_fixes_it():
    net, tgt = keys("attention_net_ckpt.pt", "net"), keys("attention_wrapper.pt")
    source = SAMPLES / "attention_net_ckpt.pt"
    al = align(source, SAMPLES / "attention_wrapper.pt", auto="none")
    assert al.fed == [] and al.source.container == "net"
    assert al.warning == (f"only 0 of {len(tgt)} target keys are fed by the source; best fix: "
                          f"add_prefix 'attention_map.' (high, explains {len(net)} keys)")
    [container] = [s for s in al.suggestions if "container" in s.rule]
    assert container.rule == {"container": "net"} and container.applied  # chosen when opening

    al = align(source, SAMPLES / "attention_wrapper.pt", auto="high")
    [fix] = rule_suggestions(al)
    assert fix.rule == {"add_prefix": "attention_map."} and fix.confidence == "high" and fix.applied
    assert fix.keys == len(net)
    assert al.source.container == "net"
    prefixed = {"attention_map." + k for k in net}
    assert statuses(al) == {k: ("renamed" if k in prefixed else "missing") for k in tgt}
    assert al.summary["renamed"] == len(net) == 23
    assert al.row("attention_map.conv1.weight").reason == "add_prefix 'attention_map.' (suggested, high)"
    # no loud empty-load any more: what is left is the wrapper's own backbone and head, said as such
    assert al.warning.startswith("modules 'backbone', 'head' left at their init (4 tensors nothing feeds)")
    assert al.effective_recipe.to_dict() == {"rules": [{"add_prefix": "attention_map."}], "container": "net"}


# -- wrapper prefixes ---------------------------------------------------------------------
@pytest.mark.parametrize("source, prefix, container", [
    ("convnet_rgb_ddp.pt", "module.", ""),
    ("convnet_rgb_lightning.ckpt", "model.", "state_dict"),
])
def test_wrapper_prefixes_are_stripped_with_high_confidence(source, prefix, container):
    tgt = keys("convnet_rgb.pt")
    al = align(SAMPLES / source, SAMPLES / "convnet_rgb.pt")
    [fix] = rule_suggestions(al)
    assert fix.rule == {"strip_prefix": prefix} and fix.confidence == "high" and fix.applied
    assert al.source.container == container
    assert statuses(al) == dict.fromkeys(tgt, "renamed")
    assert all(r.source == prefix + r.target for r in al.rows)
    none = align(SAMPLES / source, SAMPLES / "convnet_rgb.pt", auto="none")
    assert none.fed == [] and none.warning.endswith(f"best fix: strip_prefix '{prefix}' (high, explains {len(tgt)} keys)")
