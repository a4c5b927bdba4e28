"""Names from files in a real browser: a checkpoint whose key names hold markdown links,
images, bare URLs, ``www.`` hosts and e-mail addresses gives the page no ``<a>`` and no
``<img>`` pointing anywhere the names say, in any view, in the error banner of an upload
named like a URL, or in the Verify panel's function-check caption (a fix naming a key)."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from sample_ckpts.models import ConvNet
from tests.e2e import appdriver as drive
from tests.e2e.conftest import ARTIFACTS, free_port, screenshot, start_app, stop_app, wait_idle
from tests.e2e.test_verify_browser import _type_by_prefix
from tests.security.test_app_names_text import VIEWS, hostile_files

pytestmark = pytest.mark.e2e
PREFIX = "[click_here_to_re-verify](http://evil.example/re)."
LINKS_JS = """() => Array.from(document.querySelectorAll('a, img, image, [src], [href]')).map(e =>
    [e.tagName, e.getAttribute('href') || '', e.getAttribute('src') || '', e.getAttribute('xlink:href') || '',
     (e.textContent || '').slice(0, 120)])"""


@pytest.fixture(scope="module")
def hostile_server(tmp_path_factory) -> Iterator[tuple[str, Path]]:
    folder = tmp_path_factory.mktemp("hostile")
    hostile_files(folder)
    torch.save({PREFIX + k: v for k, v in ConvNet(in_chans=3).state_dict().items()}, folder / "prefixed.pt")
    ARTIFACTS.mkdir(exist_ok=True)
    port = free_port()
    proc = start_app(port, env={"CKPTLAB_ROOTS": str(folder)})
    try:
        yield f"http://127.0.0.1:{port}", folder
    finally:
        stop_app(proc)


def _server_path(page, role: str, path: Path) -> None:
    drive.choose_radio(page, f"{role}_mode", "Server path")
    field = drive.key(page, f"{role}_path").locator("input")
    field.fill(str(path))
    field.press("Enter")
    wait_idle(page)


def assert_no_hostile_links(page, where: str) -> None:
    found = [e for e in page.evaluate(LINKS_JS) if "evil" in " ".join(e[1:4]).lower() or
             (e[0] in ("A", "a") and "evil" in e[4].lower())]
    if found:
        screenshot(page, f"FAILED-hostile-names-{where.replace(' ', '-')}")
    assert not found, (where, found)


def test_no_link_or_image_on_the_page_comes_from_a_hostile_name(browser, hostile_server, tmp_path: Path) -> None:
    url, folder = hostile_server
    context = browser.new_context(viewport={"width": 1600, "height": 1200})
    page = context.new_page()
    page.set_default_timeout(30_000)
    try:
        page.goto(url)
        wait_idle(page)
        _server_path(page, "source", folder / "hostile.pt")
        _server_path(page, "target", folder / "target.pt")
        assert page.get_by_text("evil.example", exact=False).count() > 0, "the hostile names are on the page"
        for name in VIEWS:
            drive.open_view(page, name)
            assert_no_hostile_links(page, name)
        named_like_a_url = tmp_path / "www.evil.example@user.pt"
        named_like_a_url.write_bytes(b"not a checkpoint")
        drive.choose_radio(page, "source_mode", "Upload")
        drive.upload_with_chooser(page, "source_upload", named_like_a_url)
        assert page.locator("[data-testid='stAlert']").count() > 0, "the bad upload is reported"
        assert_no_hostile_links(page, "error banner")
        # the function check's caption lists the fix that fits the source to its own model
        drive.choose_option(page, "auto", "high", exact=True)
        _server_path(page, "source", folder / "prefixed.pt")
        drive.choose_radio(page, "target_mode", "Model definition")
        drive.type_text(page, "target_kwargs", '{"in_chans": 3}')
        drive.type_text(page, "target_spec", "sample_ckpts.models:ConvNet")
        drive.open_view(page, "Verify")
        _type_by_prefix(page, "verify_src_spec_", "sample_ckpts.models:ConvNet")
        _type_by_prefix(page, "verify_src_kwargs_", '{"in_chans": 3}')
        drive.click(page, "verify_function")
        page.get_by_text("Compared: source model", exact=False).wait_for(timeout=60_000)
        assert "evil.example" in page.get_by_text("Compared: source model", exact=False).inner_text()
        assert_no_hostile_links(page, "Verify caption")
    finally:
        context.close()
