"""Alignment view: the table on the left, the editors that change it on the right (rules,
explicit mappings, the recipe), so an edit and its effect are on one screen. On a screen
narrower than ``layout.SIDE_BY_SIDE_PX`` (1800 px: 1280x720, 1440, 1600, a projector) or in the compact layout
the editors go below the table, which then has the width to show status and reason.

To add an editor tab, add one ``(label, draw)`` line to ``EDITORS``; ``draw(ctx)`` runs
before the alignment is computed, so its edits show in this run.
"""
from __future__ import annotations

from typing import Any

import streamlit as st

from ckptlab.ui import conversions, kept, layout, rules, table

# (tab label, draw(ctx) before the alignment)
EDITORS: list[tuple[str, Any]] = [
    ("Rules", lambda ctx: rules.rules_editor()),
    ("Mappings", lambda ctx: rules.map_editor()),
    ("Conversions", lambda ctx: conversions.edit(st.container(), ctx.source, ctx.target)),
]
RECIPE_TAB = "Recipe"


EDITOR = "editor_part"


def prepare(ctx: Any) -> None:
    with ctx.body:
        split = st.container(key=layout.STACKED if ctx.compact else layout.SPLIT)
        left, right = split.columns([3, 2], gap="medium")
    ctx.slots["table"] = left
    with right:
        # one editor at a time (a segmented control: tabs would draw every grid on each run)
        labels = [label for label, _ in EDITORS] + [RECIPE_TAB]
        chosen = kept.segmented(st, "Editor", labels, EDITOR, labels[0], label_visibility="collapsed")
        if chosen == RECIPE_TAB:
            rules.recipe_loader()
            ctx.slots["recipe"] = st.container()
        else:
            dict(EDITORS)[chosen](ctx)


def reset() -> None:
    """A new pair: no module filter from the last pair's treemap, an empty recipe uploader."""
    table.clear_module()
    rules.clear_upload()


def show(alignment: Any, ctx: Any) -> None:
    with ctx.slots["table"]:
        table.show(alignment, ctx.compact)
    if "recipe" in ctx.slots:
        with ctx.slots["recipe"]:
            rules.recipe_panel(alignment)
            conversions.invert(st.container(), alignment)
