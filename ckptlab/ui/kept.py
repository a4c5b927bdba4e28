"""Widgets whose value outlives the runs that do not draw them: one mechanism, Streamlit's own.

Streamlit drops a widget's state at the end of a run that did not draw it (another view
was open, or an input was being switched and the page stopped early). Since 1.67 a widget
drawn with ``persist_state="session"`` keeps its value while it is not drawn, and when it
is drawn again Streamlit tells the browser to show that value: what is shown is always
what is applied. Every sticky widget of the page goes through here, with its key as the
only name of its value (``value(key)``), and its default put into its state on first use
(so the widget is created *without* ``value=``/``default=``: the state is its value).

Data editors (the rules and mappings grids) are not widgets Streamlit can persist: their
pending edits belong to the frame they were drawn from, so ``editor_key`` gives them a new
key after a run that did not draw them (they start again from the recipe, which holds
every edit already applied).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ckptlab.ui import state

PERSIST = "session"           # the ``persist_state`` of every sticky widget
STICKY: dict[str, Any] = {"persist_state": PERSIST}
_RUN = state.Slot("_kept_run", 0)
_DRAWN = state.Slot("_kept_editor_drawn", None, factory=dict)


def new_run() -> None:
    """Count full runs of the page (fragment reruns do not call this)."""
    _RUN.set(_RUN.get() + 1)


def remembered(key: str, default: Any) -> str:
    """``key`` for a sticky widget with a default (a learning rate, a model definition): the
    default goes into its state on first use; draw the widget with ``**kept.STICKY`` and
    without ``value=``."""
    state.widget_default(key, default)
    return key


def value(key: str, default: Any = None) -> Any:
    """The widget's last value (also while it is not drawn)."""
    return state.widget_value(key, default)


def renew(key: str, chosen: Any) -> None:
    """Set a sticky widget's value from code (e.g. a chart click), before it is drawn in
    this run: the browser then shows it."""
    state.set_widget(key, chosen)


def multiselect(where: Any, label: str, options: Sequence[str], key: str, default: list[str], **kwargs: Any) -> list:
    _fit(key, options, list(default), many=True)
    return list(where.multiselect(label, list(options), key=key, **STICKY, **kwargs))


def pills(where: Any, label: str, options: Sequence[str], key: str, default: list[str], **kwargs: Any) -> list:
    """Several choices, every option visible at once (a multiselect hides chips past its width)."""
    _fit(key, options, list(default), many=True)
    return list(where.pills(label, list(options), selection_mode="multi", key=key, **STICKY, **kwargs) or [])


def text_input(where: Any, label: str, key: str, default: str = "", **kwargs: Any) -> str:
    remembered(key, default)
    return where.text_input(label, key=key, **STICKY, **kwargs) or ""


def toggle(where: Any, label: str, key: str, default: bool = False, **kwargs: Any) -> bool:
    remembered(key, default)
    return bool(where.toggle(label, key=key, **STICKY, **kwargs))


def selectbox(where: Any, label: str, options: Sequence[Any], key: str, **kwargs: Any) -> Any:
    options = list(options)
    _fit(key, options, options[0] if options else None)
    return where.selectbox(label, options, key=key, **STICKY, **kwargs)


def segmented(where: Any, label: str, options: Sequence[str], key: str, default: str, **kwargs: Any) -> str:
    """A segmented control that always has one choice (``required``: a second click on the
    chosen option does not clear it)."""
    _fit(key, options, default)
    return where.segmented_control(label, list(options), key=key, required=True, **STICKY, **kwargs) or default


def _fit(key: str, options: Sequence[Any], default: Any, many: bool = False) -> None:
    """Put ``default`` into the widget's state on first use, and drop a kept value the
    options no longer hold (another pair has other keys): Streamlit would refuse it."""
    current = state.widget_value(key, None)
    if current is None:
        state.widget_default(key, default)
    elif many and any(o not in options for o in current):
        state.set_widget(key, [o for o in current if o in options])
    elif not many and current not in options:
        state.set_widget(key, default)


def editor_key(base: str) -> str:
    """A data editor's key in this run: the same while it is drawn run after run, a new one
    after a run that did not draw it (its pending edits went with that run)."""
    run, drawn = _RUN.get(), _DRAWN.get()
    last, generation = drawn.get(base, (None, 0))
    if last is not None and last < run - 1:
        generation += 1
    drawn[base] = (run, generation)
    return f"{base}_{generation}" if generation else base


widget_key = editor_key      # the name the grids (ui/rules.py) call it by
