"""The side-by-side alignment table: filterable by status, searchable by key, and by the
module clicked in the treemap. Built as one plain DataFrame (no Styler: it is slow at
10,000+ rows); the status shows as a coloured label (``icons.pill_column``).

Drawn in a fragment, so a filter or a search reruns only the table. The filter and the
search are kept in session state of their own: a widget that is not drawn in a run (the
table is not drawn while an input is being switched, or in another view) loses its state,
and the next run would show its default while applying what the browser still held.
"""
from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd
import streamlit as st

from ckptlab.align import module_tree as modtree
from ckptlab.ui import icons, kept, state
from ckptlab.ui.icons import STATUS_ORDER

COLUMNS = ("target", "target_shape", "target_dtype", "source", "source_shape", "source_dtype", "status", "reason")
MODULE_FILTER = "module_filter"
STATUS_FILTER, SEARCH = "status_filter", "key_search"
LAZY_ROWS = 2000         # above this, rows are fetched as the visitor scrolls
HEIGHT = 470             # px: the table and the editors beside it fit one screen


@functools.lru_cache(maxsize=4096)
def _shape_text(shape: tuple) -> str:
    return str(tuple(int(n) for n in shape))


def _shape(shape: Sequence[int] | None) -> str:
    """``(16, 16)``; the text of each distinct shape made once (a big model repeats a few)."""
    if shape is None:
        return ""
    return _shape_text(shape if isinstance(shape, tuple) else tuple(shape))


def _dtype(dtype: Any) -> str:
    return "" if dtype is None else str(dtype).removeprefix("torch.")


def rows_frame(rows: Iterable[Any]) -> pd.DataFrame:
    """One line per alignment row; a conflict lists all its candidate sources."""
    records = []
    for r in rows:
        source = r.source if r.source is not None else ", ".join(getattr(r, "sources", ()) or ())
        records.append((r.target or "", _shape(r.target_shape), _dtype(r.target_dtype), source or "",
                        _shape(r.source_shape), _dtype(r.source_dtype), r.status, r.reason or ""))
    return pd.DataFrame.from_records(records, columns=list(COLUMNS))


def frame_of(alignment: Any) -> pd.DataFrame:
    """``rows_frame`` once per alignment (reruns that only filter reuse it)."""
    return state.derived("frame", lambda: rows_frame(alignment.rows))


def lowered_of(alignment: Any) -> tuple[pd.Series, pd.Series]:
    """Lower-cased target and source keys, once per alignment: a search keystroke then
    only scans them."""
    frame = frame_of(alignment)
    return state.derived("lowered", lambda: (frame["target"].str.lower(), frame["source"].str.lower()))


def _under(keys: pd.Series, prefix: str) -> pd.Series:
    return (keys == prefix) | keys.str.startswith(prefix + ".")


def filter_frame(frame: pd.DataFrame, statuses: Iterable[str], search: str = "",
                 module: tuple[str, str] | None = None,
                 lowered: tuple[pd.Series, pd.Series] | None = None) -> pd.DataFrame:
    """Rows whose status is chosen, whose target or source key contains ``search``
    (case-insensitive), and which lie inside the clicked treemap ``module`` on either
    side (the target key or the source key is in it)."""
    mask = frame["status"].isin(list(statuses))
    if search.strip():
        needle = search.strip().lower()
        target, source = lowered or (frame["target"].str.lower(), frame["source"].str.lower())
        mask &= target.str.contains(needle, regex=False) | source.str.contains(needle, regex=False)
    if module is not None:
        root, prefix = module
        if root == modtree.UNUSED_ROOT and not prefix:
            mask &= frame["status"] == "unused"
        elif prefix:
            mask &= _under(frame["target"], prefix) | _under(frame["source"], prefix)
    return frame[mask]


def module_label(module: tuple[str, str]) -> str:
    return module[1] or module[0]


def clear_module() -> None:
    st.session_state[MODULE_FILTER] = None


@st.fragment
def show(alignment: Any) -> None:
    frame = frame_of(alignment)
    left, right = st.columns([3, 2])
    statuses = kept.multiselect(left, "Show statuses", STATUS_ORDER, STATUS_FILTER, default=list(STATUS_ORDER),
                                placeholder="no status chosen: no rows")
    search = kept.text_input(right, "Search keys", SEARCH, placeholder="e.g. conv1 or attn")
    module = st.session_state.get(MODULE_FILTER)
    if module is not None:
        a, b = st.columns([3, 1], vertical_alignment="center")
        a.text(f"Showing only module {module_label(module)} (clicked in the treemap), on either side.")
        b.button("Show all modules", key="clear_module", on_click=clear_module, width="stretch")
    shown = filter_frame(frame, statuses, search, module, lowered_of(alignment))
    shown = shown.assign(status=shown["status"].map(lambda s: [s]))     # one coloured label per row
    st.caption(f"{len(shown):,} of {len(frame):,} rows")
    st.dataframe(
        shown, hide_index=True, key="alignment_table", height=HEIGHT,
        lazy=len(shown) > LAZY_ROWS,         # big tables: only the rows on screen go to the browser
        column_config={
            "target": st.column_config.TextColumn("target key", width="medium"),
            "target_shape": st.column_config.TextColumn("shape", width="small"),
            "target_dtype": st.column_config.TextColumn("dtype", width="small"),
            "source": st.column_config.TextColumn("source key", width="medium"),
            "source_shape": st.column_config.TextColumn("shape ", width="small"),
            "source_dtype": st.column_config.TextColumn("dtype ", width="small"),
            "status": icons.pill_column(),
            "reason": st.column_config.TextColumn("reason", width="large"),
        },
    )
