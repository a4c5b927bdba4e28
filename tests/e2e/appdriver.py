"""What a visitor does on the page, as Playwright steps (shared by the e2e tests and
bench/bench_app.py), and what a visitor reads. Widgets are found by the ``st-key-<key>``
class Streamlit gives keyed elements; the data grids are canvases, so cells are reached by
coordinates and read from the grid's accessibility table (``read_grid``).

Every step ends in ``settle``: the rerun finished AND the page shows no exception (a
Streamlit exception box, or the one-line error the page draws for an unexpected failure),
so a test that only clicks still fails on a page that broke."""
from __future__ import annotations

import re
import time
from collections import Counter
from pathlib import Path

from playwright.sync_api import expect

from tests.e2e.conftest import WAIT_MS, wait_idle

HEADER_PX = 36        # glide grid header row
ROW_PX = 35           # glide grid data row


EXCEPTION_BOX = "[data-testid='stException']"
# ``ckptlab.ui.state.guarded`` turns an unexpected failure into one error line "<part>: <Type>: ..."
# (on a line of its own: the alert's text starts with its icon's name)
UNEXPECTED = re.compile(r"^(?:[\w &-]+: )?[A-Z]\w*(?:Error|Exception): ", re.MULTILINE)


def assert_no_exception(page) -> None:
    """Fail if the page shows a traceback box or an unexpected-failure line (what it says
    is in the message)."""
    boxes = page.locator(EXCEPTION_BOX)
    if boxes.count():
        raise AssertionError(f"the page shows an exception box: {boxes.first.inner_text()[:400]!r}")
    for line in page.locator("[data-testid='stAlertContentError']").all_inner_texts():
        found = UNEXPECTED.search(line)
        if found:
            raise AssertionError(f"the page shows an unexpected failure: {line[found.start():].strip()[:400]!r}")


def settle(page, timeout: float = 30_000) -> None:
    """The rerun finished, and it drew no exception."""
    wait_idle(page, timeout)
    assert_no_exception(page)


KEPT = ("status_filter", "key_search", "histogram_key", "view", "values_part", "editor_part")   # ckptlab.ui.kept widgets


def key(page, widget_key: str):
    """The element Streamlit marks with the widget's key (odd characters become '-')."""
    name = re.sub(r"[^a-zA-Z0-9_-]", "-", widget_key.strip())
    return page.locator(".st-key-" + name)


def metrics(page) -> dict[str, int]:
    out = {}
    for text in page.locator("[data-testid='stMetric']").all_inner_texts():
        label, _, value = text.strip().partition("\n")
        out[label.split()[-1]] = int(value.strip().replace(",", ""))
    return out


def wait_for_metrics(page, timeout: float = 30.0, **expected: int) -> dict[str, int]:
    """Poll until every expected status count is shown (or fail with what is shown)."""
    deadline = time.monotonic() + timeout
    seen: dict[str, int] = {}
    while time.monotonic() < deadline:
        try:
            seen = metrics(page)
        except ValueError:
            seen = {}
        if seen and all(seen.get(k) == v for k, v in expected.items()):
            return seen
        page.wait_for_timeout(100)
    raise AssertionError(f"expected counts {expected}, the page shows {seen}")


def choose_option(page, widget_key: str, option: str, exact: bool = False) -> None:
    ensure_view_of(page, widget_key)
    key(page, widget_key).get_by_role("combobox").click()
    page.keyboard.press("ArrowDown")      # opens the list with every option (clicks alone may not)
    page.get_by_role("option", name=option, exact=exact).first.click()
    settle(page)


def pick_pair(page, title_start: str) -> None:
    choose_option(page, "pair", title_start)


def choose_radio(page, widget_key: str, label: str) -> None:
    ensure_view_of(page, widget_key)
    key(page, widget_key).get_by_text(label, exact=True).click()
    settle(page)


