"""Small text outputs (recipes, reports) written whole or not at all.

A report or recipe that fails to save must say so in one line naming the file, and must
never leave a half-written file behind; checking the path first lets a command refuse
before it spends minutes writing a large checkpoint it would then not describe.
"""
from __future__ import annotations

import os
from pathlib import Path

from ckptlab.errors import CheckpointError

__all__ = ["check_writable", "write_text_atomic"]


def check_writable(path: str | os.PathLike, what: str, suffixes: tuple[str, ...] = (),
                   error: type[CheckpointError] = CheckpointError) -> Path:
    """``path`` as a Path, or ``error`` when its suffix or folder cannot work."""
    path = Path(path)
    if suffixes and path.suffix.lower() not in suffixes:
        got = f"not {path.suffix!r}" if path.suffix else "it has no suffix"
        raise error(f"{what} must end in {', '.join(suffixes)}; {got}", path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise error(f"cannot write the {what}: folder {str(folder)!r} does not exist", path)
    if path.is_dir():
        raise error(f"cannot write the {what}: that is a folder", path)
    return path


def write_text_atomic(path: str | os.PathLike, text: str, what: str) -> Path:
    """Write ``text`` to a temp file beside ``path``, then rename it into place (the mode as
    ``open()`` would give it; an overwritten file keeps its own)."""
    from ckptlab.io.writers.atomic import AtomicFiles

    path = check_writable(path, what)
    try:
        with AtomicFiles([path], error=CheckpointError) as tmp:
            with open(tmp.paths[0], "w", encoding="utf-8", newline="") as handle:  # text as given (CSV: CRLF)
                handle.write(text)
    except OSError as exc:
        raise CheckpointError(f"cannot write the {what} ({exc.strerror or exc})", path) from None
    return path
