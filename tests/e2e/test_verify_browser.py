"""The Verify view in a real browser: the speed comparison of a pair whose speed differs
4x (a stack of 8 conv layers vs 2) has the right sign at every chosen size."""
from __future__ import annotations

import json
import re

import pytest

from tests.e2e import appdriver as drive
from tests.e2e.conftest import screenshot

STACK = "tests.ui.speed_models:Stack"
VERDICT = re.compile(r"^(At size|Too noisy to tell at size) (\d+)\b.*?time ratio (\d+\.\d+)")
pytestmark = pytest.mark.e2e


def _type_by_prefix(page, prefix: str, text: str) -> None:
    """Type into the text input whose key starts with ``prefix`` (its tail names the model)."""
    field = page.locator(f"[class*='st-key-{prefix}'] input").first
    field.click()
    field.press("Control+A")
    field.press_sequentially(text)
    field.press("Enter")
    drive.settle(page)


def test_a_4x_deeper_target_is_slower_at_every_chosen_size(page) -> None:
    drive.choose_radio(page, "target_mode", "Model definition")
    drive.type_text(page, "target_spec", STACK)
    drive.type_text(page, "target_kwargs", json.dumps({"depth": 8}))
    drive.open_view(page, "Verify")
    _type_by_prefix(page, "verify_src_spec_", STACK)
    _type_by_prefix(page, "verify_src_kwargs_", json.dumps({"depth": 2}))
    _type_by_prefix(page, "verify_sizes_", "8, 16")
    drive.type_text(page, "verify_budget", "3")
    drive.click(page, "verify_speed")
    page.get_by_text("timed in interleaved pairs").wait_for(timeout=60_000)
    verdicts = {}
    for text in page.locator("[data-testid='stAlert']").all_inner_texts():
        found = VERDICT.search(text.strip())
        if found:
            verdicts[int(found.group(2))] = float(found.group(3))
    assert sorted(verdicts) == [8, 16], verdicts
    assert all(ratio > 1 for ratio in verdicts.values()), verdicts      # the sign, on a 4x difference
    assert page.locator(".st-key-speed_chart").count() == 1
    screenshot(page, "verify-speed-4x")
