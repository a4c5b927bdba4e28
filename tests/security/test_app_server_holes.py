"""Small holes of the app as a server: the server-path box is no oracle (one and the same
line for a file outside the roots, a missing one, a folder, a pipe or a file that is no
checkpoint, never its first bytes); download links are bound to the browser that built
them."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from streamlit.testing.v1 import AppTest

from ckptlab.ui import files
from ckptlab.ui.inputs import NOT_ALLOWED
from tests.ui.conftest import new_app, plain


def typed_path(at: AppTest, path: str) -> list[str]:
    at.sidebar.radio(key="source_mode").set_value("Server path").run()
    at.sidebar.text_input(key="source_path").input(path).run()
    assert not at.exception, [e.value for e in at.exception]
    return [plain(e.value) for e in at.sidebar.error]


def test_the_path_box_says_only_not_an_allowed_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "root"
    root.mkdir()
    monkeypatch.setenv("CKPTLAB_ROOTS", str(root))
    (root / "notes.txt").write_text("SECRET-TOKEN-1234 the first bytes of a private file")
    (root / "folder").mkdir()
    os.mkfifo(root / "pipe.pt")                                  # opening it would block the server
    (tmp_path / "outside.pt").write_bytes((root / "notes.txt").read_bytes())
    torch.save({"w": torch.ones(2)}, root / "good.pt")
    at = new_app()
    cases = [str(tmp_path / "outside.pt"), str(tmp_path / "missing.pt"), "/etc/passwd", "/etc/no-such-file",
             str(root / "missing.pt"), "notes.txt", str(root / "notes.txt"), str(root / "folder"),
             str(root / "pipe.pt"), "../outside.pt", "folder/../../outside.pt"]
    for typed in cases:
        shown = typed_path(at, typed)
        assert shown == [f"{typed}: {NOT_ALLOWED}"], (typed, shown)
    page = " ".join(plain(e.value) for e in at.sidebar.error) + " ".join(t.value for t in at.sidebar.text)
    assert "SECRET" not in page and "53 45 43 52" not in page               # no byte of the file, raw or hex
    assert typed_path(at, str(root / "good.pt")) == []
    assert any("torch-zip" in t.value for t in at.sidebar.text)          # it opened


def test_a_download_link_serves_only_the_browser_that_built_it(tmp_path: Path) -> None:
    from streamlit.web.server.starlette.starlette_app_utils import generate_xsrf_token_string

    built = tmp_path / "merged.pt"
    built.write_bytes(b"merged bytes")
    mine, theirs = os.urandom(32), os.urandom(32)
    cookie = generate_xsrf_token_string(mine, 1)
    browser = files.browser_id(cookie)
    token = files.serve(built, "merged.pt", owner=str(tmp_path), browser=browser).rsplit("/", 1)[-1]
    try:
        again = generate_xsrf_token_string(mine, 1)                  # the same browser, the cookie re-masked
        assert again != cookie and files.lookup(token, files.browser_id(again)).path == built
        assert files.lookup(token, files.browser_id(generate_xsrf_token_string(theirs, 1))) is None
        assert files.lookup(token, files.browser_id(None)) is None   # no cookie at all
        assert files.lookup(token, files.browser_id("garbage")) is None
    finally:
        files.forget_owner(str(tmp_path))
    assert files.lookup(token, browser) is None                      # the visit is over: gone
