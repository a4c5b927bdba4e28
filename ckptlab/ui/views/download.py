"""Download view: the merged checkpoint (built on disk, served from disk, or written to a
server folder), the recipe, the report and a standalone PyTorch snippet."""
from __future__ import annotations

from typing import Any

from ckptlab.ui import downloads


def show(alignment: Any, ctx: Any) -> None:
    downloads.show(alignment)
