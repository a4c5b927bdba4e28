"""Fine-tune view: freeze choices, param groups, as code (``ui/finetune_panel.py``)."""
from __future__ import annotations

from typing import Any

import streamlit as st

from ckptlab.ui import finetune_panel


SCREEN = 880           # px: the view below its picker fits a 1000 px high window


def show(alignment: Any, ctx: Any) -> None:
    with st.container(height=SCREEN, border=False):      # one screen; the panel scrolls inside
        finetune_panel.show(alignment, ctx.target)
