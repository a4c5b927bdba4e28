"""Fine-tune view: freeze choices, param groups, as code (``ui/finetune_panel.py``)."""
from __future__ import annotations

from typing import Any

from ckptlab.ui import finetune_panel


def show(alignment: Any, ctx: Any) -> None:
    finetune_panel.show(alignment, ctx.target)       # scrolls with the page
