"""Fixtures for the format tests: a recorder of the byte spans readers read."""
from __future__ import annotations

import pytest

from ckptlab.io.formats.region import Region


@pytest.fixture
def reads(monkeypatch):
    """Every (path, offset, nbytes) tensor-data read, in order."""
    seen: list[tuple[str, int, int]] = []
    original = Region.read_into_tensor

    def recording(self, offset, nbytes):
        seen.append((str(self.path), self.start + offset, nbytes))
        return original(self, offset, nbytes)

    monkeypatch.setattr(Region, "read_into_tensor", recording)
    return seen
