"""The main area's views, one module each, chosen with a segmented control: the registry.

A view module has ``show(alignment, ctx)``; optionally ``prepare(ctx)`` (run before the
alignment is computed, so an edit made in its editor shows in this run's table) and
``reset()`` (forget what it keeps for the session when the visitor picks another pair).
Only the chosen view is drawn (a segmented control, not tabs: tabs would draw all six on
every rerun). Adding a view is one module and one line in ``VIEWS``; tests render every
view of the registry.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import streamlit as st

from ckptlab.ui import kept, state
from ckptlab.ui.views import alignment, download, finetune, shape_fixes, values, verify

if TYPE_CHECKING:
    from streamlit.delta_generator import DeltaGenerator

    from ckptlab.ui.inputs import Side
    from ckptlab.ui.samples import SamplePair

VIEW = "view"
ALIGNMENT = "Alignment"
# name -> module with show(alignment, ctx) (and optionally prepare(ctx), reset())
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
    """What a view needs besides the alignment: the two sides (their files' names as the
    visitor knows them, model definitions), the demo pair, the area it draws in, whether
    the page is in its compact (projector) layout, the view's name, and places ``prepare``
    made for ``show``."""

    source: Side
    target: Side
    pair: SamplePair
    body: DeltaGenerator | None = None
    compact: bool = False
    view: str = ALIGNMENT
    slots: dict[str, DeltaGenerator] = field(default_factory=dict)


def choose(where: Any) -> str:
    """The view picker; the choice survives reruns (and input switches)."""
    return kept.segmented(where, "View", list(VIEWS), VIEW, ALIGNMENT, label_visibility="collapsed")


def open_view(name: str) -> None:
    """Open ``name`` from code (a shared link), before the picker is drawn."""
    if name in VIEWS:
        kept.renew(VIEW, name)


def prepare(name: str, ctx: Context) -> None:
    """Draw what must come before the alignment (the editors of the Alignment view)."""
    before = getattr(VIEWS[name], "prepare", None)
    if before is not None:
        state.guarded(ctx.body, lambda: before(ctx), what=f"{name}: ")


def show(name: str, alignment: Any, ctx: Context) -> None:
    with ctx.body:
        state.guarded(st, lambda: VIEWS[name].show(alignment, ctx), what=f"{name}: ")


def reset() -> None:
    """Another pair: every view forgets what it kept for the last one."""
    for module in VIEWS.values():
        hook = getattr(module, "reset", None)
        if hook is not None:
            hook()
