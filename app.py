"""ckptlab web app (``streamlit run app.py``): page config and the panels, top to bottom.

No logic here: each panel lives in ``ckptlab/ui/`` and every decision in the core.
"""
import streamlit as st

st.set_page_config(page_title="ckptlab", page_icon="🧪", layout="wide")

from ckptlab.ui import (  # noqa: E402 - set_page_config must come first
    charts, conversions, downloads, finetune_panel, fixes, inputs, rules, state, suggestions, summary, table,
    verify_panel,
)

pair, source, target = inputs.sidebar()
summary.intro(pair, st.session_state.get("source_mode") == inputs.SAMPLE)

if source.ckpt is None or target.ckpt is None:
    st.info("Choose a source and a target in the sidebar (the error, if any, is shown there).")
    st.stop()

state.start_pair((source.identity, target.identity))
top, rules_slot, convert_slot, bottom = st.container(), st.container(), st.container(), st.container()
rules.edit(rules_slot)                        # first, so an edit shows in this run's table
conversions.edit(convert_slot, source, target)
recipe_panel = convert_slot.container()       # the recipe as YAML and its inverse, below both editors
alignment = state.guarded(top, lambda: state.alignment(source.ckpt, target.ckpt, st.session_state.get("auto", "none")))
if alignment is None:
    st.stop()

with top:
    state.panel(summary.counts, alignment)
    state.panel(suggestions.show, alignment)
    charts.take_click()
    frame = state.panel(table.frame_of, alignment)
    if frame is not None:
        state.panel(table.show, alignment, frame)
with bottom:
    state.panel(rules.effective, recipe_panel, alignment)
    state.panel(conversions.invert, recipe_panel, alignment)
    state.panel(fixes.show, alignment)
    state.panel(charts.show, alignment)
    state.panel(verify_panel.show, alignment, source, target)
    state.panel(finetune_panel.show, alignment, target)
    state.panel(downloads.show, alignment)
