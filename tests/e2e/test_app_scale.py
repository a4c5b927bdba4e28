"""The app at real sizes and in real use, in chromium: a 1 GB pair built and downloaded with
the server's memory bounded; the status filter after every input switch; a search on a
10,000-row table; every view fitting a 1400x1000 screen (with a screenshot of each)."""
from __future__ import annotations

import hashlib
import os
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

import ckptlab
from ckptlab.io.model_target import model_target
from tests.e2e import appdriver as drive
from tests.e2e.conftest import ARTIFACTS, free_port, screenshot, start_app, stop_app
from tests.e2e.scale import big_pair, many_keys_pair, rss_kb
from tests.paths import ROOT

SAMPLES = ROOT / "sample_ckpts"
VIEWS = ("Alignment", "Shape fixes", "Values & charts", "Verify", "Fine-tune", "Download")
pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[tuple[str, int, Path]]:
    """A server of its own whose allowed roots include a temp folder (url, pid, folder)."""
    folder = tmp_path_factory.mktemp("scale")
    (folder / "out").mkdir()
    ARTIFACTS.mkdir(exist_ok=True)
    port = free_port()
    proc = start_app(port, env={"CKPTLAB_ROOTS": str(folder), "CKPTLAB_OUTPUT_ROOTS": str(folder / "out")})
    try:
        yield f"http://127.0.0.1:{port}", proc.pid, folder
    finally:
        stop_app(proc)


