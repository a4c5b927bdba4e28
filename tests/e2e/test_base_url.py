"""Behind a proxy at ``/ckpt/`` (``streamlit run app.py --server.baseUrlPath ckpt``) the merged
file's link is under ``/ckpt/`` and the server answers it with the built file's bytes."""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from tests.e2e import appdriver as drive
from tests.e2e.conftest import ARTIFACTS, ROOT, free_port, stop_app, wait_idle

pytestmark = pytest.mark.e2e
BASE = "ckpt"


def start_under(port: int, base: str, timeout: float = 90.0) -> subprocess.Popen:
    """``streamlit run app.py --server.baseUrlPath base``; returns once its health route says ok."""
    log = open(ARTIFACTS / f"streamlit-{port}-{base}.log", "w")   # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true", "--server.port", str(port),
         "--server.baseUrlPath", base, "--server.fileWatcherType", "none", "--browser.gatherUsageStats", "false"],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with {proc.returncode}; see {log.name}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/{base}/_stcore/health", timeout=2) as reply:
                if reply.read().strip() == b"ok":
                    return proc
        except OSError:
            time.sleep(0.3)
    stop_app(proc)
    raise RuntimeError(f"streamlit did not become healthy in {timeout:.0f} s; see {log.name}")


@pytest.fixture
def base_app() -> tuple[str, subprocess.Popen]:
    ARTIFACTS.mkdir(exist_ok=True)
    port = free_port()
    proc = start_under(port, BASE)
    try:
        yield f"http://127.0.0.1:{port}", proc
    finally:
        stop_app(proc)


def test_the_merged_link_is_under_the_base_path_and_serves_the_file(browser, base_app) -> None:
    origin, proc = base_app
    context = browser.new_context(viewport={"width": 1600, "height": 1200})
    try:
        page = context.new_page()
        page.set_default_timeout(60_000)
        page.goto(f"{origin}/{BASE}/")
        wait_idle(page, timeout=60_000)
        drive.choose_radio(page, "out_format", ".safetensors")
        drive.click(page, "build_merged")
        link = drive.key(page, "download_merged").locator("a.ckptlab-download")
        link.wait_for()
        href = link.get_attribute("href")
    finally:
        context.close()
    assert href.startswith(f"/{BASE}/ckptlab/download/"), href       # what a proxy at /ckpt/ forwards
    built = list(Path(tempfile.gettempdir()).glob(f"ckptlab-server-{proc.pid}-*/session-*/merged/merged.safetensors"))
    assert len(built) == 1, built
    with urllib.request.urlopen(origin + href, timeout=30) as reply:
        assert reply.status == 200
        assert reply.read() == built[0].read_bytes()
