"""Issue 17 item 1 in a real browser: a Hugging Face GPT-2 (``save_pretrained``'s
model.safetensors) and a nanoGPT checkpoint dropped on the page's own drop zones, the known
conversion reviewed and accepted from the Suggestions panel, and the downloaded merge's
Conv1D weights equal to the transposed source."""
from __future__ import annotations

from pathlib import Path

import pytest
import safetensors.torch
import torch
from playwright.sync_api import expect

import ckptlab
from tests.e2e import appdriver as drive
from tests.e2e.conftest import WAIT_MS, screenshot
from tests.zoo import gpt, hf

pytestmark = pytest.mark.e2e


def test_gpt2_to_nanogpt_accepted_from_the_suggestions_panel(page, tmp_path: Path) -> None:
    hf.gpt2().save_pretrained(tmp_path / "hf")
    source = tmp_path / "hf" / "model.safetensors"
    target = tmp_path / "nano.pt"
    torch.save(gpt.nanogpt().state_dict(), target)
    (conversion,) = [s.rule for s in ckptlab.align(str(source), str(target), auto="none").suggestions
                     if "convert" in s.rule]
    drive.choose_radio(page, "source_mode", "Upload")
    drive.drop_file(page, "source_upload", source)
    drive.choose_radio(page, "target_mode", "Upload")
    drive.drop_file(page, "target_upload", target)
    drive.wait_for_metrics(page, mismatch=6, converted=0)
    expect(page.get_by_text("convert 4 entries (transpose)").first).to_be_visible(timeout=WAIT_MS)
    expect(page.get_by_text("+1 more").first).to_be_visible(timeout=WAIT_MS)
    screenshot(page, "30-conversion-suggested")
    drive.accept(page, conversion)
    drive.wait_for_metrics(page, mismatch=0, converted=8)
    drive.open_view(page, "Download")
    drive.choose_radio(page, "out_format", ".safetensors")
    drive.click(page, "build_merged")
    merged = safetensors.torch.load_file(str(drive.download(page, "download_merged", tmp_path)))
    original = safetensors.torch.load_file(str(source))
    moved = [k for k in original if k.endswith(("c_attn.weight", "c_proj.weight", "c_fc.weight"))]
    assert len(moved) == 8
    for key in moved:
        assert torch.equal(merged[key], original[key].t()), key
    for key in set(original) - set(moved):
        assert torch.equal(merged[key], original[key]), key
