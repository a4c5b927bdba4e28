"""The conversion editor in a real browser: a GPT-2 (Conv1D) checkpoint into a nanoGPT
(Linear) target, the transpose typed into the grid line by line, the preview and the error
beside the line, then "invert recipe"."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from playwright.sync_api import expect

from tests.e2e import appdriver as drive
from tests.e2e.conftest import WAIT_MS, screenshot
from tests.zoo.gpt_pair import gpt2, nanogpt

pytestmark = pytest.mark.e2e
GRID = "convert_grid_"


def test_a_conversion_typed_in_the_grid_converts_the_transposed_weights(page, tmp_path: Path) -> None:
    torch.manual_seed(0)
    torch.save(gpt2().state_dict(), tmp_path / "gpt2.pt")
    torch.save(nanogpt().state_dict(), tmp_path / "nanogpt.pt")
    drive.choose_radio(page, "source_mode", "Upload")
    drive.upload_with_chooser(page, "source_upload", tmp_path / "gpt2.pt")
    drive.choose_radio(page, "target_mode", "Upload")
    drive.upload_with_chooser(page, "target_upload", tmp_path / "nanogpt.pt")
    drive.wait_for_metrics(page, mismatch=6, converted=0)
    drive.open_editor(page, "Conversions")                   # the Alignment view's editors
    holder = page.locator(f"[class*='st-key-{GRID}']")
    holder.scroll_into_view_if_needed()
    holder.hover()
    holder.get_by_role("button", name="Add row").click()
    page.wait_for_timeout(300)
    drive.edit_grid_cell(page, GRID, 0, 1, "h.{i}.{m}.{p}.weight")
    drive.edit_grid_cell(page, GRID, 0, 2, "h.{i}.{m}.{p}.weight")
    drive.edit_grid_cell(page, GRID, 0, 3, "transpos")      # a typo: the error beside the line
    expect(page.get_by_text("unknown op 'transpos' (did you mean 'transpose'?").first).to_be_visible(timeout=WAIT_MS)
    drive.wait_for_metrics(page, mismatch=6, converted=0)    # the table keeps working without the line
    drive.edit_grid_cell(page, GRID, 0, 3, "transpose")
    drive.wait_for_metrics(page, mismatch=0, converted=8)
    expect(page.get_by_text("convert 1: 8 groups; 'h.0.attn.c_attn.weight' (16, 48) -> "
                            "'h.0.attn.c_attn.weight' (48, 16)")).to_be_visible(timeout=WAIT_MS)
    screenshot(page, "20-conversion-typed")
    drive.open_editor(page, "Recipe")
    drive.key(page, "invert_recipe").get_by_role("button", name="Invert recipe").click()
    drive.settle(page)
    expect(page.get_by_text("Inverse recipe").first).to_be_visible(timeout=WAIT_MS)
    with page.expect_download() as download:
        drive.key(page, "download_inverse").locator("button").click()
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    assert "transpose" in saved.read_text() and "h.{i}.{m}.{p}.weight" in saved.read_text()
    screenshot(page, "21-inverse-recipe")
