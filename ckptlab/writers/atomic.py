"""All-or-nothing output: temporary files beside the destinations, renamed into place at the end.

On any error the temporary files are removed, so a failed write leaves neither a partial
file nor a changed previous one.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ckptlab.errors import MergeError


class AtomicFiles:
    """``with AtomicFiles(finals) as tmp``: write ``tmp.paths``; they become ``finals`` on success."""

    def __init__(self, finals: list[Path]):
        self.finals = [str(p) for p in finals]
        self.paths: list[str] = []

    def __enter__(self) -> "AtomicFiles":
        try:
            for final in self.finals:
                folder, name = os.path.split(os.path.abspath(final))
                fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
                os.close(fd)
                self.paths.append(tmp)
        except OSError as exc:
            self._cleanup()
            raise MergeError(f"cannot create a file there ({exc.strerror})", final) from None
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            try:
                for tmp, final in zip(self.paths, self.finals):
                    os.replace(tmp, final)
                return
            except OSError as err:
                self._cleanup()
                raise MergeError(f"cannot move the output into place ({err.strerror})", final) from None
        self._cleanup()

    def _cleanup(self) -> None:
        for tmp in self.paths:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