ZONE = "[data-testid='ckptlabDropzone'], [data-testid='stFileUploaderDropzone']"   # ours, or Streamlit's


def _uploaded(page, widget_key: str, name: str, timeout: float = 120_000) -> None:
    """Wait until the drop zone says it holds ``name`` (the page reran with the file), or
    fail with what it says."""
    zone = key(page, widget_key).locator(ZONE).first
    if zone.get_attribute("data-testid") == "ckptlabDropzone":
        page.wait_for_function("([el, name]) => el.dataset.file === name || el.dataset.state === 'error'",
                               arg=[zone.element_handle(), name], timeout=timeout)
        assert zone.get_attribute("data-state") != "error", zone.inner_text()
    wait_idle(page)


def upload_with_chooser(page, widget_key: str, path: Path) -> None:
    with page.expect_file_chooser() as chooser:
        key(page, widget_key).locator(ZONE).first.click()
    chooser.value.set_files(str(path))
    _uploaded(page, widget_key, path.name)
    settle(page)


def drop_file(page, widget_key: str, path: Path) -> None:
    """A real drag-and-drop: dragenter/dragover/drop events carrying the file."""
    transfer = page.evaluate_handle(
        "([name, bytes]) => { const dt = new DataTransfer();"
        " dt.items.add(new File([new Uint8Array(bytes)], name)); return dt; }",
        [path.name, list(path.read_bytes())])
    zone = key(page, widget_key).locator(ZONE).first
    for event in ("dragenter", "dragover", "drop"):
        zone.dispatch_event(event, {"dataTransfer": transfer})
    _uploaded(page, widget_key, path.name)
    settle(page)


def grid_cell_point(page, grid_key_prefix: str, row: int, x_offset: float) -> tuple[float, float]:
    grid = page.locator(f"[class*='st-key-{grid_key_prefix}']").get_by_test_id("stDataFrame")
    # Centre it: scrolled just into view it may sit under the page's sticky header, which
    # then takes the click.
    grid.evaluate("e => e.scrollIntoView({block: 'center'})")
    page.wait_for_timeout(100)
    box = grid.bounding_box()
    return box["x"] + x_offset, box["y"] + HEADER_PX + ROW_PX * row + ROW_PX / 2


def type_rule(page, kind: str, pattern: str, row: int) -> None:
    """Add a grid line and fill kind + pattern with the keyboard, stopping before the
    final Enter: select the new line's first cell by coordinates, move right, open the
    kind dropdown, type, Enter; then move to the pattern cell and type it."""
    open_editor(page, "Rules")
    holder = page.locator("[class*='st-key-rules_grid_']")
    holder.scroll_into_view_if_needed()
    holder.hover()
    holder.get_by_role("button", name="Add row").click()
    page.wait_for_timeout(200)
    x, y = grid_cell_point(page, "rules_grid_", row, 60)
    page.mouse.click(x, y)
    page.wait_for_timeout(150)
    page.keyboard.press("ArrowRight")
    page.keyboard.press("Enter")          # opens the dropdown editor
    page.wait_for_timeout(300)
    page.keyboard.type(kind)
    page.wait_for_timeout(150)
    page.keyboard.press("Enter")          # choose it; the selection moves down a line
    settle(page)
    page.mouse.click(x, y)                # back to the line, then to its pattern cell
    page.wait_for_timeout(150)
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    page.keyboard.type(pattern)
    page.wait_for_timeout(150)


def add_rule(page, kind: str, pattern: str, row: int) -> None:
    """A whole new rule line, committed (the page reruns with it)."""
    type_rule(page, kind, pattern, row)
    page.keyboard.press("Enter")
    settle(page)


