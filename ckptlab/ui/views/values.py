"""Values & charts view: the treemap of parameters by module and a tensor's histogram
(source beside merged). More panels (statistics and flags, the diff of two checkpoints)
are one ``(label, draw)`` line each in ``PARTS``; a part scrolls with the page."""
from __future__ import annotations

from typing import Any

import streamlit as st

from ckptlab.ui import charts, compare, kept, values

# (label, draw(alignment))
PARTS: list[tuple[str, Any]] = [
    ("Treemap & histogram", charts.show),
    ("Statistics", values.show),
    ("Compare", compare.show),
]
PART = "values_part"


def show(alignment: Any, ctx: Any) -> None:
    labels = [label for label, _ in PARTS]
    chosen = labels[0]
    if len(PARTS) > 1:
        chosen = kept.segmented(st, "Part", labels, PART, labels[0], label_visibility="collapsed")
    dict(PARTS)[chosen](alignment)
