"""The side-by-side alignment table: filterable by status, searchable by key as you type,
and by the module clicked in the treemap.

Laid out to be read at 1280x720: status first, the two keys, the reason, then shapes and
dtypes (one column each, ``source -> target`` only where they differ). A prefix every key
of a side shares (``module._orig_mod.``) is said once above the table and left out of the
cells, and a key still too long for its column loses its *middle* (``down_blocks.0.…
attentions.0.to_q.weight``), never its end: the last names are what tell keys apart. A
clicked row is shown whole below the table. Rows are tinted by status (a Styler, up to
``STYLED_ROWS`` rows: above that it costs more than it helps; the status label stays
coloured). The search commits while typing, after a 250 ms pause (``st.text_input(live=)``,
Streamlit's own debounce).

Drawn in a fragment, so a filter or a search reruns only the table. The filter and the
search are sticky widgets (``ckptlab.ui.kept``): they survive other views and input switches.
"""
from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd
import streamlit as st

from ckptlab.align import module_tree as modtree
from ckptlab.ui import icons, kept, state, text
from ckptlab.ui.icons import STATUS_ORDER

COLUMNS = ("target", "target_shape", "target_dtype", "source", "source_shape", "source_dtype", "status", "reason")
SHOWN = ("status", "target_key", "source_key", "reason", "shapes", "dtypes")
MODULE_FILTER = "module_filter"
STATUS_FILTER, SEARCH = "status_filter", "key_search"
LAZY_ROWS = 2000         # above this, rows are fetched as the visitor scrolls
STYLED_ROWS = 2000       # rows tinted by status up to this many shown rows
HEIGHT = 360             # px: 9 rows; with the editors below it (a window under 1800 px) the view
                         # fits a 1400x1000 screen, and 1280x720 still shows 8 rows and more
KEY_CHARS = 32           # a key longer than this loses its middle (a key column shows ~33 characters)
COMPACT_KEY_CHARS = 32
KEY_PX, REASON_PX = 260, 250     # with status (75) and the row pickers (32): 877 px, a 1280 px window's table
SEARCH_PAUSE = "250ms"   # the search applies this long after the last keystroke
ELLIPSIS = "…"
TINT = {status: colour + "22" for status, colour in icons.STATUS_HEX.items()}    # 13 % of the status colour


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


# -- keys that fit their column ------------------------------------------------------
def common_prefix(keys: Iterable[str]) -> str:
    """The dotted prefix every non-empty key shares (``module._orig_mod.``), ending at a dot
    and leaving every key a name of its own; "" when there is none."""
    keys = [k for k in keys if k]
    if not keys:
        return ""
    first, last = min(keys), max(keys)
    n = 0
    while n < min(len(first), len(last)) and first[n] == last[n]:
        n += 1
    prefix = first[:n]
    prefix = prefix[: prefix.rfind(".") + 1]
    while prefix and any(len(k) <= len(prefix) for k in keys):      # a key must keep a name after it
        prefix = prefix[: prefix[:-1].rfind(".") + 1]
    return prefix


