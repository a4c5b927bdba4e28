"""A byte range of a file: the unit every reader reads tensor bytes from.

Most checkpoints are a whole file, but a torch.distributed.checkpoint chunk is a
``torch.save`` archive embedded at an offset inside a ``.distcp`` file. Readers take a
``Region`` so the same zip reader serves both, and ``read_into_tensor`` reads exactly one
span with seek + readinto into fresh memory (no whole-file mmap: RSS must stay low when a
writer streams thousands of tensors).
"""
from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from ckptlab.errors import UnreadableFileError

__all__ = ["Region", "Window"]


@dataclass(frozen=True)
class Region:
    """``length`` bytes of ``path`` starting at ``start`` (``length=None``: to the end)."""

    path: Path
    start: int = 0
    length: int | None = None

    @property
    def size(self) -> int:
        if self.length is not None:
            return self.length
        return os.path.getsize(self.path) - self.start

    def open(self) -> "Window":
        return Window(self)

    def read(self, offset: int, nbytes: int) -> bytes:
        """Exactly ``nbytes`` at ``offset`` (relative to the region), or a truncation error."""
        with self.open() as f:
            f.seek(offset)
            data = f.read(nbytes)
        if len(data) != nbytes:
            raise UnreadableFileError(f"truncated: needs {nbytes} bytes at offset {offset}, file ends first",
                                      self.path)
        return data

    def read_into_tensor(self, offset: int, nbytes: int) -> torch.Tensor:
        """A fresh uint8 CPU tensor holding exactly ``nbytes`` read at ``offset``."""
        if nbytes == 0:
            return torch.empty(0, dtype=torch.uint8)
        if offset < 0 or nbytes < 0 or offset + nbytes > self.size:  # checked before allocating
            raise UnreadableFileError(
                f"truncated: tensor data at offset {offset} (+{nbytes} bytes) lies beyond the end of the file",
                self.path)
        buf = torch.empty(nbytes, dtype=torch.uint8)
        view = memoryview(buf.numpy())
        with open(self.path, "rb", buffering=0) as f:
            f.seek(self.start + offset)
            done = 0
            while done < nbytes:
                n = f.readinto(view[done:])
                if not n:
                    raise UnreadableFileError(f"truncated: file ends inside tensor data at offset {offset}",
                                              self.path)
                done += n
        return buf


class Window(io.RawIOBase):
    """A read-only, seekable file object that sees only one region (for ``zipfile``)."""

    def __init__(self, region: Region):
        super().__init__()
        self._region = region
        self._file = open(region.path, "rb")
        self._size = region.size
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer) -> int:
        n = max(0, min(len(buffer), self._size - self._pos))
        if n == 0:
            return 0
        self._file.seek(self._region.start + self._pos)
        got = self._file.readinto(memoryview(buffer)[:n]) or 0
        self._pos += got
        return got

    def close(self) -> None:
        if not self.closed:
            self._file.close()
        super().close()
