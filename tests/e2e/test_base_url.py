"""Behind a proxy at ``/ckpt/`` (``streamlit run app.py --server.baseUrlPath ckpt``) the merged
file's link is under ``/ckpt/`` and the server answers it with the built file's bytes."""
from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.e2e import appdriver as drive
from tests.e2e.conftest import ARTIFACTS, free_port, start_app, stop_app

pytestmark = pytest.mark.e2e
BASE = "ckpt"


@pytest.fixture
def base_app() -> tuple[str, subprocess.Popen]:
    ARTIFACTS.mkdir(exist_ok=True)
    port = free_port()
    proc = start_app(port, base=BASE, timeout=90.0)
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
        drive.settle(page, timeout=60_000)
        drive.choose_radio(page, "out_format", ".safetensors")
        drive.click(page, "build_merged")
        link = drive.key(page, "download_merged").locator("a.ckptlab-download")
        link.wait_for()
        href = link.get_attribute("href")
        assert href.startswith(f"/{BASE}/ckptlab/download/"), href       # what a proxy at /ckpt/ forwards
        built = list(Path(tempfile.gettempdir()).glob(f"ckptlab-server-{proc.pid}-*/session-*/merged/merged.safetensors"))
        assert len(built) == 1, built
        reply = context.request.get(origin + href, timeout=30_000)        # this visit's browser: its cookie
        assert reply.status == 200
        assert reply.body() == built[0].read_bytes()
    finally:
        context.close()
