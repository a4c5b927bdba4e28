"""The page's layout rules (CSS Streamlit has no setting for) and the compact layout for
projectors.

- Views scroll with the page: no view sits in a fixed-height box of its own.
- The Alignment view's table and editors sit side by side only on a wide screen; below
  ``SIDE_BY_SIDE_PX`` of window width they stack (a media query: the server does not know
  the window's width), so at 1280x720 the table has the page's width and shows status and
  reason without a sideways scroll.
- The compact layout (a toggle, for a projector or a shared screen): tighter spacing,
  smaller figures, no explanations under the title, the table's shape and dtype columns
  left out and the editors always below the table.
"""
from __future__ import annotations

from typing import Any

import streamlit as st

from ckptlab.ui import kept

COMPACT = "compact_layout"
SPLIT, STACKED = "alignment_split", "alignment_stacked"     # the Alignment view's container keys
SIDE_BY_SIDE_PX = 1800

_STACK = ("{ flex-wrap: wrap; }"
          " .st-key-%(key)s > div > [data-testid='stHorizontalBlock'] > [data-testid='stColumn']"
          " { width: 100%% !important; flex: 1 1 100%% !important; min-width: 100%% !important; }")
CSS = ("<style>"
       ".block-container {padding-top: 2.2rem; padding-bottom: 1rem;}"
       "@media (max-width: 1400px) {.block-container {padding-left: 1.5rem; padding-right: 1.5rem;}}"
       "[data-testid='stMetric'] [data-testid='stMetricValue'] {font-size: 1.6rem; line-height: 1.9rem;}"
       f"@media (max-width: {SIDE_BY_SIDE_PX - 1}px) {{"
       f" .st-key-{SPLIT} > div > [data-testid='stHorizontalBlock'] " + _STACK % {"key": SPLIT} + "}"
       f" .st-key-{STACKED} > div > [data-testid='stHorizontalBlock'] " + _STACK % {"key": STACKED} +
       "</style>")
COMPACT_CSS = ("<style>"
               ".block-container {padding-top: 1.2rem; padding-left: 1.2rem; padding-right: 1.2rem;}"
               "[data-testid='stMetric'] [data-testid='stMetricValue'] {font-size: 1.2rem; line-height: 1.4rem;}"
               "[data-testid='stMetric'] label p {font-size: .8rem;}"
               "[data-testid='stVerticalBlock'] {gap: .5rem;}"
               "</style>")


def compact_toggle(where: Any) -> bool:
    """The compact-layout toggle; draws the page's CSS (and the compact rules when on)."""
    on = kept.toggle(where, "Compact layout (projector)", COMPACT, False,
                     help="Tighter spacing, the table without its shape and dtype columns, the editors below it.")
    st.html(CSS + (COMPACT_CSS if on else ""))
    return on
