"""Verify view: the warm-start report, "Prove" (both models run: outputs equal, or the first
diverging module), and with a model definition the strict-load report, the
function-preservation check and the speed/memory comparison (``ui/verify_panel.py``)."""
from __future__ import annotations

from typing import Any

import streamlit as st

from ckptlab.ui import verify_panel


SCREEN = 880           # px: the view below its picker fits a 1000 px high window


def show(alignment: Any, ctx: Any) -> None:
    with st.container(height=SCREEN, border=False):      # one screen; the panel scrolls inside
        verify_panel.show(alignment, ctx.source, ctx.target)
