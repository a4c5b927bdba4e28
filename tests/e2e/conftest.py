"""Real-browser fixtures: the app under ``streamlit run`` on a free port, and Debian's
chromium driven by Playwright. Missing chromium is a FAILURE with the fix, never a skip."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = os.environ.get("CKPTLAB_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-dev-shm-usage"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_app(port: int, env: dict[str, str] | None = None, timeout: float = 60.0,
              base: str = "", root: Path = ROOT) -> subprocess.Popen:
    """``streamlit run app.py`` of the repo at ``root`` (this one unless a test copied it),
    headless on ``port`` (under ``--server.baseUrlPath base`` when given); returns once its
    /_stcore/health says ok."""
    ARTIFACTS.mkdir(exist_ok=True)          # a fresh checkout running one e2e file
    log = open(ARTIFACTS / f"streamlit-{port}{'-' + base if base else ''}.log", "w")   # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true", "--server.port", str(port),
         "--server.fileWatcherType", "none", "--browser.gatherUsageStats", "false",
         *(["--server.baseUrlPath", base] if base else [])],
        cwd=root, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with {proc.returncode}; see {log.name}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{'/' + base if base else ''}/_stcore/health",
                                        timeout=2) as reply:
                if reply.read().strip() == b"ok":
                    return proc
        except OSError:
            time.sleep(0.3)
    stop_app(proc)
    raise RuntimeError(f"streamlit did not become healthy in {timeout:.0f} s; see {log.name}")


def stop_app(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="session")
def app_url() -> Iterator[str]:
    ARTIFACTS.mkdir(exist_ok=True)
    port = free_port()
    proc = start_app(port, env={"CKPTLAB_MODEL_ALLOW": "tests.ui.speed_models:*"})  # the Verify tests' models
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_app(proc)


def launch_chromium(playwright):
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        pytest.fail(f"chromium not found at {CHROMIUM}: install Debian's chromium (apt-get install chromium; "
                    f".ci/run does it) or point CKPTLAB_CHROMIUM at a chromium binary", pytrace=False)
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)


@pytest.fixture(scope="session")
def browser() -> Iterator:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        yield chromium
        chromium.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the test item (the page fixture screenshots failures)."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
def page(browser, app_url: str, request):
    """A fresh visitor on the app; the page must show no exception when it opens nor when
    the test ends (each driver step checks it too)."""
    from tests.e2e.appdriver import assert_no_exception, settle

    context = browser.new_context(viewport={"width": 1600, "height": 1200}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.goto(app_url)
    settle(page)
    yield page
    failed = getattr(request.node, "report_call", None)
    try:
        if failed is not None and failed.failed:
            screenshot(page, f"FAILED-{request.node.name}")
        else:
            assert_no_exception(page)
    finally:
        context.close()


WAIT_MS = 30_000   # how long an assertion on the page waits for a rerun to paint (a busy CI machine)


def wait_idle(page, timeout: float = 30_000) -> None:
    """Wait until the script run finished and nothing is still loading."""
    page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']", timeout=timeout)
    page.wait_for_function("document.querySelectorAll('[data-testid=\"stSkeleton\"]').length === 0",
                           timeout=timeout)
    page.wait_for_timeout(200)   # let the last delta paint
    page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']", timeout=timeout)


def screenshot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
