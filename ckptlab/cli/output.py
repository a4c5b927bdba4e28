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
