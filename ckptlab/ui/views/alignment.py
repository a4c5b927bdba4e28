"""Alignment view: the table on the left, the editors that change it on the right (rules,
explicit mappings, the recipe), so an edit and its effect are on one screen.

To add an editor tab, add one ``(label, draw)`` line to ``EDITORS``; ``draw(ctx)`` runs
before the alignment is computed, so its edits show in this run.
"""
from __future__ import annotations

from typing import Any

import streamlit as st

from ckptlab.ui import conversions, rules, table

# (tab label, draw(ctx) before the alignment)
EDITORS: list[tuple[str, Any]] = [
    ("Rules", lambda ctx: rules.rules_editor()),
    ("Mappings", lambda ctx: rules.map_editor()),
    ("Conversions", lambda ctx: conversions.edit(st.container(), ctx.source, ctx.target)),
]
RECIPE_TAB = "Recipe"


def prepare(ctx: Any) -> None:
    with ctx.body:
        left, right = st.columns([3, 2], gap="medium")
    ctx.slots["table"] = left
    with right:
        tabs = st.tabs([label for label, _ in EDITORS] + [RECIPE_TAB])
        for (label, draw), tab in zip(EDITORS, tabs):
            with tab:
                draw(ctx)
        with tabs[-1]:
            rules.recipe_loader()
            ctx.slots["recipe"] = st.container()


def show(alignment: Any, ctx: Any) -> None:
    with ctx.slots["table"]:
        table.show(alignment)
    with ctx.slots["recipe"]:
        rules.recipe_panel(alignment)
        conversions.invert(st.container(), alignment)
