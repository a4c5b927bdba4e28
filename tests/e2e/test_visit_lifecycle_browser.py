"""A visit's files go when the visit does, in a real server with real tabs: a closed tab's
session folder (its upload) is removed once the grace time has passed, and an open tab left
idle past the timeout loses its folder too and is told so on its next run."""
from __future__ import annotations

import glob
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e import appdriver as drive
from tests.e2e.conftest import ARTIFACTS, free_port, start_app, stop_app, wait_idle

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "sample_ckpts" / "convnet_rgb.pt"
GRACE_S, IDLE_S = 2, 25


@pytest.fixture(scope="module")
def short_lived() -> Iterator[tuple[str, int]]:
    ARTIFACTS.mkdir(exist_ok=True)
    port = free_port()
    proc = start_app(port, env={"CKPTLAB_SESSION_GRACE": str(GRACE_S), "CKPTLAB_IDLE_TIMEOUT": str(IDLE_S)})
    try:
        yield f"http://127.0.0.1:{port}", proc.pid
    finally:
        stop_app(proc)


def uploads(pid: int) -> set[Path]:
    return {Path(p) for p in glob.glob(f"/tmp/ckptlab-server-{pid}-*/session-*/source/*.pt")}


def visit_and_upload(browser, url: str, pid: int):
    before = uploads(pid)
    context = browser.new_context(viewport={"width": 1600, "height": 1200})
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.goto(url)
    wait_idle(page, timeout=60_000)
    drive.choose_radio(page, "source_mode", "Upload")
    drive.upload_with_chooser(page, "source_upload", SAMPLE)
    mine = uploads(pid) - before
    assert len(mine) == 1, mine
    return context, page, mine.pop()


def gone_within(path: Path, seconds: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        if not path.parent.parent.exists():
            return time.monotonic() - start
        time.sleep(0.5)
    raise AssertionError(f"{path.parent.parent} still there after {seconds:.0f} s")


def test_a_closed_tabs_upload_is_removed_after_the_grace_time(browser, short_lived) -> None:
    url, pid = short_lived
    context, _, upload = visit_and_upload(browser, url, pid)
    context.close()                                            # the visitor closes the tab
    took = gone_within(upload, GRACE_S + 15)                   # grace + one janitor tick + slack
    assert took < IDLE_S                                       # the tab's end freed it, not the idle timeout


def test_an_idle_open_tab_loses_its_upload_and_is_told(browser, short_lived) -> None:
    url, pid = short_lived
    context, page, upload = visit_and_upload(browser, url, pid)
    try:
        gone_within(upload, IDLE_S + 20)
        drive.choose_radio(page, "source_mode", "Sample")            # the visitor comes back
        page.get_by_text("idle for", exact=False).wait_for(timeout=30_000)
    finally:
        context.close()
