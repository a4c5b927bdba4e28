"""Progress in bytes written, reported to a caller's ``progress(done, total, key)`` callback."""
from __future__ import annotations

from collections.abc import Callable

__all__ = ["Progress", "ByteProgress"]

Progress = Callable[[int, int, str], None]


class ByteProgress:
    """Counts bytes written; calls ``progress(0, total, "")`` first, then once per tensor."""

    def __init__(self, progress: Progress | None, total: int):
        self.progress, self.total, self.done = progress, total, 0
        if progress:
            progress(0, total, "")

    def advance(self, nbytes: int, key: str) -> None:
        self.done += nbytes
        if self.progress:
            self.progress(self.done, self.total, key)