def click_treemap_module(page, label: str) -> None:
    """Click the header band of the treemap box labelled ``label`` (its centre belongs to
    its children)."""
    open_view(page, "Values & charts")
    chart = key(page, "treemap")
    chart.scroll_into_view_if_needed()
    slices = chart.locator("g.slice")
    slices.first.wait_for()
    for i in range(slices.count()):
        text = (slices.nth(i).locator("text").first.text_content() or "").strip()
        if text.split("\n")[0].startswith(label) and not text[len(label):len(label) + 1].isalnum():
            slices.nth(i).locator("path.surface").first.click(position={"x": 6, "y": 6}, force=True)
            settle(page)
            return
    raise AssertionError(f"no treemap box labelled {label!r}")


VIEW_OF = {      # widget key prefix -> the view that holds it
    "fix_": "Shape fixes", "treemap": "Values & charts", "histogram": "Values & charts", "verify_": "Verify",
    "warm_start": "Verify", "ft_": "Fine-tune", "build_merged": "Download", "download_": "Download",
    "out_": "Download", "rules_grid": "Alignment", "map_grid": "Alignment", "key_search": "Alignment",
    "status_filter": "Alignment", "clear_module": "Alignment", "recipe_upload": "Alignment",
}


def view_key_element(page, name: str):
    """What a visitor opens the view for (its part's heading or chart for Values & charts)."""
    body = page.locator(".st-key-view_body")
    if name == "Alignment":
        return alignment_grid(page)
    if name == "Shape fixes":
        return body.locator("[class*='st-key-fix_op_']").or_(body.get_by_text("No shape to fix")).first
    if name == "Values & charts":
        return body.locator(".st-key-treemap").or_(body.get_by_text(
            re.compile(r"^(Value statistics|Compare values)$"))).first
    if name == "Verify":
        return key(page, "warm_start_report")
    if name == "Fine-tune":  # the plan, or (a file target) what the plan needs
        return body.get_by_text("Fine-tune plan", exact=True).or_(
            body.get_by_text(re.compile(r"^The fine-tune plan needs the target as a model"))).first
    if name == "Download":
        return key(page, "build_merged")
    raise KeyError(name)


# Views scroll with the page (ckptlab.ui.layout): a visitor who sees the view's key element
# below the fold scrolls the view picker up to the top of the window, no further.
_SCROLL_TO_VIEW = """([picker, element]) => {
  const r = element.getBoundingClientRect();
  if (r.top < 0 || r.bottom > window.innerHeight) picker.scrollIntoView({block: 'start'});
}"""


def open_view(page, name: str) -> None:
    """Pick a view in the main area's segmented control (no-op when it is open); either
    way its key element must be in the viewport, where the visitor looks (once the view
    picker is scrolled to the top of the window, if the element was below the fold)."""
    picker = key(page, "view")
    button = picker.get_by_role("radio", name=name, exact=True)
    if button.get_attribute("aria-checked") != "true":
        button.click()
        settle(page)
        page.wait_for_function("n => [...document.querySelectorAll(\"[class*='st-key-view'] [role=radio]\")]"
                               ".some(b => b.innerText.trim() === n && b.getAttribute('aria-checked') === 'true')",
                               arg=name)
    element = view_key_element(page, name)
    element.wait_for(state="attached", timeout=WAIT_MS)
    page.evaluate(_SCROLL_TO_VIEW, [picker.element_handle(), element.element_handle()])
    expect(element).to_be_in_viewport(timeout=WAIT_MS)


def open_editor(page, name: str) -> None:
    """Pick one of the Alignment view's editors (Rules, Mappings, Conversions, Recipe)."""
    open_view(page, "Alignment")
    button = key(page, "editor_part").get_by_role("radio", name=name, exact=True)
    if button.get_attribute("aria-checked") != "true":
        button.click()
        settle(page)


def ensure_view_of(page, widget_key: str) -> None:
    for prefix, view in VIEW_OF.items():
        if widget_key.startswith(prefix):
            if not key(page, widget_key).count():
                open_view(page, view)
            return


