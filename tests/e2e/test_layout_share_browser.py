"""In chromium at 1280x720: the alignment table shows status and reason for every visible row
without a sideways scroll, the search applies while typing, and a shared link opened in a
fresh browser context shows the same view and the same table."""
from __future__ import annotations

import ckptlab
from ckptlab.recipe.model import Recipe
from ckptlab.ui import table as ui_table
from ckptlab.ui.samples import PAIRS
from tests.e2e import appdriver as drive
from tests.e2e.conftest import wait_idle

SMALL = {"width": 1280, "height": 720}
STATUS, TARGET, SOURCE, REASON = 0, 1, 2, 3         # the table's first columns


def visible_rows(page) -> list[list[str]]:
    return drive.table_rows(page)


def headers(page) -> list[str]:
    return page.locator(".st-key-alignment_table [role=columnheader]").all_inner_texts()


def small_page(browser, url: str):
    context = browser.new_context(viewport=SMALL, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.goto(url)
    wait_idle(page)
    return context, page


def test_status_and_reason_of_every_visible_row_at_1280x720(browser, app_url) -> None:
    context, page = small_page(browser, app_url)
    try:
        drive.pick_pair(page, "Attention swap")
        expected = ckptlab.align(PAIRS[1].source.path, PAIRS[1].target.path, Recipe(), auto="none").rows
        assert headers(page)[:4] == ["status", "target key", "source key", "reason"]
        grid = page.locator(".st-key-alignment_table [data-testid='stDataFrame']").bounding_box()
        assert grid["x"] + grid["width"] <= SMALL["width"]
        assert 32 + 75 + 2 * ui_table.KEY_PX + ui_table.REASON_PX <= grid["width"]    # reason drawn whole
        rows = visible_rows(page)
        assert len(rows) >= 8
        for drawn, row in zip(rows, expected):
            assert drawn[STATUS] == row.status and drawn[REASON] == (row.reason or "")
            assert drawn[TARGET] == ui_table.elide(row.target or "", ui_table.KEY_CHARS)
            assert drawn[TARGET] == "" or (row.target or "").endswith(drawn[TARGET].split(ui_table.ELLIPSIS)[-1])
        # the search applies while typing: no Enter
        field = drive.key(page, "key_search").locator("input")
        field.click()
        field.press_sequentially("attn", delay=40)
        page.wait_for_function("() => [...document.querySelectorAll('[data-testid=stCaptionContainer]')]"
                               ".some(c => /^\\d+ of \\d+ rows/.test(c.innerText) && !c.innerText.startsWith("
                               f"'{len(expected)} of'))")
        wait_idle(page)
        shown = visible_rows(page)
        attn = [r for r in expected if "attn" in ((r.target or "") + (r.source or "") + " ".join(r.sources)).lower()]
        assert [r[STATUS] for r in shown] == [r.status for r in attn][:len(shown)] and shown
    finally:
        context.close()


def test_a_shared_link_reopens_the_same_state_in_a_fresh_context(browser, app_url) -> None:
    context, page = small_page(browser, app_url)
    try:
        drive.pick_pair(page, "Silent empty load")
        drive.accept(page, {"add_prefix": "attention_map."})
        before = visible_rows(page)
        counts = drive.metrics(page)
        drive.open_view(page, "Download")
        link = drive.shared_link(page)
        assert link.startswith(app_url) and "recipe=" in link and "view=Download" in link
    finally:
        context.close()
    other, page = small_page(browser, link)           # a new browser context: nothing of the first visit
    try:
        assert drive.key(page, "view").get_by_role("radio", name="Download", exact=True) \
            .get_attribute("aria-checked") == "true"
        assert drive.metrics(page) == counts
        drive.open_view(page, "Alignment")
        assert visible_rows(page) == before
        assert "recipe=" not in page.url                # the link's query was used once
    finally:
        other.close()
