"""The whole page, top to bottom: the sidebar's inputs; then the summary counts, the
warnings and the suggestions; then one view at a time (``ckptlab/ui/views``).

No logic here: each panel lives in ``ckptlab/ui/`` and every decision in the core.
"""
from __future__ import annotations

import streamlit as st


def main() -> None:
    st.set_page_config(page_title="ckptlab", page_icon=":material/science:", layout="wide")
    from ckptlab.ui import inputs, kept, lifecycle, state, suggestions, summary, views

    if lifecycle.track():
        st.info(f"This page was idle for {lifecycle.seconds(lifecycle.IDLE_ENV, lifecycle.IDLE_S) / 60:g} minutes: "
                "its uploads, built files and settings were removed from the server. Start again below.")
    kept.new_run()
    pair, source, target = inputs.sidebar()
    summary.intro(pair, st.session_state.get("source_mode") == inputs.SAMPLE)
    if source.ckpt is None or target.ckpt is None:
        st.info("Choose a source and a target in the sidebar (the error, if any, is shown there).")
        st.stop()

    state.start_pair((source.identity, target.identity))
    header, picker, body = st.container(), st.container(), st.container(key="view_body")
    ctx = views.Context(source, target, pair, body=body)
    view = views.choose(picker)
    views.prepare(view, ctx)            # the Alignment view's editors: before the alignment
    alignment = state.guarded(header, lambda: state.alignment(source.ckpt, target.ckpt,
                                                               st.session_state.get("auto", inputs.AUTO_DEFAULT)))
    if alignment is None:
        st.stop()
    with header:
        state.panel(summary.counts, alignment)
        state.panel(summary.warnings, alignment)
        state.panel(suggestions.show, alignment)
    views.show(view, alignment, ctx)
