"""Shared fixtures (keep this small and generic)."""
from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "sample_ckpts"


@pytest.fixture
def sample():
    """``sample("convnet_rgb.pt")`` -> absolute path of a bundled sample checkpoint."""
    def path(name: str) -> Path:
        found = SAMPLES / name
        assert found.is_file(), f"no bundled sample {name}"
        return found
    return path
