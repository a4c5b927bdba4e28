"""Suggestions with their reasons and an Accept button (accepting joins the recipe)."""
from __future__ import annotations

from typing import Any

import streamlit as st

from ckptlab import editing
from ckptlab.ui import icons, state

CONFIDENCE_BADGE = {"high": ":green-badge[high]", "medium": ":orange-badge[medium]", "low": ":gray-badge[low]"}
_ERROR = "_suggestion_error"


def _accept(fragment: dict) -> None:
    """Button callback: runs before the rerun, so the table below is already updated."""
    try:
        state.set_recipe(editing.accept_suggestion(state.recipe(), fragment))
        st.session_state[_ERROR] = None
    except Exception as exc:  # noqa: BLE001 - shown beside the suggestions
        st.session_state[_ERROR] = str(exc).splitlines()[0]


def show(alignment: Any) -> None:
    st.subheader("Suggestions")
    if st.session_state.get(_ERROR):
        st.error(st.session_state[_ERROR], icon=icons.ERROR)
    if not alignment.suggestions:
        st.caption("No suggestions: nothing obvious would feed more target keys.")
        return
    for suggestion in alignment.suggestions:
        fid = editing.fragment_id(suggestion.rule)
        text, badge, action = st.columns([7, 1, 1.3], vertical_alignment="center")
        text.markdown(f"**{editing.describe_fragment(suggestion.rule)}**: {suggestion.reason} "
                      f"_(explains {suggestion.keys} keys)_")
        badge.markdown(CONFIDENCE_BADGE.get(suggestion.confidence, suggestion.confidence))
        if suggestion.applied:
            action.caption("applied")
        else:
            action.button("Accept", key=f"accept_{fid}", on_click=_accept, args=(dict(suggestion.rule),),
                          type="primary" if suggestion.confidence == "high" else "secondary")