def _open(browser, url: str, width: int = 1400, height: int = 1000):
    context = browser.new_context(viewport={"width": width, "height": height}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.goto(url)
    drive.settle(page)
    return context, page


def _server_path(page, role: str, path: Path) -> None:
    drive.choose_radio(page, f"{role}_mode", "Server path")
    field = drive.key(page, f"{role}_path").locator("input")
    field.fill(str(path))
    field.press("Enter")
    drive.settle(page)


def _rows_caption(page) -> str:
    return page.get_by_text(" rows", exact=False).filter(has_text=" of ").first.inner_text().strip()


def _chips(page) -> list[str]:
    """The statuses the filter shows as chosen (its pressed pills)."""
    return drive.chosen_statuses(page)


def _fetch(link: str, cookies: list[dict]) -> tuple[int, str]:
    """Download ``link`` as the visiting browser does (its cookies: a link is bound to the browser
    that built it), streamed: (bytes, sha256); nothing kept."""
    digest, size = hashlib.sha256(), 0
    header = "; ".join(f"{c['name']}={c['value']}" for c in cookies)
    request = urllib.request.Request(link, headers={"Cookie": header})
    with urllib.request.urlopen(request, timeout=60) as reply:
        while block := reply.read(16 * 2**20):
            digest.update(block)
            size += len(block)
    return size, digest.hexdigest()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(16 * 2**20):
            digest.update(block)
    return digest.hexdigest()


def test_a_1gb_pair_built_and_downloaded_keeps_the_server_memory_bounded(browser, server) -> None:
    """The link is clicked in chromium (the download starts under its file name), and its
    gigabyte is fetched over HTTP from the same URL: chromium's own download writes ~20 MB/s
    here (50 s a gigabyte), the server serves it to any client alike."""
    url, pid, folder = server
    big = folder / "big"
    big.mkdir()
    source, target = big_pair(big, total_bytes=2**30, sparse_target=True)
    context, page = _open(browser, url)
    try:
        idle = rss_kb(pid)
        _server_path(page, "target", target)
        _server_path(page, "source", source)
        drive.accept(page, {"strip_prefix": "module."})
        keys = len(ckptlab.open(target))
        drive.wait_for_metrics(page, renamed=keys, missing=0, unused=0)
        drive.open_view(page, "Download")
        drive.click(page, "build_merged")
        link = drive.key(page, "download_merged").locator("a").first
        with page.expect_download() as event:
            link.click()
        assert event.value.suggested_filename == "merged.safetensors"
        event.value.cancel()
        size, digest = _fetch(urllib.parse.urljoin(url, link.get_attribute("href")), page.context.cookies())
        peak = rss_kb(pid, "VmHWM")
        assert size > 2**30 - 2**20
        merged_on_server = next(Path(p) for p in _built_paths(pid))   # the link's file, still on the server
        assert digest == _sha256(merged_on_server)
        merged = ckptlab.open(merged_on_server)
        assert sorted(merged.keys()) == sorted(ckptlab.open(target).keys())
        import torch
        from safetensors import safe_open

        with safe_open(str(source), "pt") as handle:
            first = handle.get_tensor("module.layers.0.weight")
        assert torch.equal(merged.tensor("layers.0.weight"), first)
        grown_mb = (peak - idle) / 1024
        print(f"\nserver RSS idle {idle / 1024:.0f} MB, peak {peak / 1024:.0f} MB while building and downloading "
              f"a {size / 2**30:.2f} GB merge: +{grown_mb:.0f} MB")
        assert grown_mb <= 1024, f"the server grew by {grown_mb:.0f} MB for a 1 GB merge"
    finally:
        context.close()
        for file in big.iterdir():
            file.unlink()


def _built_paths(pid: int) -> list[str]:
    """The server-side file behind the merged download: in this server's folder (named by
    its pid), the session folder holds one."""
    import glob
    import tempfile

    return glob.glob(os.path.join(tempfile.gettempdir(), f"ckptlab-server-{pid}-*", "session-*", "merged", "merged.*"))


def test_the_status_filter_shows_what_it_applies_after_every_input_switch(browser, server) -> None:
    url, _, folder = server
    context, page = _open(browser, url)
    try:
        drive.pick_pair(page, "Attention swap")
        chosen = ["missing"]
        for chip in _chips(page):
            if chip not in chosen:
                drive.toggle_status(page, chip)
                drive.settle(page)
        assert _chips(page) == chosen

        def check(source: Path, target: Path | str, what: str) -> None:
            expected = ckptlab.align(source, target, auto="none")
            total, shown = len(expected.rows), len(expected.by_status(*chosen))
            for _ in range(50):                      # the last delta may still be painting
                if _chips(page) == chosen and _rows_caption(page) == f"{shown:,} of {total:,} rows":
                    break
                page.wait_for_timeout(100)
            if _chips(page) != chosen:
                screenshot(page, f"FAILED-scale-filter-{what.replace(' ', '-')}")
            assert _chips(page) == chosen, (what, _chips(page))
            assert _rows_caption(page) == f"{shown:,} of {total:,} rows", (what, _rows_caption(page))

        self_net, linear_net = SAMPLES / "font_unet_self_attention.pt", SAMPLES / "font_unet_linear_attention.pt"
        check(self_net, linear_net, "sample pair")
        drive.choose_radio(page, "source_mode", "Upload")                 # the table goes away...
        drive.drop_file(page, "source_upload", self_net)                  # ...and comes back
        check(self_net, linear_net, "source uploaded")
        _server_path(page, "source", SAMPLES / "font_unet_self_attention.pt")
        check(self_net, linear_net, "source from a server path")
        drive.choose_radio(page, "target_mode", "Model definition")
        drive.type_text(page, "target_kwargs", '{"attention": "linear"}')
        check(self_net, model_target("sample_ckpts.models:FontUNet", {"attention": "linear"}),
              "target from a model definition")
        drive.choose_radio(page, "target_mode", "Upload")
        drive.drop_file(page, "target_upload", linear_net)
        check(self_net, linear_net, "target uploaded")
        drive.open_view(page, "Download")                                 # another view, then back
        drive.open_view(page, "Alignment")
        check(self_net, linear_net, "after another view")
        drive.choose_radio(page, "source_mode", "Sample")
        drive.choose_radio(page, "target_mode", "Sample")
        check(self_net, linear_net, "back to the sample pair")
        screenshot(page, "scale-filter-after-switches")
    finally:
        context.close()


def test_a_search_on_a_10000_row_table(browser, server) -> None:
    url, _, folder = server
    source, target = many_keys_pair(folder, 5000)                        # 10,000 rows before the fix
    context, page = _open(browser, url)
    try:
        _server_path(page, "target", target)
        _server_path(page, "source", source)
        drive.wait_for_metrics(page, missing=5000, unused=5000)
        assert _rows_caption(page) == "10,000 of 10,000 rows"
        expected = ckptlab.align(source, target, auto="none")
        needle = "blocks.42.attn"
        hits = [r for r in expected.rows if needle in (r.target or "") or needle in (r.source or "")]
        drive.type_text(page, "key_search", needle)
        page.get_by_text(f"{len(hits)} of 10,000 rows").wait_for()
        assert len(hits) == 8                                            # 4 attn keys, both sides
        drive.type_text(page, "key_search", "BLOCKS.49")                 # case-insensitive
        page.get_by_text(f"{sum('blocks.49' in (r.target or r.source) for r in expected.rows)} of 10,000 rows") \
            .wait_for()
        screenshot(page, "scale-search-10000-rows")
    finally:
        context.close()


@pytest.mark.parametrize("pair", ["Fine-tune: projector", "RGB -> RGBA"])
def test_every_view_fits_a_1400x1000_screen(browser, server, pair: str) -> None:
    url, _, _ = server
    context, page = _open(browser, url)
    try:
        drive.pick_pair(page, pair)
        for name in VIEWS:
            drive.open_view(page, name)
            parts = ["Treemap & histogram", "Statistics", "Compare"] if name == "Values & charts" else [None]
            for part in parts:
                if part:
                    button = drive.key(page, "values_part").get_by_role("radio", name=part, exact=True)
                    if button.get_attribute("aria-checked") != "true":
                        button.click()
                        drive.settle(page)
                page.wait_for_timeout(300)
                picker = drive.key(page, "view").bounding_box()
                body = page.locator(".st-key-view_body").bounding_box()
                height = body["y"] + body["height"] - picker["y"]
                label = f"{name}{' - ' + part if part else ''}"
                slug = label.lower().replace(" ", "-").replace("&", "and")
                screenshot(page, f"view-{pair.split(':')[0].split()[0].lower()}-{slug}")
                assert height <= 1000, f"{label} ({pair}): {height:.0f} px from the view picker down"
        print(f"\nscreenshots of every view: {ARTIFACTS}")
    finally:
        context.close()
