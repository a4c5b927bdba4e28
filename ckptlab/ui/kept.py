"""Widgets whose value outlives the runs that do not draw them.

Streamlit drops a widget's state at the end of a run that did not draw it (another view
was open, or an input was being switched and the page stopped early), while the browser
may still hold and send the old value: drawn again, the widget could show one thing and
apply another. So these widgets keep their value under a key of their own, and a widget
that missed a run comes back under a *new* widget key (a fresh widget, no stale state
anywhere) whose default is the kept value: what is shown is always what is applied.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import streamlit as st

_RUN = "_kept_run"


def new_run() -> None:
    """Count full runs of the page (fragment reruns do not call this)."""
    st.session_state[_RUN] = st.session_state.get(_RUN, 0) + 1
    persist()


# Widgets of views (drawn only while their view is open) whose value must survive another
# view being open: re-setting their state each run stops Streamlit's clean-up. Only widgets
# created without an explicit default may be listed (else Streamlit warns on the page).
PERSISTENT = ("ft_freeze_loaded", "ft_freeze", "ft_as_new", "out_format", "out_where", "out_keep_extras",
              "out_nest")


_REMEMBERED = "_kept_remembered"


def persist(keys: Sequence[str] = PERSISTENT) -> None:
    for key in (*keys, *st.session_state.get(_REMEMBERED, ())):
        if key in st.session_state:
            st.session_state[key] = st.session_state[key]


def remembered(key: str, default: Any) -> str:
    """``key`` for a view's widget with a default (a learning rate, a model definition): the
    default goes into its state on first use and the state is kept like ``PERSISTENT``'s, so
    the widget must be created *without* ``value=`` (the state is its value)."""
    st.session_state.setdefault(key, default)
    listed = st.session_state.setdefault(_REMEMBERED, set())
    listed.add(key)
    return key


def widget_key(base: str) -> str:
    """The widget key for ``base`` in this run: the same while it is drawn run after run,
    a new one after a run that did not draw it."""
    run = st.session_state.get(_RUN, 0)
    drawn = st.session_state.get(f"_kept_drawn_{base}")
    generation = st.session_state.get(f"_kept_gen_{base}", 0)
    if drawn is not None and drawn < run - 1:
        generation += 1
        st.session_state[f"_kept_gen_{base}"] = generation
    st.session_state[f"_kept_drawn_{base}"] = run
    return f"{base}_{generation}" if generation else base


def renew(base: str, chosen: Any) -> None:
    """Set the kept value from code (e.g. a chart click) and draw the widget afresh under a
    new key, so it shows that value (a widget's own state would win over a new default)."""
    keep(base, chosen)
    st.session_state[f"_kept_gen_{base}"] = st.session_state.get(f"_kept_gen_{base}", 0) + 1


def value(base: str, default: Any = None) -> Any:
    """The widget's last value (also while it is not drawn)."""
    return st.session_state.get(f"_kept_{base}", default)


def keep(base: str, chosen: Any) -> Any:
    st.session_state[f"_kept_{base}"] = chosen
    return chosen


def multiselect(where: Any, label: str, options: Sequence[str], base: str, default: list[str], **kwargs: Any) -> list:
    chosen = [o for o in value(base, list(default)) if o in options]
    return keep(base, list(where.multiselect(label, options, default=chosen, key=widget_key(base), **kwargs)))


def text_input(where: Any, label: str, base: str, default: str = "", **kwargs: Any) -> str:
    return keep(base, where.text_input(label, value=value(base, default), key=widget_key(base), **kwargs))


def selectbox(where: Any, label: str, options: Sequence[Any], base: str, **kwargs: Any) -> Any:
    options = list(options)
    last = value(base)
    index = options.index(last) if last in options else 0
    return keep(base, where.selectbox(label, options, index=index, key=widget_key(base), **kwargs))


def segmented(where: Any, label: str, options: Sequence[str], base: str, default: str, **kwargs: Any) -> str:
    """A segmented control that always has one choice (a second click would clear it)."""
    last = value(base, default)
    chosen = where.segmented_control(label, list(options), default=last if last in options else default,
                                     key=widget_key(base), **kwargs)
    return keep(base, chosen or (last if last in options else default))