def click(page, widget_key: str) -> None:
    """Click the button with this key and wait for the rerun."""
    ensure_view_of(page, widget_key)
    key(page, widget_key).locator("button").click()
    settle(page)


def type_text(page, widget_key: str, text: str) -> None:
    """Replace a text input's content, as typed, and commit it with Enter."""
    ensure_view_of(page, widget_key)
    field = key(page, widget_key).locator("input, textarea").first
    field.click()
    field.press("Control+A")
    field.press_sequentially(text)
    field.press("Enter")
    settle(page)


def accept(page, fragment: dict) -> None:
    """Click the Accept button of the suggestion made of ``fragment``."""
    from ckptlab.recipe.edits import fragment_id

    click(page, f"accept_{fragment_id(fragment)}")


def download(page, widget_key: str, folder: Path) -> Path:
    """Click a download button (or the merged file's link); return where the browser's
    file was saved."""
    ensure_view_of(page, widget_key)
    with page.expect_download() as event:
        key(page, widget_key).locator("a, button").first.click()
    path = folder / event.value.suggested_filename
    event.value.save_as(path)
    return path


def text_of(page, widget_key: str) -> str:
    ensure_view_of(page, widget_key)
    return key(page, widget_key).inner_text()


def grid_cell_text(page, grid_key_prefix: str, row: int, column: int) -> str:
    """A data grid cell's text, from the grid's accessibility table (``column`` 0 is the
    first data column)."""
    holder = page.locator(f"[class*='st-key-{grid_key_prefix}']")
    return holder.locator(f"[id='glide-cell-{column + 1}-{row}']").text_content() or ""


def edit_grid_cell(page, grid_key_prefix: str, row: int, column: int, text: str, attempts: int = 3) -> None:
    """Overwrite one cell of a data editor (``column`` 0 is the first data column): select
    it by coordinates once the grid stopped moving, type (typing replaces the value), Enter.

    The grid is a canvas: under load a click can land before it takes the keyboard, and
    the keys go nowhere. The cell's text is read back, and the edit tried again if so."""
    open_editor(page, "Mappings" if grid_key_prefix.startswith("map_grid") else
                "Conversions" if grid_key_prefix.startswith("convert_grid") else "Rules")
    got = ""
    for _ in range(attempts):
        x, y = grid_cell_point(page, grid_key_prefix, row, 60)
        page.mouse.click(x, y)                # the first click gives the grid the keyboard back...
        page.wait_for_timeout(400)
        page.mouse.click(x, y)                # ...the second selects the cell the keys start from
        page.wait_for_timeout(150)
        if page.locator("#portal input, #portal textarea").count():
            page.keyboard.press("Escape")     # the second click opened the cell's editor: keep the selection only
            page.wait_for_timeout(150)
        for _ in range(column):
            page.keyboard.press("ArrowRight")
        page.keyboard.type(text)
        page.wait_for_timeout(150)
        page.keyboard.press("Enter")
        settle(page)
        got = grid_cell_text(page, grid_key_prefix, row, column)
        if got == text:
            return
        page.keyboard.press("Escape")
        page.wait_for_timeout(500)
    raise AssertionError(f"grid {grid_key_prefix} cell ({row}, {column}) shows {got!r} after typing {text!r}")


def toggle(page, widget_key: str) -> None:
    """Tick or untick a checkbox (its label is what a visitor clicks)."""
    ensure_view_of(page, widget_key)
    key(page, widget_key).locator("label").click()
    settle(page)


