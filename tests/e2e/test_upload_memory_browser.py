"""Uploads are streamed to disk, not held in server memory: a real server receives two
~150 MB checkpoints through the page's drop zones in chromium, and its anonymous resident
memory (RssAnon: heap, not the page cache of the files written) rises by a bounded amount,
far below their sum. (Streamlit's own uploader held both: 529 -> 1,123 MB.)"""
from __future__ import annotations

import glob
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from tests.e2e import appdriver as drive
from tests.e2e.conftest import ARTIFACTS, free_port, start_app, stop_app, wait_idle

pytestmark = pytest.mark.e2e
SIZE_MB = 150
BOUND_MB = 80            # what the server may grow by for both uploads (measured: a few MB)


def rss_anon_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no RssAnon in /proc status")


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, int]]:
    ARTIFACTS.mkdir(exist_ok=True)
    port = free_port()
    proc = start_app(port)
    try:
        yield f"http://127.0.0.1:{port}", proc.pid
    finally:
        stop_app(proc)


def big_checkpoint(path: Path, seed: int) -> Path:
    """One ~150 MB float32 tensor (random: nothing compresses or dedups it) plus a small one."""
    generator = torch.Generator().manual_seed(seed)
    save_file({"body.weight": torch.rand(SIZE_MB * 2**18, generator=generator),
               "head.weight": torch.rand(4, 4, generator=generator)}, str(path))
    return path


def test_two_150_mb_uploads_raise_server_memory_by_a_bounded_amount(browser, server, tmp_path) -> None:
    url, pid = server
    files = [big_checkpoint(tmp_path / f"font_unet_self_attention_{n}.safetensors", n) for n in (1, 2)]
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(120_000)
    try:
        page.goto(url)
        wait_idle(page)
        drive.choose_radio(page, "source_mode", "Upload")
        drive.choose_radio(page, "target_mode", "Upload")
        time.sleep(1.0)
        idle = rss_anon_mb(pid)
        drive.upload_with_chooser(page, "source_upload", files[0])
        drive.upload_with_chooser(page, "target_upload", files[1])
        drive.wait_for_metrics(page, exact=2)
        grown = rss_anon_mb(pid) - idle
        stored = {Path(p).name: Path(p).stat().st_size
                  for p in glob.glob(f"/tmp/ckptlab-server-{pid}-*/session-*/*/*.safetensors")}
        assert stored == {f.name: f.stat().st_size for f in files}          # both whole, on disk
        assert not glob.glob(f"/tmp/ckptlab-server-{pid}-*/session-*/*/.upload-*.part")
        # two names sharing a long prefix are shown whole, so they read apart
        names = [drive.key(page, f"{role}_upload").locator("[data-testid=ckptlabDropzone]").get_attribute("data-file")
                 for role in ("source", "target")]
        assert names == [f.name for f in files]
        print(f"server RssAnon: idle {idle:.0f} MB, +{grown:.0f} MB after two {SIZE_MB} MB uploads")
        assert grown < BOUND_MB, f"server memory grew {grown:.0f} MB for 2 x {SIZE_MB} MB of uploads"
    finally:
        context.close()
