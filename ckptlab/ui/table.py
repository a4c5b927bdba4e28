"""The side-by-side alignment table: filterable by status, searchable by key, and by the
module clicked in the treemap. Built as one plain DataFrame (no Styler: it is slow at
10,000+ rows); the status shows as a coloured label (``icons.pill_column``)."""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd
import streamlit as st

from ckptlab import modtree
from ckptlab.ui import state
from ckptlab.ui import icons
from ckptlab.ui.icons import STATUS_ORDER

COLUMNS = ("target", "target_shape", "target_dtype", "source", "source_shape", "source_dtype", "status", "reason")
MODULE_FILTER = "module_filter"


def _shape(shape: Sequence[int] | None) -> str:
    return "" if shape is None else str(tuple(int(n) for n in shape))


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


def filter_frame(frame: pd.DataFrame, statuses: Iterable[str], search: str = "",
                 module: tuple[str, str] | None = None) -> pd.DataFrame:
    """Rows whose status is chosen, whose target or source key contains ``search``
    (case-insensitive), and which lie inside the clicked treemap ``module``."""
    mask = frame["status"].isin(list(statuses))
    if search.strip():
        needle = search.strip().lower()
        mask &= (frame["target"].str.lower().str.contains(needle, regex=False)
                 | frame["source"].str.lower().str.contains(needle, regex=False))
    if module is not None:
        root, prefix = module
        if root == modtree.UNUSED_ROOT:
            keys, mask = frame["source"], mask & (frame["status"] == "unused")
        else:
            keys, mask = frame["target"], mask & (frame["target"] != "")
        if prefix:
            mask &= (keys == prefix) | keys.str.startswith(prefix + ".")
    return frame[mask]


def show(alignment: Any, frame: pd.DataFrame) -> None:
    st.subheader("Alignment")
    left, right = st.columns([3, 2])
    statuses = left.multiselect("Show statuses", STATUS_ORDER, default=list(STATUS_ORDER), key="status_filter")
    search = right.text_input("Search keys", key="key_search", placeholder="e.g. conv1 or attn")
    module = st.session_state.get(MODULE_FILTER)
    if module is not None:
        label = module[1] or module[0]
        a, b = st.columns([5, 1])
        a.info(f"Showing only module **{label}** (clicked in the treemap).")
        if b.button("Show all modules", key="clear_module"):
            st.session_state[MODULE_FILTER] = None
            st.rerun()
    shown = filter_frame(frame, statuses, search, module)
    shown = shown.assign(status=shown["status"].map(lambda s: [s]))     # one coloured label per row
    st.caption(f"{len(shown):,} of {len(frame):,} rows")
    st.dataframe(
        shown, hide_index=True, key="alignment_table", height=min(600, 38 + 35 * max(1, len(shown))),
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
