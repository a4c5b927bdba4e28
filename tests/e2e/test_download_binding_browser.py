"""A merged file's download link belongs to the browser whose visit built it: the same URL
from another browser (another visitor who saw or guessed it) gets the 404 an unknown link
gets, while the builder's own browser downloads the file."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e import appdriver as drive
from tests.e2e.conftest import wait_idle

pytestmark = pytest.mark.e2e


def test_a_link_from_another_browser_is_refused(browser, app_url: str, tmp_path: Path) -> None:
    builder = browser.new_context(viewport={"width": 1600, "height": 1200}, accept_downloads=True)
    stranger = browser.new_context()
    try:
        page = builder.new_page()
        page.set_default_timeout(60_000)
        page.goto(app_url)
        wait_idle(page, timeout=60_000)
        drive.click(page, "build_merged")
        link = drive.key(page, "download_merged").locator("a.ckptlab-download")
        link.wait_for()
        href = link.get_attribute("href")
        saved = drive.download(page, "download_merged", tmp_path)          # the builder's click works
        assert saved.stat().st_size > 0
        other = stranger.new_page()
        other.goto(app_url)                                                 # a visitor with a page of their own
        wait_idle(other, timeout=60_000)
        refused = stranger.request.get(app_url + href)
        assert refused.status == 404, refused.status
        assert saved.read_bytes() not in refused.body()
        unknown = stranger.request.get(app_url + href[:-4] + "abcd")
        assert unknown.status == 404 and unknown.body() == refused.body()   # no tell between the two
        again = builder.request.get(app_url + href)
        assert again.status == 200 and again.body() == saved.read_bytes()
    finally:
        stranger.close()
        builder.close()
