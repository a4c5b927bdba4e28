"""The main area's views, one module each, chosen with a segmented control.

A view is ``show(alignment, ctx)``; the Alignment view also has ``prepare(ctx)``, run
before the alignment is computed, so a rule edit made in its editor shows in this run's
table. Only the chosen view is drawn (a segmented control, not tabs: tabs would draw all
six on every rerun). To add a panel to a view, add one line to that view's module.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import streamlit as st

from ckptlab.ui import kept, state
from ckptlab.ui.views import alignment, download, finetune, shape_fixes, values, verify

VIEW = "view"
ALIGNMENT = "Alignment"
# name -> module with show(alignment, ctx) (and optionally prepare(ctx))
VIEWS: dict[str, Any] = {
    ALIGNMENT: alignment,
    "Shape fixes": shape_fixes,
    "Values & charts": values,
    "Verify": verify,
    "Fine-tune": finetune,
    "Download": download,
}


@dataclass
class Context:
    """What a view needs besides the alignment: the two sides, the demo pair, its area."""

    source: Any
    target: Any
    pair: Any
    body: Any = None
    slots: dict[str, Any] = field(default_factory=dict)


def choose(where: Any) -> str:
    """The view picker; the choice survives reruns (and input switches)."""
    return kept.segmented(where, "View", list(VIEWS), VIEW, ALIGNMENT, label_visibility="collapsed")


def prepare(name: str, ctx: Context) -> None:
    """Draw what must come before the alignment (the editors of the Alignment view)."""
    before = getattr(VIEWS[name], "prepare", None)
    if before is not None:
        state.guarded(ctx.body, lambda: before(ctx), what=f"{name}: ")


def show(name: str, alignment: Any, ctx: Context) -> None:
    with ctx.body:
        state.guarded(st, lambda: VIEWS[name].show(alignment, ctx), what=f"{name}: ")
