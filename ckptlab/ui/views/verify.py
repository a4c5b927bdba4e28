"""Verify view: the warm-start report, "Prove" (both models run: outputs equal, or the first
diverging module), and with a model definition the strict-load report, the
function-preservation check and the speed/memory comparison (``ui/verify_panel.py``)."""
from __future__ import annotations

from typing import Any

from ckptlab.ui import verify_panel


def show(alignment: Any, ctx: Any) -> None:
    verify_panel.show(alignment, ctx.source, ctx.target)        # scrolls with the page
