"""Shape fixes view: every mismatched row with op / dim / fill and the resulting shape."""
from __future__ import annotations

from typing import Any

from ckptlab.ui import fixes


def show(alignment: Any, ctx: Any) -> None:
    fixes.show(alignment)