# -- reading the data grids --------------------------------------------------------------
# glide-data-grid draws on a canvas and keeps an offscreen <table role="grid"> of the cells
# in view (aria-rowindex 1 is the header row); the grid is read by scrolling it over.
_READ_VISIBLE = """grid => {
  const table = grid.querySelector('table[role=grid]');
  if (!table) return null;
  const heads = {};
  table.querySelectorAll('thead th').forEach(h => heads[h.getAttribute('aria-colindex')] = h.textContent);
  const rows = {};
  table.querySelectorAll('tbody tr').forEach(tr => {
    const row = {};
    tr.querySelectorAll('td').forEach(td => row[td.getAttribute('aria-colindex')] = td.textContent);
    rows[tr.getAttribute('aria-rowindex')] = row;
  });
  const s = grid.querySelector('.dvn-scroller');
  return {rowcount: +table.getAttribute('aria-rowcount'), colcount: +table.getAttribute('aria-colcount'),
          heads, rows, width: s.scrollWidth, height: s.scrollHeight, seenWidth: s.clientWidth,
          seenHeight: s.clientHeight};
}"""
_SCROLL = """(grid, [left, top]) => {
  const s = grid.querySelector('.dvn-scroller');
  s.scrollLeft = left; s.scrollTop = top;
  return [s.scrollLeft, s.scrollTop];
}"""


# drawn: the accessibility table is there and the scroll area is as tall as its rows say
# (while a new frame is being drawn the two disagree)
_DRAWN = """grid => {
  const table = grid.querySelector('table[role=grid]'), s = grid.querySelector('.dvn-scroller');
  if (!table || !s) return false;
  const content = +table.getAttribute('aria-rowcount') * %d;
  const fits = s.scrollHeight <= s.clientHeight + 2 && content <= s.clientHeight + 2;   // no scrolling
  return Math.abs(s.scrollHeight - content) <= 2 || fits;
}""" % ROW_PX


def _scrolled_view(grid, left: int, top: int, before: dict, where: list[int], timeout: float = 5.0) -> dict:
    """Scroll the grid to (left, top) and read the cells in view once the grid redrew them:
    its accessibility table follows the scroll a frame or more later, so the read must
    start at the row on the top edge, show other columns if it moved sideways, and hold
    still."""
    moved = grid.evaluate(_SCROLL, [left, top])
    sideways, where[:] = moved[0] != where[0], moved
    top_row = moved[1] // ROW_PX + 2            # aria-rowindex 1 is the header row
    deadline, last = time.monotonic() + timeout, None
    while True:
        seen = grid.evaluate(_READ_VISIBLE)
        ready = ((not sideways or seen["heads"] != before.get("heads"))
                 and (not seen["rows"] or min(map(int, seen["rows"])) == top_row))
        if (ready and seen == last) or time.monotonic() > deadline:
            return seen
        last = seen
        grid.page.wait_for_timeout(60)


def read_grid(grid, timeout: float = WAIT_MS) -> list[dict[str, str]]:
    """Every row of a data grid (``stDataFrame`` locator) as {column title: cell text}, in the
    order shown: what a visitor reads, scrolled over from the top left (and back there)."""
    grid.scroll_into_view_if_needed()
    grid.page.wait_for_function(_DRAWN, arg=grid.element_handle(), timeout=timeout)
    where = [0, 0]
    seen = first = _scrolled_view(grid, 0, 0, {}, where)
    heads: dict[str, str] = {}
    cells: dict[int, dict[str, str]] = {}
    trace: list[tuple] = []     # (scrolled to, first row, rows, first column) per read, for the failure message
    step_x, step_y = max(first["seenWidth"] - 40, 40), max(first["seenHeight"] - 80, 35)
    for top in range(0, max(first["height"] - first["seenHeight"], 0) + step_y, step_y):
        for left in range(0, max(first["width"] - first["seenWidth"], 0) + step_x, step_x):
            seen = _scrolled_view(grid, left, top, seen, where)
            trace.append((tuple(where), min(map(int, seen["rows"]), default=None), len(seen["rows"]),
                          min(map(int, seen["heads"]), default=None)))
            heads.update(seen["heads"])
            for index, row in seen["rows"].items():
                cells.setdefault(int(index), {}).update(row)
    last = _scrolled_view(grid, 0, 0, seen, where)
    assert last["rowcount"] == first["rowcount"], "the grid changed while it was read"
    count = first["rowcount"] - 1
    rows = [cells.get(i, {}) for i in range(2, count + 2)]
    missing = [i for i, row in enumerate(rows) if len(row) != first["colcount"]]
    assert not missing and len(heads) == first["colcount"], \
        f"grid read incompletely: rows {missing[:5]} of {count}, columns {sorted(heads.values())}; reads {trace}"
    return [{heads[c]: text for c, text in sorted(row.items(), key=lambda kv: int(kv[0]))} for row in rows]


