"""The five stories of DESIGN.md, each done by a newcomer in a real browser, from the first
page to a downloaded file checked with torch (or, for the attention swap, the speed and
memory comparison). Only clicks, selects and typing: no session state is touched.

Expected figures come from the core run on the same sample files, never typed by hand.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import safetensors.torch
import torch

import ckptlab
from ckptlab.io.model_target import build_model
from tests.e2e import appdriver as drive
from tests.e2e.conftest import ROOT, screenshot

SAMPLES = ROOT / "sample_ckpts"
MODELS = "sample_ckpts.models:"
pytestmark = pytest.mark.e2e


def _load(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        return safetensors.torch.load_file(path)
    return torch.load(path, weights_only=True)


def _sample(name: str, container: str | None = None) -> dict[str, torch.Tensor]:
    ck = ckptlab.open(SAMPLES / name, container)
    return {k: ck.tensor(k) for k in ck.keys()}


def _build_and_download(page, folder: Path, suffix: str) -> dict[str, torch.Tensor]:
    drive.choose_radio(page, "out_format", suffix)
    drive.click(page, "build_merged")
    return _load(drive.download(page, "download_merged", folder))


def _plan_code(page) -> str:
    return page.locator("[data-testid='stCode']").filter(has_text="def param_groups").first.inner_text()


def test_story1_attention_swap_keys_loaded_and_speed_memory(page, tmp_path: Path) -> None:
    """Upload the SelfAttention UNet, type the LinearAttention UNet as the target model,
    see what loads, give the SOURCE model for the checks, compare speed and memory."""
    source_file = SAMPLES / "font_unet_self_attention.pt"
    target_spec, target_kwargs = MODELS + "FontUNet", {"attention": "linear"}
    drive.choose_radio(page, "source_mode", "Upload")
    drive.upload_with_chooser(page, "source_upload", source_file)
    drive.choose_radio(page, "target_mode", "Model definition")
    drive.type_text(page, "target_spec", target_spec)
    drive.type_text(page, "target_kwargs", json.dumps(target_kwargs))
    model = build_model(target_spec, target_kwargs, device="meta")
    expected = ckptlab.align(source_file, model, auto="none")
    drive.wait_for_metrics(page, **expected.summary)
    loaded = [r.target for r in expected.by_status("exact")]
    missing = [r.target for r in expected.by_status("missing")]
    unused = [r.source for r in expected.by_status("unused")]
    assert loaded and all(".attn." not in k for k in loaded)            # the story's split, in the files
    assert missing and all(".attn." in k for k in missing) and all(".attn." in k for k in unused)

    drive.type_text(page, "key_search", "attn")                        # exactly the attention rows
    page.get_by_text(f"{len(missing) + len(unused)} of {len(expected.rows)} rows").wait_for()
    report = drive.text_of(page, "warm_start_report")
    assert f"Loaded: {len(loaded)} ({len(loaded)} by name, 0 renamed)" in report
    assert f"start fresh): {len(missing)}:" in report and all(k in report for k in missing)
    assert f"feed nothing): {len(unused)}:" in report

    drive.type_text(page, "verify_src_spec_None", MODELS + "FontUNet")   # the source model, typed
    drive.type_text(page, "verify_src_kwargs_None", json.dumps({"attention": "self"}))
    drive.type_text(page, "verify_sizes_" + target_spec, "16, 64")     # how they scale: two glyph sizes
    drive.type_text(page, "verify_budget", "4")
    drive.click(page, "verify_speed")
    for size in (16, 64):                                              # a verdict per size, honest about noise
        page.get_by_text(re.compile(rf"^(At size {size},|Too noisy to tell at size {size}:)")).wait_for(timeout=60_000)
    page.get_by_text("timed in interleaved pairs").wait_for()          # the caption under the chart and table
    drive.click(page, "verify_function")
    page.get_by_text(f"Expected: {len(missing)} target tensors start fresh").wait_for()
    screenshot(page, "story1-attention-swap")

    merged = _build_and_download(page, tmp_path, ".safetensors")
    source = _load(source_file)
    assert sorted(merged) == sorted(model.state_dict())
    assert all(torch.equal(merged[k], source[k]) for k in loaded)
    fresh = build_model(target_spec, target_kwargs).state_dict()          # the target's seeded values
    assert all(torch.equal(merged[k], fresh[k]) for k in missing)


def test_story2_rgb_to_rgba_pad_zeros_function_preserved(page, tmp_path: Path) -> None:
    drive.pick_pair(page, "RGB -> RGBA")
    expected = ckptlab.align(SAMPLES / "convnet_rgb.pt", SAMPLES / "convnet_rgba.pt", auto="none")
    drive.wait_for_metrics(page, mismatch=1, exact=expected.summary["exact"])
    drive.choose_option(page, "fix_op_conv1.weight", "pad", exact=True)
    drive.choose_option(page, "fix_dim_conv1.weight", "1", exact=True)
    drive.choose_option(page, "fix_fill_conv1.weight", "zeros", exact=True)
    page.get_by_text("(8, 4, 3, 3) fits").wait_for()
    drive.click(page, "fix_apply_conv1.weight")
    drive.wait_for_metrics(page, mismatch=0, adapted=1)
    drive.click(page, "verify_function")
    page.get_by_text("Function preservation: outputs bit for bit equal").wait_for()
    screenshot(page, "story2-rgb-to-rgba")

    merged = _build_and_download(page, tmp_path, ".pt")
    source = _sample("convnet_rgb.pt")
    assert sorted(merged) == sorted(_sample("convnet_rgba.pt"))
    assert torch.equal(merged["conv1.weight"][:, :3], source["conv1.weight"])
    assert not merged["conv1.weight"][:, 3].any()
    rgb, rgba = build_model(MODELS + "ConvNet", {"in_chans": 3}), build_model(MODELS + "ConvNet", {"in_chans": 4})
    rgb.load_state_dict(source)
    rgba.load_state_dict(merged)
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    alpha = torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert torch.equal(rgb.eval()(x), rgba.eval()(torch.cat([x, alpha], 1)))


def test_story3_finetune_projector_to_100_classes(page, tmp_path: Path) -> None:
    """Strip 'classifier.', keep only the backbone (head fresh, frozen backbone plan), then
    grow the head instead (pad, new rows from the target's init): the plan trains it at lr x10
    by itself (its new rows are untrained), freeze the backbone."""
    source_file, target_file = SAMPLES / "projector.pt", SAMPLES / "classifier_100.pt"
    drive.pick_pair(page, "Fine-tune: projector")
    drive.accept(page, {"strip_prefix": "classifier."})
    stripped = ckptlab.align(source_file, target_file, {"rules": [{"strip_prefix": "classifier."}]}, auto="none")
    drive.wait_for_metrics(page, renamed=stripped.summary["renamed"], mismatch=2)

    drive.add_rule(page, "keep", "backbone", row=1)
    backbone = ckptlab.align(source_file, target_file,
                             {"rules": [{"strip_prefix": "classifier."}, {"keep": "backbone"}]}, auto="none")
    drive.wait_for_metrics(page, renamed=backbone.summary["renamed"], mismatch=0,
                           missing=backbone.summary["missing"])
    assert {r.target for r in backbone.by_status("missing")} == {"fc.weight", "fc.bias"}
    drive.toggle(page, "ft_freeze_loaded")
    page.get_by_text("New or trained as new: 2 tensors").wait_for()
    page.locator("[data-testid='stCode']").filter(has_text="FREEZE_LOADED = True").first.wait_for()  # the rerun
    assert "FREEZE_LOADED = True" in _plan_code(page)
    drive.toggle(page, "ft_freeze_loaded")                               # untick: the next plan differs

    drive.edit_grid_cell(page, "rules_grid_", row=1, column=2, text="backbone|fc")
    drive.wait_for_metrics(page, renamed=stripped.summary["renamed"], mismatch=2)
    grow = {"adapt": {k: {"op": "pad", "dim": 0, "fill": "init"} for k in ("fc.weight", "fc.bias")}}
    suggestion = next(s.rule for s in stripped.suggestions if "adapt" in s.rule)
    assert {k: v["op"] for k, v in suggestion["adapt"].items()} == {k: "pad" for k in grow["adapt"]}
    drive.accept(page, suggestion)
    drive.wait_for_metrics(page, adapted=2, mismatch=0)
    drive.open_view(page, "Fine-tune")
    page.get_by_text("fc.weight: rows 10..99 new (pad dim 0 (fill init)), rows 0..9 pretrained").wait_for()
    page.get_by_text("New or trained as new: 2 tensors").wait_for()   # the grown head, with nothing typed
    drive.type_text(page, "ft_freeze", r"^backbone\.")
    frozen = [n for n, _ in build_model(MODELS + "Classifier", {"num_classes": 100}).named_parameters()
              if n.startswith("backbone.")]
    page.get_by_text(f"Frozen: {len(frozen)} tensors").wait_for()
    page.get_by_text("New or trained as new: 2 tensors").wait_for()
    code = _plan_code(page)
    assert "FREEZE = '^backbone\\\\.'" in code and "'fc.weight'" not in code and "NEW_LR_MULT = 10" in code
    screenshot(page, "story3-finetune")

    merged = _build_and_download(page, tmp_path, ".pt")
    source, target = _sample("projector.pt"), _sample("classifier_100.pt")
    assert sorted(merged) == sorted(target)
    for key in target:
        if key.startswith("backbone."):
            assert torch.equal(merged[key], source["classifier." + key]), key
    for key in ("fc.weight", "fc.bias"):
        old = source["classifier." + key]
        assert torch.equal(merged[key][: old.shape[0]], old)
        assert torch.equal(merged[key][old.shape[0]:], target[key][old.shape[0]:])   # new rows: target's init


def test_story4_warm_start_rename_and_missing_unexpected(page, tmp_path: Path) -> None:
    drive.pick_pair(page, "Warm start")
    rename = {"replace": {"pattern": "^conv1\\.", "with": "backbone_conv."}}
    assert any(s.rule == rename for s in
               ckptlab.align(SAMPLES / "smallnet.pt", SAMPLES / "warmstart_net.pt", auto="none").suggestions)
    drive.accept(page, rename)
    model = build_model(MODELS + "WarmStartNet")
    report = ckptlab.load_into(model, SAMPLES / "smallnet.pt", recipe={"rules": [rename]})
    drive.wait_for_metrics(page, renamed=2, missing=len(report.missing), unused=len(report.unused))
    text = drive.text_of(page, "warm_start_report")
    missing, unexpected = text.split("Missing keys")[1].split("Unexpected keys")
    assert sorted(report.missing) == ["new_fc.bias", "new_fc.weight"]
    assert all(k in missing for k in report.missing) and all(k in unexpected for k in report.unused)
    screenshot(page, "story4-warm-start")

    merged = _build_and_download(page, tmp_path, ".pt")
    fresh = build_model(MODELS + "WarmStartNet")
    fresh.load_state_dict(merged, strict=True)
    source = _sample("smallnet.pt")
    assert torch.equal(merged["backbone_conv.weight"], source["conv1.weight"])
    assert torch.equal(merged["new_fc.weight"], _sample("warmstart_net.pt")["new_fc.weight"])   # the target's own


def test_story5_silent_empty_load_made_loud_then_fixed(page, tmp_path: Path) -> None:
    net = _sample("attention_net_ckpt.pt", "net")
    page.get_by_text("Nearly nothing would load").wait_for()            # the first page, as opened
    drive.accept(page, {"add_prefix": "attention_map."})
    drive.wait_for_metrics(page, renamed=len(net), unused=0)
    assert len(net) == 23 and page.get_by_text("Nearly nothing would load").count() == 0
    drive.toggle(page, "ft_freeze_loaded")                               # then freeze that part
    params = [n for n, _ in build_model(MODELS + "AttentionWrapper").named_parameters()
              if n.startswith("attention_map.")]
    page.get_by_text(f"Frozen: {len(params)} tensors").first.wait_for()
    assert "modules: attention_map." in page.get_by_text("Frozen:").first.inner_text()
    screenshot(page, "story5-silent-empty-load")

    merged = _build_and_download(page, tmp_path, ".safetensors")
    assert all(torch.equal(merged["attention_map." + k], v) for k, v in net.items())
    build_model(MODELS + "AttentionWrapper").load_state_dict(merged, strict=True)
