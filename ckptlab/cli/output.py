"""Shared output helpers for the subcommands: JSON on stdout, warnings on stderr."""
from __future__ import annotations

import json
import sys
from typing import Any


def print_json(obj: Any) -> None:
    """Print exactly one JSON object on stdout."""
    json.dump(obj, sys.stdout, ensure_ascii=False)
    sys.stdout.write("\n")


def warn(message: str) -> None:
    print(f"ckptlab: warning: {message}", file=sys.stderr)


def human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def print_table(table: Any, *footer: str) -> None:
    """Print a rich table (and footer lines) on stdout without breaking keys mid-name.

    Piped or redirected output has no width to respect (rich assumes 80 columns), so it
    gets the table's natural width: one line per row, whole keys, fit for grep. A terminal
    keeps its own width and rich folds the longest cells.
    """
    console = _console()
    if not console.is_terminal:
        console.width = 100_000  # measure against no limit, then size the console to fit
        console.width = max(console.measure(table).maximum, 80)
    console.print(table)
    for line in footer:
        console.print(line, soft_wrap=True)


def _console():
    """A rich Console whose closed pipe is a ``BrokenPipeError`` for ``main`` to end quietly
    (rich's own handling exits with status 1)."""
    from rich.console import Console

    class QuietPipeConsole(Console):
        def on_broken_pipe(self) -> None:
            raise BrokenPipeError

    return QuietPipeConsole(highlight=False, soft_wrap=False)
