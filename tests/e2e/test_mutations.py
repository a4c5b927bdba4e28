"""The browser suite's own check: a copy of the app with a broken alignment table must fail
the driver's reading of the page. The copy (in tmp_path; the repo is never touched) picks
its breakage from the URL (``?mutant=...``), so one server serves all of them:

- ``empty``: the grid shows no rows, its "N of N rows" caption intact;
- ``swap``: the "source key" column shows the target key and the other way round;
- ``exception``: an exception box drawn under the table;
- ``raise``: the table's code raises after drawing it (Streamlit draws the fragment's traceback box);
- ``fails``: the view raises after the table (the page turns that into one error line).

The same page without ``?mutant`` must pass, so a failure is the mutation's, not the copy's.
"""
from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

import ckptlab
from tests.e2e import appdriver as drive
from tests.e2e.conftest import ROOT, free_port, start_app, stop_app, wait_idle

SAMPLES = ROOT / "sample_ckpts"
pytestmark = pytest.mark.e2e

ANCHOR_BEFORE_GRID = "    event = st.dataframe(\n        tinted(shown), hide_index=True, key=\"alignment_table\""
MUTANTS = '''    mutant = st.query_params.get("mutant", "")
    if mutant == "empty":
        shown = shown.iloc[0:0]
    elif mutant == "swap":
        shown = shown.assign(target_key=shown["source_key"], source_key=shown["target_key"])
'''
ANCHOR_AFTER_GRID = "    _picked(event, frame, kept_rows)\n"      # the line after the grid in table.show
AFTER_GRID = '''    if mutant == "exception":
        st.exception(RuntimeError("a mutant's exception under the table"))
    elif mutant == "raise":
        raise RuntimeError("a mutant's failure under the table")
'''

AFTER_TABLE_ANCHOR = "        table.show(alignment, ctx.compact)\n"
VIEW_FAILS = '''    if st.query_params.get("mutant") == "fails":
        raise RuntimeError("a mutant's failure under the table")
'''


def mutated_copy(folder: Path) -> Path:
    """The app's files copied to ``folder``, the alignment table patched to break on demand."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("ckptlab", "sample_ckpts", ".streamlit"):
        shutil.copytree(ROOT / name, folder / name, ignore=ignore)
    shutil.copy(ROOT / "app.py", folder / "app.py")
    table = folder / "ckptlab" / "ui" / "table.py"
    code = table.read_text()
    assert code.count(ANCHOR_BEFORE_GRID) == 1, "ckptlab/ui/table.py changed: update the mutation anchors"
    assert code.count(ANCHOR_AFTER_GRID) == 1, "ckptlab/ui/table.py changed: update the mutation anchors"
    code = code.replace(ANCHOR_BEFORE_GRID, MUTANTS + ANCHOR_BEFORE_GRID)
    table.write_text(code.replace(ANCHOR_AFTER_GRID, AFTER_GRID + ANCHOR_AFTER_GRID))
    view = folder / "ckptlab" / "ui" / "views" / "alignment.py"
    code = view.read_text()
    assert code.count(AFTER_TABLE_ANCHOR) == 1, "ckptlab/ui/views/alignment.py changed: update the mutation anchor"
    view.write_text(code.replace(AFTER_TABLE_ANCHOR, AFTER_TABLE_ANCHOR + VIEW_FAILS))
    return folder


@pytest.fixture(scope="module")
def mutant_url(tmp_path_factory) -> Iterator[str]:
    folder = mutated_copy(tmp_path_factory.mktemp("mutant_app"))
    port = free_port()
    proc = start_app(port, env={"PYTHONPATH": str(folder)}, root=folder)   # the copy's ckptlab, not the repo's
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_app(proc)


def visit(browser, url: str):
    context = browser.new_context(viewport={"width": 1600, "height": 1200})
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.goto(url)
    wait_idle(page)
    return context, page


@pytest.mark.parametrize("mutant, caught", [
    ("", None),
    ("empty", r"the grid shows [01] rows, the alignment has 50"),   # glide draws one empty row for none
    ("swap", "grid rows differ from the alignment"),
    ("exception", "exception box"),
    ("raise", "exception box"),
    ("fails", "unexpected failure: .Alignment: RuntimeError: a mutant's failure"),
])
def test_the_driver_catches_a_broken_alignment_table(browser, mutant_url: str, mutant: str, caught: str | None) -> None:
    demo = ckptlab.align(SAMPLES / "attention_net_ckpt.pt", SAMPLES / "attention_wrapper.pt", auto="none")
    context, page = visit(browser, f"{mutant_url}/?mutant={mutant}")
    try:
        if caught is None:
            drive.assert_shows_alignment(page, demo)
        else:
            with pytest.raises(AssertionError, match=caught):
                drive.assert_shows_alignment(page, demo)
    finally:
        context.close()
