"""The app in a real browser: uploads, the rule grid, a shape fix, the merged download."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from playwright.sync_api import expect

import ckptlab
from tests.e2e import appdriver as drive
from tests.e2e.conftest import ROOT, WAIT_MS, screenshot

SAMPLES = ROOT / "sample_ckpts"
pytestmark = pytest.mark.e2e


def test_first_open_shows_the_demo_with_the_loud_warning(page) -> None:
    source, target = SAMPLES / "attention_net_ckpt.pt", SAMPLES / "attention_wrapper.pt"
    pair = ckptlab.align(source, target, auto="none")
    drive.wait_for_metrics(page, missing=pair.summary["missing"], renamed=0)
    expect(page.get_by_text("Nearly nothing would load")).to_be_visible(timeout=WAIT_MS)
    drive.assert_shows_alignment(page, pair)
    screenshot(page, "01-first-open")
    page.locator(f".st-key-accept_{_fid({'add_prefix': 'attention_map.'})} button").click()
    drive.settle(page)
    drive.wait_for_metrics(page, renamed=len(torch.load(SAMPLES / "attention_net_ckpt.pt", weights_only=True)["net"]))
    assert page.get_by_text("Nearly nothing would load").count() == 0
    fixed = ckptlab.align(source, target, recipe={"rules": [{"add_prefix": "attention_map."}]}, auto="none")
    drive.assert_shows_alignment(page, fixed)
    screenshot(page, "02-suggestion-accepted")


def test_upload_both_checkpoints_chooser_and_drop(page) -> None:
    drive.choose_radio(page, "source_mode", "Upload")
    drive.upload_with_chooser(page, "source_upload", SAMPLES / "convnet_rgb.pt")
    drive.choose_radio(page, "target_mode", "Upload")
    drive.drop_file(page, "target_upload", SAMPLES / "convnet_rgba.pt")
    pair = ckptlab.align(SAMPLES / "convnet_rgb.pt", SAMPLES / "convnet_rgba.pt", auto="none")
    drive.wait_for_metrics(page, **pair.summary)
    drive.assert_shows_alignment(page, pair)
    screenshot(page, "03-uploaded-pair")


def test_rule_added_in_the_grid_changes_the_table(page) -> None:
    drive.pick_pair(page, "DDP checkpoint")
    keys = len(ckptlab.open(SAMPLES / "convnet_rgb.pt"))
    drive.wait_for_metrics(page, renamed=0, missing=keys, unused=keys)
    drive.assert_shows_alignment(page, ckptlab.align(SAMPLES / "convnet_rgb_ddp.pt", SAMPLES / "convnet_rgb.pt",
                                                     auto="none"))
    drive.add_rule(page, "strip_prefix", "module.", row=0)
    drive.wait_for_metrics(page, renamed=keys, missing=0, unused=0)
    drive.assert_shows_alignment(page, ckptlab.align(SAMPLES / "convnet_rgb_ddp.pt", SAMPLES / "convnet_rgb.pt",
                                                     recipe={"rules": [{"strip_prefix": "module."}]}, auto="none"))
    screenshot(page, "04-rule-added")
    drive.add_rule(page, "drop", "[", row=1)       # an invalid rule: error beside the grid, table kept
    expect(page.get_by_text("rule 2 (drop): bad regex")).to_be_visible(timeout=WAIT_MS)
    drive.wait_for_metrics(page, renamed=keys, missing=0)
    screenshot(page, "05-invalid-rule")


def test_shape_fix_and_merged_download(page, tmp_path: Path) -> None:
    drive.pick_pair(page, "RGB -> RGBA")
    drive.wait_for_metrics(page, mismatch=1, adapted=0)
    drive.open_view(page, "Download")
    expect(page.get_by_text("Merged checkpoint refused")).to_be_visible(timeout=WAIT_MS)
    drive.choose_option(page, "fix_op_conv1.weight", "truncate", exact=True)
    expect(page.get_by_text("truncate cannot grow dim 1")).to_be_visible(timeout=WAIT_MS)     # previewed, not applied
    expect(drive.key(page, "fix_apply_conv1.weight").locator("button")).to_be_disabled(timeout=WAIT_MS)
    drive.choose_option(page, "fix_op_conv1.weight", "pad", exact=True)
    drive.choose_option(page, "fix_fill_conv1.weight", "zeros", exact=True)
    expect(drive.key(page, "fix_apply_conv1.weight").locator("button")).to_be_enabled(timeout=WAIT_MS)
    drive.click(page, "fix_apply_conv1.weight")
    drive.wait_for_metrics(page, mismatch=0, adapted=1)
    padded = {"adapt": {"conv1.weight": {"op": "pad", "fill": "zeros"}}}
    drive.assert_shows_alignment(page, ckptlab.align(SAMPLES / "convnet_rgb.pt", SAMPLES / "convnet_rgba.pt",
                                                     recipe=padded, auto="none"))
    screenshot(page, "06-shape-fixed")
    drive.choose_radio(page, "out_format", ".pt")
    drive.click(page, "build_merged")
    saved = drive.download(page, "download_merged", tmp_path)
    merged = torch.load(saved, weights_only=True)
    source = torch.load(SAMPLES / "convnet_rgb.pt", weights_only=True)
    assert sorted(merged) == sorted(torch.load(SAMPLES / "convnet_rgba.pt", weights_only=True))
    assert torch.equal(merged["conv1.weight"][:, :3], source["conv1.weight"])
    assert not merged["conv1.weight"][:, 3].any()
    assert all(torch.equal(merged[k], v) for k, v in source.items() if k != "conv1.weight")
    screenshot(page, "07-downloaded")


def _fid(fragment: dict) -> str:
    from ckptlab.recipe.edits import fragment_id

    return fragment_id(fragment)


def test_clicking_a_module_in_the_treemap_filters_the_table(page) -> None:
    drive.pick_pair(page, "RGB -> RGBA")
    total = len(ckptlab.open(SAMPLES / "convnet_rgba.pt"))
    conv1 = [k for k in ckptlab.open(SAMPLES / "convnet_rgba.pt").keys() if k.startswith("conv1.")]
    drive.click_treemap_module(page, "conv1")
    page.get_by_text("Clicked: conv1").wait_for()
    drive.open_view(page, "Alignment")
    expect(page.get_by_text(f"{len(conv1)} of {total} rows")).to_be_visible(timeout=WAIT_MS)
    screenshot(page, "08-treemap-filter")
    drive.click(page, "clear_module")
    expect(page.get_by_text(f"{total} of {total} rows")).to_be_visible(timeout=WAIT_MS)
