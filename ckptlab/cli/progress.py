"""A byte progress bar on stderr for commands that stream a large file (none when piped)."""
from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from ckptlab.errors import printable

MIN_BYTES = 64 * 2**20  # below this a scan takes well under a second: no bar


@contextmanager
def byte_progress(label: str, enabled: bool = True) -> Iterator[Callable[[int, int, str], None] | None]:
    """``with byte_progress("stats") as progress: core(..., progress=progress)``: a transient
    rich bar on stderr once the total is known to exceed ``MIN_BYTES`` and stderr is a
    terminal; ``None`` (no callback) otherwise."""
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

    bar = Progress(TextColumn(label), BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn(),
                   TextColumn("{task.fields[key]}", markup=False), console=Console(stderr=True), transient=True)
    task = None

    def update(done: int, total: int, key: str) -> None:
        nonlocal task
        if total < MIN_BYTES:
            return
        if task is None:
            bar.start()
            task = bar.add_task(label, total=total, key="")
        bar.update(task, completed=done, key=printable(key)[-60:])  # a key from the file: no markup, no ESC

    try:
        yield update
    finally:
        if task is not None:
            bar.stop()
