"""Suggestions with their reasons and an Accept button (accepting joins the recipe).

Every kind of fragment the core emits (rules, map, adapt, convert, container, dtype,
keep_target) is drawn by the same line: a headline, the first entries of a fragment of
several, one Accept. Each line is drawn on its own: one that cannot be read shows its error
beside it and the others still draw.
"""
from __future__ import annotations

import json
from typing import Any

import streamlit as st

from ckptlab.recipe import edits as editing
from ckptlab.ui import icons, state, text

CONFIDENCE_BADGE = {"high": ":green-badge[high]", "medium": ":orange-badge[medium]", "low": ":gray-badge[low]"}
_ERROR = state.Slot("_suggestion_error")
SCROLL_AFTER = 3          # more suggestions than this scroll inside a box (the views stay in reach)
ENTRIES_SHOWN = 3         # a fragment of more entries lists these, then "+N more"


def _accept(fid: str, fragment: dict) -> None:
    """Button callback: runs before the rerun, so the table below is already updated."""
    try:
        state.set_recipe(editing.accept_suggestion(state.recipe(), fragment))
        _ERROR.set(None)
    except Exception as exc:  # noqa: BLE001 - shown beside that suggestion
        _ERROR.set((fid, text.one_line(exc)))


def show(alignment: Any) -> None:
    pending = [s for s in alignment.suggestions if not s.applied]
    applied = [s for s in alignment.suggestions if s.applied]
    if not alignment.suggestions:
        st.caption("No suggestions: nothing obvious would feed more target keys.")
        return
    st.markdown(f"**Suggestions** ({len(pending)} to review" + (f", {len(applied)} applied" if applied else "") + ")")
    box = st.container(height=46 * SCROLL_AFTER + 10, border=False) if len(alignment.suggestions) > SCROLL_AFTER \
        else st.container()
    seen: set[str] = set()
    with box:
        for number, suggestion in enumerate(pending + applied, start=1):
            fid = _fid(suggestion.rule)
            if fid in seen:          # the same fragment twice: one line (one widget key) is enough
                continue
            seen.add(fid)
            _line(number, fid, suggestion)


def explains(count: int) -> str:
    return f"explains {text.plural(count, 'key')}"


def _fid(fragment: Any) -> str:
    try:
        return editing.fragment_id(fragment)
    except Exception:  # noqa: BLE001 - a fragment that is not even JSON-like still gets a line
        return f"bad_{id(fragment)}"


def _line(number: int, fid: str, suggestion: Any) -> None:
    """One suggestion; when its fragment cannot be read, the error stands in its place."""
    try:
        headline = editing.describe_fragment(suggestion.rule)
        entries = editing.fragment_entries(suggestion.rule)
    except Exception as exc:  # noqa: BLE001 - only this line fails
        raw = text.one_line(json.dumps(suggestion.rule, default=str), 160)
        st.error(text.md(f"suggestion {number} ({raw}): {state.error_message(exc)}"), icon=icons.ERROR)
        return
    words, badge, action = st.columns([8, 0.8, 1.2], vertical_alignment="center")
    words.markdown(f"**{text.md(headline)}**: {text.md(suggestion.reason)} _({explains(suggestion.keys)})_")
    if len(entries) > 1:
        shown = entries[:ENTRIES_SHOWN]
        more = len(entries) - len(shown)
        words.caption("  \n".join(text.md(line) for line in shown) + (f"  \n+{more} more" if more else ""))
    badge.markdown(CONFIDENCE_BADGE.get(suggestion.confidence, text.md(suggestion.confidence)))
    if suggestion.applied:
        action.caption("applied")
    else:
        action.button("Accept", key=f"accept_{fid}", on_click=_accept, args=(fid, dict(suggestion.rule)),
                      type="primary" if suggestion.confidence == "high" else "secondary", width="stretch")
    error = _ERROR.get()
    if error and error[0] == fid:
        st.error(text.md(error[1]), icon=icons.ERROR)