def elide(key: str, limit: int = KEY_CHARS) -> str:
    """``key`` in at most ``limit`` characters, its middle replaced by ``…``: the end (the
    names that tell keys apart) is kept as whole names where they fit, the head fills the
    rest. Never cut at the end."""
    if len(key) <= limit:
        return key
    room = limit - 1
    names = key.split(".")
    tail = ""
    for i in range(len(names) - 1, 0, -1):          # the longest run of last names leaving a head
        longer = ".".join(names[i:])
        if len(longer) > room - 8:
            break
        tail = longer
    tail = tail or key[-(room * 3 // 5):]
    return key[: room - len(tail)] + ELLIPSIS + tail


def display_keys(keys: pd.Series, prefix: str, limit: int) -> pd.Series:
    """The column's text: the shared prefix left out, the middle of long keys elided."""
    n = len(prefix)
    return keys.map(lambda k: elide(k[n:] if k.startswith(prefix) else k, limit) if k else "")


def pair_text(source: pd.Series, target: pd.Series) -> pd.Series:
    """``source -> target`` where they differ, one value where they agree or one is absent."""
    same = (source == target) | (source == "") | (target == "")
    return source.where(same & (source != ""), target).where(same, source + " → " + target)


def display_frame(frame: pd.DataFrame, compact: bool = False) -> tuple[pd.DataFrame, dict[str, str]]:
    """The frame as shown (``SHOWN`` columns, then the whole keys as hidden ``target`` and
    ``source`` columns: the frame's value keeps them; index kept for filtering) and the
    prefixes folded per side."""
    prefixes = {side: common_prefix(frame[side].tolist()) for side in ("target", "source")}
    limit = COMPACT_KEY_CHARS if compact else KEY_CHARS
    shown = pd.DataFrame({
        "status": frame["status"],
        "target_key": display_keys(frame["target"], prefixes["target"], limit),
        "source_key": display_keys(frame["source"], prefixes["source"], limit),
        "reason": frame["reason"],
        "shapes": pair_text(frame["source_shape"], frame["target_shape"]),
        "dtypes": pair_text(frame["source_dtype"], frame["target_dtype"]),
        "target": frame["target"], "source": frame["source"],
    }, index=frame.index)
    return shown, prefixes


def frame_of(alignment: Any) -> pd.DataFrame:
    """``rows_frame`` once per alignment (reruns that only filter reuse it)."""
    return state.derived("frame", lambda: rows_frame(alignment.rows))


def shown_of(alignment: Any, compact: bool) -> tuple[pd.DataFrame, dict[str, str]]:
    return state.derived(f"display_frame_{compact}", lambda: display_frame(frame_of(alignment), compact))


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


_MODULE = state.Slot(MODULE_FILTER)


def module_filter() -> tuple[str, str] | None:
    """The treemap module the table is limited to (root, prefix), or None."""
    return _MODULE.get()


def set_module(module: tuple[str, str] | None) -> None:
    _MODULE.set(module)


def clear_module() -> None:
    _MODULE.set(None)


def tinted(shown: pd.DataFrame) -> Any:
    """Rows tinted by their status (a Styler); the frame itself when there are too many rows."""
    if len(shown) > STYLED_ROWS or shown.empty:
        return shown
    colours = shown["status"].map(lambda s: f"background-color: {TINT.get(s[0] if s else '', '')}")
    css = pd.DataFrame({c: colours for c in shown.columns}, index=shown.index)
    return shown.style.apply(lambda _: css, axis=None)


def _status_label(counts: dict[str, int]) -> Any:
    return lambda s: f"{s} {counts.get(s, 0):,}"


@st.fragment
def show(alignment: Any, compact: bool = False) -> None:
    frame = frame_of(alignment)
    counts = frame["status"].value_counts().to_dict()
    statuses = kept.pills(st, "Show statuses", STATUS_ORDER, STATUS_FILTER, default=list(STATUS_ORDER),
                          format_func=_status_label(counts), help="; ".join(
                              f"**{s}**: {icons.STATUS_HELP[s]}" for s in STATUS_ORDER))
    search = kept.text_input(st, "Search keys (as you type)", SEARCH, placeholder="e.g. conv1 or attn",
                             live=SEARCH_PAUSE)
    module = module_filter()
    if module is not None:
        a, b = st.columns([3, 1], vertical_alignment="center")
        a.text(f"Showing only module {module_label(module)} (clicked in the treemap), on either side.")
        b.button("Show all modules", key="clear_module", on_click=clear_module, width="stretch")
    display, prefixes = shown_of(alignment, compact)
    kept_rows = filter_frame(frame, statuses, search, module, lowered_of(alignment)).index
    shown = display.loc[kept_rows].reset_index(drop=True)
    shown["status"] = shown["status"].map(lambda s: [s])          # one coloured label per row
    folded = [f"{side} {text.code(p)}" for side, p in prefixes.items() if p]
    lazy = len(shown) > LAZY_ROWS        # big tables: only the rows on screen go to the browser
    count, note = st.columns([1, 5])
    count.caption(f"{len(shown):,} of {len(frame):,} rows")
    note.caption(("Keys shown without the prefix they all share: " + ", ".join(folded) + ". " if folded else "")
                 + ("A long key loses its middle (…): search for it to narrow the table, then click its row "
                    "to read it whole." if lazy else "A long key loses its middle (…): click a row to read it whole."))
    event = st.dataframe(
        tinted(shown), hide_index=True, key="alignment_table", height=HEIGHT, lazy=lazy,
        # Streamlit refuses row selection on a lazy grid (StreamlitIncompatibleParametersError)
        on_select="ignore" if lazy else "rerun", selection_mode="single-row",
        column_order=SHOWN[:4] if compact else SHOWN,
        column_config={
            "status": icons.pill_column(),
            "target_key": st.column_config.TextColumn("target key", width=KEY_PX),
            "source_key": st.column_config.TextColumn("source key", width=KEY_PX),
            "reason": st.column_config.TextColumn("reason", width=REASON_PX),
            "shapes": st.column_config.TextColumn("shape (source → target)", width=170),
            "dtypes": st.column_config.TextColumn("dtype", width=110),
        },
    )
    _picked(event, frame, kept_rows)


def _picked(event: Any, frame: pd.DataFrame, kept_rows: pd.Index) -> None:
    """The clicked row, whole: both keys, shapes, dtypes and the reason (plain text)."""
    if not isinstance(event, dict):      # a lazy grid: no selection (the element itself came back)
        return
    rows = list(getattr(getattr(event, "selection", None), "rows", []) or [])
    if not rows or rows[0] >= len(kept_rows):
        return
    row = frame.loc[kept_rows[rows[0]]]
    with st.container(key="picked_row", border=True):
        st.text(f"{row['status']}: {row['reason']}")
        st.text(f"target: {row['target'] or '(none)'}  {row['target_shape']} {row['target_dtype']}")
        st.text(f"source: {row['source'] or '(none)'}  {row['source_shape']} {row['source_dtype']}")
