"""One visitor's hostile recipe does not stall the others (issue 18.3), in a real server with
real browsers: a visitor uploads a source whose key is a long run of ``a`` ending in ``b`` and
a recipe whose rule backtracks catastrophically on it (``(a+)+$``); the rule is refused in one
line on that visitor's page (the regex engine's time bound), and a second visitor who opens
the page meanwhile gets the demo pair's table with the right counts, in a bounded time (a
hang guard, not a benchmark: unbounded, the match held the server for minutes).
bench/bench_server.py measures the same with N visitors."""
from __future__ import annotations

import json
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

import ckptlab
from ckptlab.ui.samples import PAIRS
from tests.e2e import appdriver as drive
from tests.e2e.conftest import (
    ARTIFACTS,
    free_port,
    launch_chromium,
    start_app,
    stop_app,
    wait_idle,
)

pytestmark = pytest.mark.e2e
HANG_S = 60                        # hang guard for the other visitor's page (unbounded: minutes)
HOSTILE_KEY = "a" * 1000 + "b"     # (a+)+$ on it passes MAX_MATCH_SECONDS in the regex engine


def hostile_upload(browser, url: str, folder: Path):
    """The hostile visitor: its source uploaded, then the backtracking recipe (sent, not waited for)."""
    source, recipe = folder / "aaaa.pt", folder / "backtrack.json"
    torch.save({HOSTILE_KEY: torch.ones(1), "w": torch.ones(2)}, source)
    recipe.write_text(json.dumps({"rules": [{"replace": {"pattern": "(a+)+$", "with": "x"}}]}))
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(HANG_S * 1000)
    page.goto(url)
    wait_idle(page, timeout=HANG_S * 1000)
    drive.choose_radio(page, "source_mode", "Upload")
    drive.upload_with_chooser(page, "source_upload", source)
    drive.open_editor(page, "Recipe")
    page.locator("[class*='st-key-recipe_upload_'] input[type=file]").set_input_files(str(recipe))
    return context, page


def health_seconds(url: str) -> float:
    start = time.monotonic()
    with urllib.request.urlopen(url + "/_stcore/health", timeout=HANG_S) as reply:
        assert reply.read().strip() == b"ok"
    return time.monotonic() - start


def test_a_backtracking_recipe_is_refused_and_another_visitor_gets_the_table(tmp_path) -> None:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    demo = PAIRS[0]
    expected = ckptlab.align(demo.source.path, demo.target.path, auto="none").summary
    port = free_port()
    proc = start_app(port)
    url = f"http://127.0.0.1:{port}"
    def visit() -> None:  # on a thread of its own: the e2e tests' Playwright keeps a loop running on this one
        with sync_playwright() as playwright:
            browser = launch_chromium(playwright)
            hostile, bad = hostile_upload(browser, url, tmp_path)
            assert health_seconds(url) < HANG_S
            other = browser.new_context(viewport={"width": 1400, "height": 1000})
            page = other.new_page()
            page.set_default_timeout(HANG_S * 1000)
            start = time.monotonic()
            page.goto(url)
            wait_idle(page, timeout=HANG_S * 1000)
            shown = drive.wait_for_metrics(page, timeout=HANG_S, **{str(k): v for k, v in expected.items()})
            assert time.monotonic() - start < HANG_S, shown
            refusal = bad.get_by_text("MAX_MATCH_SECONDS", exact=False).first
            refusal.wait_for(timeout=HANG_S * 1000)
            line = refusal.inner_text().strip()
            assert "\n" not in line and "rule 1" in line and "backtracks" in line, line
            other.close()
            hostile.close()
            browser.close()

    try:
        with ThreadPoolExecutor(1) as thread:
            thread.submit(visit).result()
    finally:
        stop_app(proc)
