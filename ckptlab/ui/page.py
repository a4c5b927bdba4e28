"""The whole page, top to bottom: the sidebar's inputs; then the summary counts, the
warnings and the suggestions; then one view at a time (``ckptlab/ui/views``).

No logic here: each panel lives in ``ckptlab/ui/`` and every decision in the core.
"""
from __future__ import annotations

from pathlib import Path

import streamlit as st

ICON = Path(__file__).with_name("icon.png")     # served by this server: no font host asked, works offline


def main() -> None:
    st.set_page_config(page_title="ckptlab", page_icon=str(ICON), layout="wide")
    from ckptlab.ui import (
        inputs,
        kept,
        layout,
        lifecycle,
        share,
        state,
        suggestions,
        summary,
        views,
    )

    if lifecycle.track():
        st.info(f"This page was idle for {lifecycle.seconds(lifecycle.IDLE_ENV, lifecycle.IDLE_S) / 60:g} minutes: "
                "its uploads, built files and settings were removed from the server. Start again below.")
    kept.new_run()
    shared_view = share.restore()       # a shared link: its inputs, recipe and view, once per visit
    if shared_view:
        views.open_view(shared_view)
    pair, source, target = inputs.sidebar()
    compact = layout.compact_toggle(st.sidebar)
    summary.intro(pair, inputs.using_sample(), compact)
    if source.ckpt is None or target.ckpt is None:
        st.info("Choose a source and a target in the sidebar (the error, if any, is shown there).")
        st.stop()

    if state.start_pair((source.identity, target.identity)):
        views.reset()
    share.apply_recipe()
    header, picker, body = st.container(), st.container(), st.container(key="view_body")
    ctx = views.Context(source, target, pair, body=body, compact=compact)
    pick_col, share_col = picker.columns([6, 1], vertical_alignment="center")
    view = ctx.view = views.choose(pick_col)
    views.prepare(view, ctx)            # the Alignment view's editors: before the alignment
    alignment = state.guarded(header, lambda: state.alignment(source.ckpt, target.ckpt, inputs.auto()))
    if alignment is None:
        st.stop()
    with header:
        state.panel(summary.counts, alignment)
        state.panel(summary.warnings, alignment)
        state.panel(suggestions.show, alignment)
    with share_col:
        share.offer(ctx, view)
    views.show(view, alignment, ctx)