def alignment_grid(page):
    """The alignment table: the grid in the block that holds the status filter."""
    block = page.locator("[data-testid='stVerticalBlock']").filter(has=key(page, "status_filter")) \
        .filter(has=page.get_by_test_id("stDataFrame")).last
    return block.get_by_test_id("stDataFrame").first


def expected_rows(alignment) -> list[tuple[str, str, str]]:
    """(target key, source key, status) per row of the core's alignment, in its order; a
    conflict lists its candidate sources."""
    return [(r.target or "", r.source if r.source is not None else ", ".join(getattr(r, "sources", ()) or ()),
             r.status) for r in alignment.rows]


FOLDED_NOTE = "Keys shown without the prefix they all share:"
ELLIPSIS = "\u2026"
# the note names each folded prefix as "<side> <code>prefix</code>" (ckptlab.ui.table.show)
_READ_FOLDED = """note => {
  const out = {};
  for (const code of note.querySelectorAll('code')) {
    let before = code.previousSibling ? code.previousSibling.textContent : '';
    const side = before.match(/(target|source)\\s*$/);
    if (side) out[side[1]] = code.textContent;
  }
  return out;
}"""


def folded_prefixes(page) -> dict[str, str]:
    """The prefix the table leaves out of each side's cells, as the note above it says
    ({"target": "module.", ...}; a side without one is absent)."""
    block = page.locator("[data-testid='stVerticalBlock']").filter(has=key(page, "status_filter")) \
        .filter(has=page.get_by_test_id("stDataFrame")).last
    note = block.get_by_test_id("stCaptionContainer").filter(has_text=FOLDED_NOTE)
    if not note.count():
        return {}
    return note.first.evaluate(_READ_FOLDED)


def _elides(cell: str, key: str) -> bool:
    """``cell`` is ``key`` with its middle replaced by one ellipsis (``head…tail``)."""
    if cell.count(ELLIPSIS) != 1:
        return False
    head, tail = cell.split(ELLIPSIS)
    return bool(head and tail) and len(key) > len(cell) and key.startswith(head) and key.endswith(tail)


def shows_key(cell: str, key: str, prefix: str = "") -> bool:
    """A cell a reader takes for ``key``: the key whole, without the folded ``prefix``, or
    either with its middle elided. An empty key must show an empty cell."""
    if not key:
        return cell == ""
    forms = [key] + ([key[len(prefix):]] if prefix and key.startswith(prefix) else [])
    return any(cell == form or _elides(cell, form) for form in forms)


def _row_matches(got: tuple[str, str, str], want: tuple[str, str, str], folded: dict[str, str]) -> bool:
    return (shows_key(got[0], want[0], folded.get("target", ""))
            and shows_key(got[1], want[1], folded.get("source", "")) and got[2] == want[2])


