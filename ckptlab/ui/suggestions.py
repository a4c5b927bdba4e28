"""Suggestions with their reasons and an Accept button (accepting joins the recipe)."""
from __future__ import annotations

from typing import Any

import streamlit as st

from ckptlab.recipe import edits as editing
from ckptlab.ui import icons, state, text

CONFIDENCE_BADGE = {"high": ":green-badge[high]", "medium": ":orange-badge[medium]", "low": ":gray-badge[low]"}
_ERROR = state.Slot("_suggestion_error")
SCROLL_AFTER = 3          # more suggestions than this scroll inside a box (the views stay in reach)


def _accept(fragment: dict) -> None:
    """Button callback: runs before the rerun, so the table below is already updated."""
    try:
        state.set_recipe(editing.accept_suggestion(state.recipe(), fragment))
        _ERROR.set(None)
    except Exception as exc:  # noqa: BLE001 - shown beside the suggestions
        _ERROR.set(text.one_line(exc))


def show(alignment: Any) -> None:
    if _ERROR.get():
        st.error(text.md(_ERROR.get()), icon=icons.ERROR)
    pending = [s for s in alignment.suggestions if not s.applied]
    applied = [s for s in alignment.suggestions if s.applied]
    if not alignment.suggestions:
        st.caption("No suggestions: nothing obvious would feed more target keys.")
        return
    st.markdown(f"**Suggestions** ({len(pending)} to review" + (f", {len(applied)} applied" if applied else "") + ")")
    box = st.container(height=46 * SCROLL_AFTER + 10, border=False) if len(alignment.suggestions) > SCROLL_AFTER \
        else st.container()
    with box:
        for suggestion in pending + applied:
            _line(suggestion)


def explains(count: int) -> str:
    return f"explains {text.plural(count, 'key')}"


def _line(suggestion: Any) -> None:
    fid = editing.fragment_id(suggestion.rule)
    words, badge, action = st.columns([8, 0.8, 1.2], vertical_alignment="center")
    words.markdown(f"**{text.md(editing.describe_fragment(suggestion.rule))}**: {text.md(suggestion.reason)} "
                   f"_({explains(suggestion.keys)})_")
    badge.markdown(CONFIDENCE_BADGE.get(suggestion.confidence, text.md(suggestion.confidence)))
    if suggestion.applied:
        action.caption("applied")
    else:
        action.button("Accept", key=f"accept_{fid}", on_click=_accept, args=(dict(suggestion.rule),),
                      type="primary" if suggestion.confidence == "high" else "secondary", width="stretch")
