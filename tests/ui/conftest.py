"""AppTest helpers: a fresh app per test, and the bytes handed to download buttons."""
from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "app.py"
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
def downloads(monkeypatch: pytest.MonkeyPatch) -> dict[str, bytes]:
    """file id -> bytes of every file the app hands to Streamlit's media storage (download
    buttons); the download button's proto URL names the file id."""
    seen: dict[str, bytes] = {}
    original = MemoryMediaFileStorage.load_and_get_id

    def recording(self, path_or_data, mimetype, kind, filename=None):
        file_id = original(self, path_or_data, mimetype, kind, filename)
        data = path_or_data if isinstance(path_or_data, bytes) else Path(path_or_data).read_bytes()
        seen[file_id] = data
        return file_id

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", recording)
    return seen


def download_bytes(at: AppTest, key: str, seen: dict[str, bytes]) -> bytes:
    button = next(b for b in at.get("download_button") if b.proto.id.endswith(key))
    url = button.proto.url
    file_id = url.rsplit("/", 1)[-1].split(".", 1)[0]
    return seen[file_id]