def assert_shows_alignment(page, alignment) -> None:
    """The page shows ``alignment`` (the core's, computed by the test on the same pair)
    whole: the count per status, the 'N of N rows' caption, and every grid row's target
    key, source key and status, in order, as a reader takes them (``shows_key``: the
    prefix the note above the table folds, a middle elided). The status filter must show
    every status and the search must be empty."""
    from ckptlab.ui.icons import STATUS_ORDER

    summary = {s: alignment.summary.get(s, 0) for s in STATUS_ORDER}
    wait_for_metrics(page, **summary)
    total = len(alignment.rows)
    open_view(page, "Alignment")
    expect(page.get_by_text(f"{total:,} of {total:,} rows", exact=True)).to_be_visible(timeout=WAIT_MS)
    expected = expected_rows(alignment)
    deadline = time.monotonic() + 5       # a grid still painting the previous frame is read again
    while True:
        try:
            shown = [(r["target key"], r["source key"], r["status"]) for r in read_grid(alignment_grid(page))]
        except AssertionError:          # read while it was redrawn
            if time.monotonic() > deadline:
                raise
            shown = None
        folded = folded_prefixes(page)
        wrong = None if shown is None else [(i, got, want) for i, (got, want) in enumerate(zip(shown, expected))
                                            if not _row_matches(got, want, folded)]
        if (shown is not None and len(shown) == len(expected) and not wrong) or \
                (shown is not None and time.monotonic() > deadline):
            break
        page.wait_for_timeout(500)
    assert len(shown) == len(expected), f"the grid shows {len(shown)} rows, the alignment has {len(expected)}"
    assert not wrong, ("grid rows differ from the alignment (row, shown, expected): "
                       + "; ".join(map(str, wrong[:5])) + f" (folded prefixes shown: {folded})")
    counted = Counter(status for _, _, status in shown)
    assert {s: counted.get(s, 0) for s in STATUS_ORDER} == summary, (counted, summary)
    assert_no_exception(page)


def table_rows(page, table_key: str = "alignment_table", settle: bool = True) -> list[list[str]]:
    """The rows a data grid draws, as its accessibility table gives their cells' text
    (columns in the order shown; only the columns and rows on screen). ``settle=False``:
    read at once (a timing loop polls it)."""
    holder = page.locator(f".st-key-{table_key}")
    if settle:
        holder.scroll_into_view_if_needed()
        holder.locator("[id^=glide-cell-]").first.wait_for(state="attached")
        page.wait_for_timeout(300)
    return holder.evaluate(
        "e => { const rows = {}; for (const c of e.querySelectorAll('[id^=glide-cell-]')) {"
        " const [, col, row] = c.id.match(/glide-cell-(\\d+)-(\\d+)/).map(Number);"
        " (rows[row] = rows[row] || [])[col - 1] = c.textContent; }"
        " return Object.keys(rows).sort((a, b) => a - b).map(k => rows[k]); }")


def shared_link(page) -> str:
    """Open the Share popover and read the link it shows."""
    key(page, "share").locator("button").first.click()
    code = page.get_by_test_id("stCode").filter(has_text="?pair=").first
    code.wait_for()
    link = code.inner_text().strip()
    page.keyboard.press("Escape")
    return link


def chosen_statuses(page) -> list[str]:
    """The statuses the table's filter has chosen (its pressed pills, ``<status> <count>``)."""
    return [text.rsplit(" ", 1)[0] for text in key(page, "status_filter").locator("button[aria-pressed='true']")
            .all_inner_texts()]


def toggle_status(page, status: str) -> None:
    """Click the status's pill in the table's filter (chosen <-> not chosen)."""
    ensure_view_of(page, "status_filter")
    pill = key(page, "status_filter").locator("button[aria-pressed]").filter(
        has_text=re.compile(rf"^{re.escape(status)} [\d,]+$"))
    wanted = "false" if pill.get_attribute("aria-pressed") == "true" else "true"
    for _ in range(3):
        # A click that lands while the previous click's rerun is still running can be drawn over
        # by that run's state (Streamlit pushes a kept widget's value to the browser): the pill
        # then shows its old state, as it would to a visitor, who clicks again.
        pill.click()
        wait_idle(page)
        if pill.get_attribute("aria-pressed") == wanted:
            return
    raise AssertionError(f"the {status!r} pill stays aria-pressed={pill.get_attribute('aria-pressed')}")
