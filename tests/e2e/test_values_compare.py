"""The Values & charts view's Compare part in a real browser: the rel_l2 heatmap is drawn,
and a click on one of its cells opens that tensor's histograms."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

import ckptlab
from ckptlab.values.diff import layer_grid
from tests.e2e import appdriver as drive
from tests.e2e.conftest import ROOT, WAIT_MS, screenshot

SAMPLES = ROOT / "sample_ckpts"
pytestmark = pytest.mark.e2e
CLICKED = "model.submodule.down.2.running_var"


def _part(page, label: str) -> None:
    part = page.locator("[class*='st-key-values_part']").get_by_role("radio", name=label, exact=True)
    if part.get_attribute("aria-checked") != "true":
        part.click()
        drive.settle(page)


def test_compare_heatmap_is_drawn_and_a_cell_click_shows_its_histograms(page) -> None:
    drive.pick_pair(page, "Attention swap")
    drive.open_view(page, "Values & charts")
    _part(page, "Compare")
    heatmap = page.locator(".st-key-compare_heatmap .js-plotly-plot")
    heatmap.wait_for(timeout=60_000)
    assert heatmap.locator(".heatmaplayer").count() == 1
    grid = layer_grid(ckptlab.diff(SAMPLES / "font_unet_self_attention.pt",
                                   SAMPLES / "font_unet_linear_attention.pt").pairs)
    cells = [k for row in grid["keys"] for k in row if k is not None]
    points = heatmap.locator(".scatterlayer .point")
    assert points.count() == len(cells)
    picked = page.locator("[class*='st-key-compare_tensor'] input")
    assert picked.input_value() != CLICKED
    box = points.nth(cells.index(CLICKED)).bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    drive.settle(page)
    page.wait_for_function("k => document.querySelector(\"[class*='st-key-compare_tensor'] input\").value === k",
                           arg=CLICKED, timeout=30_000)
    histogram = page.locator(".st-key-compare_histogram .js-plotly-plot")
    histogram.wait_for(timeout=30_000)
    assert histogram.locator(".bars .point").count() > 0 or histogram.locator(".barlayer").count() > 0
    expect(page.get_by_text(f"B (target): {CLICKED}")).to_be_visible(timeout=WAIT_MS)
    screenshot(page, "values-compare-heatmap-click")
