"""Download view: the merged checkpoint (built on disk, served from disk, or written to a
server folder), the recipe, the report, a standalone PyTorch script and the hand-over
bundle (recipe + report + script in one zip)."""
from __future__ import annotations

from typing import Any

from ckptlab.ui import downloads


def show(alignment: Any, ctx: Any) -> None:
    downloads.show(alignment, ctx)


def reset() -> None:
    """A new pair: the file built for the last one is stale."""
    downloads.forget_built()
