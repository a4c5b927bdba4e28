"""AppTest helpers: a fresh app per test, and the bytes handed to download buttons."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from streamlit.runtime.media_file_manager import MediaFileManager
from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "ckptlab" / "ui" / "app_script.py"
SAMPLES = ROOT / "sample_ckpts"


def new_app() -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


@pytest.fixture
def app() -> AppTest:
    return new_app()


@pytest.fixture
def downloads(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """file id -> what a download button serves: the bytes the app handed to Streamlit's
    media storage (the button's URL names the id), or the callable of a deferred button
    (the browser's click runs exactly that callable)."""
    seen: dict[str, Any] = {}
    original = MemoryMediaFileStorage.load_and_get_id
    original_deferred = MediaFileManager.add_deferred

    def deferring(self, data_callable, mimetype, coordinates, file_name=None, **kwargs):
        file_id = original_deferred(self, data_callable, mimetype, coordinates, file_name, **kwargs)
        seen[file_id] = data_callable
        return file_id

    def recording(self, path_or_data, mimetype, kind, filename=None):
        file_id = original(self, path_or_data, mimetype, kind, filename)
        data = path_or_data if isinstance(path_or_data, bytes) else Path(path_or_data).read_bytes()
        seen[file_id] = data
        return file_id

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", recording)
    monkeypatch.setattr(MediaFileManager, "add_deferred", deferring)
    return seen


def download_bytes(at: AppTest, key: str, seen: dict[str, Any]) -> bytes:
    button = next(b for b in at.get("download_button") if b.proto.id.endswith(key))
    if button.proto.deferred_file_id:
        data = seen[button.proto.deferred_file_id]()
        if hasattr(data, "read"):          # a file opened on click (the merged checkpoint)
            with data:
                data = data.read()
        return data.encode() if isinstance(data, str) else data
    file_id = button.proto.url.rsplit("/", 1)[-1].split(".", 1)[0]
    return seen[file_id]


def plain(markdown: str) -> str:
    """What a markdown-escaped line shows, less the invisible word joiners ``ckptlab.ui.text.md``
    puts inside would-be autolinks."""
    import re

    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", markdown).replace("\u2060", "")   # and the autolink breakers
