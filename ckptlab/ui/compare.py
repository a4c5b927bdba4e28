"""Compare view: the diff of two checkpoints (source vs target file, or source vs merged)
as a heatmap of rel_l2 by layer index x tensor kind, a sortable table, and a click on a
cell opening that tensor's histograms, A beside B.

``show(alignment)`` draws it; ``heatmap_figure``, ``clicked_key``, ``pairs_frame`` and
``choices`` are pure and tested without Streamlit. Plotly reports no click on a Heatmap
trace inside Streamlit (streamlit#8760), so an invisible marker sits on every cell: the
click lands on it and carries the cell's tensor key.
"""
from __future__ import annotations

import html
import math
from dataclasses import replace
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from ckptlab.ui import kept, state, valuecache
from ckptlab.ui.values import SAMPLE, histogram_data, histogram_figure, merged_key, merged_of

HEATMAP = "compare_heatmap"
MODE_KEY = "compare_mode"
PICK_KEY = "compare_tensor"
_LAST_CLICK = state.Slot("_compare_last_click")
VS_TARGET = "Source vs target"
VS_MERGED = "Source vs merged"
FLOOR = 1e-12  # log scale: equal cells (rel_l2 = 0) are drawn at this value
PAIRS_PX, HISTOGRAM_PX = 240, 220   # px: the pairs table and the picked tensor's histograms


# -- pure helpers -------------------------------------------------------------------------------
def choices(alignment: Any) -> list[str]:
    """What can be compared: the target's own values only when it is a checkpoint (a model
    definition's values are a random initialisation), and the merged result always."""
    out = []
    if alignment.target.format not in ("model", "memory", "module"):
        out.append(VS_TARGET)
    out.append(VS_MERGED)
    return out


def heatmap_figure(grid: dict[str, Any], log: bool = True) -> go.Figure:
    """rel_l2 by layer (rows) x tensor kind (columns), plus one invisible, clickable marker per
    filled cell whose ``customdata`` is the cell's B key."""
    z = [[None if v is None else (math.log10(max(v, FLOOR)) if log else v) for v in row] for row in grid["z"]]
    columns = [html.escape(c) for c in grid["columns"]]
    rows = [html.escape(r) for r in grid["rows"]]       # a layer prefix is a key's: plotly reads <a href> in ticks
    text = [[("—" if v is None else f"{v:.3g}") for v in row] for row in grid["z"]]
    fig = go.Figure(go.Heatmap(
        z=z, x=columns, y=rows, colorscale="Viridis", hoverongaps=False, hoverinfo="skip",
        colorbar={"title": {"text": "log10 rel_l2" if log else "rel_l2"}},
    ))
    xs, ys, keys, labels = [], [], [], []
    for r, row_keys in enumerate(grid["keys"]):
        for c, key in enumerate(row_keys):
            if key is not None:
                xs.append(columns[c])
                ys.append(rows[r])
                keys.append(key)
                labels.append(f"{html.escape(key)}<br>rel_l2 {text[r][c]}")
    # the markers take the hover and the click (a heatmap trace gives Streamlit no selection)
    fig.add_trace(go.Scatter(
        x=xs, y=ys, mode="markers", customdata=keys, text=labels, showlegend=False,
        hovertemplate="%{text}<extra></extra>",
        marker={"symbol": "square", "size": 18, "opacity": 0.01, "color": "#000000"},
        selected={"marker": {"opacity": 0.35}}, unselected={"marker": {"opacity": 0.01}},
    ))
    fig.update_layout(margin={"t": 4, "l": 0, "r": 0, "b": 0}, height=max(260, 22 * len(rows) + 120),
                      clickmode="event+select", dragmode=False,
                      yaxis={"autorange": "reversed", "type": "category", "title": "layer"},
                      xaxis={"type": "category", "tickangle": -35})
    return fig


def clicked_key(event: Any) -> str | None:
    """The B key of a clicked heatmap cell (from Streamlit's selection event), if any."""
    points = ((event or {}).get("selection") or {}).get("points") or []
    for point in points:
        data = point.get("customdata")
        if isinstance(data, (list, tuple)):
            data = data[0] if data else None
        if isinstance(data, str):
            return data
    return None


def pairs_frame(result: Any) -> pd.DataFrame:
    """The pairs, changed first (largest rel_l2 first, undefined ones after), then those not
    compared, then equal ones."""
    frame = result.to_frame()
    if frame.empty:
        return frame
    rank = [0 if p.equal is False and p.rel_l2 is not None else 1 if p.equal is False else 2 if p.equal is None
            else 3 for p in result.pairs]
    frame = frame.assign(_rank=rank, _rel=frame["rel_l2"].fillna(0.0))
    frame = frame.sort_values(["_rank", "_rel"], ascending=[True, False], kind="stable")
    return frame.drop(columns=["_rank", "_rel"]).reset_index(drop=True)


# -- streamlit ---------------------------------------------------------------------------------
def run_diff(alignment: Any, mode: str):
    """The Diff for ``mode`` (cached by content); B is the target file or the merged result."""
    from ckptlab.values.diff import diff

    recipe = alignment.effective_recipe
    if mode == VS_TARGET:
        b, b_key = alignment.target, valuecache.content_key(alignment.target)
    else:
        b, _plan, why = merged_of(alignment)
        if b is None:
            return None, why
        b_key = merged_key(alignment)
    key = valuecache.combined("diff", mode, valuecache.content_key(alignment.source), b_key, recipe.to_json())
    total = alignment.source.total_bytes + b.total_bytes

    def scan(progress):
        result = diff(alignment.source, b, recipe=recipe, auto="none", progress=progress)
        return replace(result, alignment=None)  # keep figures only, never the checkpoints

    return valuecache.cached_scan(key, "Comparing values", total, scan), ""


def show(alignment: Any) -> None:
    from ckptlab.values.diff import layer_grid

    st.markdown("**Compare values**")
    options = choices(alignment)
    mode = kept.segmented(st, "Compare", options, MODE_KEY, options[0])
    result, why = run_diff(alignment, mode)
    if result is None:
        st.text(f"Nothing to compare yet: {why}")
        return
    s = result.summary
    cols = st.columns(5)
    for col, (label, value) in zip(cols, (("equal", s["equal"]), ("changed", s["changed"]),
                                          ("not compared", s["not_compared"]), ("A only", s["a_only"]),
                                          ("B only", s["b_only"]))):
        col.metric(label, f"{value:,}")
    grid = layer_grid(result.pairs)
    picked = None
    if grid["rows"]:
        log = kept.toggle(st, "log scale", "compare_log", True)
        st.caption("rel_l2 = ||a-b|| / ||b|| per tensor, by layer (rows) and tensor kind (columns); "
                   "click a cell for its histograms.")
        event = st.plotly_chart(heatmap_figure(grid, log), key=HEATMAP, on_select="rerun", selection_mode="points")
        picked = clicked_key(event)
        if picked and picked != _LAST_CLICK.get():
            _LAST_CLICK.set(picked)
            kept.renew(PICK_KEY, picked)  # the selectbox follows the click
    else:
        st.caption("No layer-indexed keys: no heatmap (the table lists every pair).")
    # the table and the histograms below it fit a 1400x1000 screen with the pickers above
    st.dataframe(pairs_frame(result), hide_index=True, height=PAIRS_PX, column_config={
        "max_abs": st.column_config.NumberColumn(format="%.4g"),
        "rel_l2": st.column_config.NumberColumn(format="%.4g"),
        "cosine": st.column_config.NumberColumn(format="%.6f"),
    })
    keys = [p.target for p in result.pairs if p.equal is not None]
    if not keys:
        return
    if kept.value(PICK_KEY) not in keys:
        kept.renew(PICK_KEY, next((p.target for p in result.pairs if p.equal is False), keys[0]))
    key = kept.selectbox(st, "Tensor (or click a heatmap cell)", keys, PICK_KEY)
    _tensor_histograms(alignment, mode, key, result.pair(key))


def _tensor_histograms(alignment: Any, mode: str, key: str, pair: Any) -> None:
    from ckptlab.io.windows import sample

    a_label = "A (source)"
    b_label = "B (target)" if mode == VS_TARGET else "B (merged)"
    if mode == VS_TARGET:
        b_values = sample(alignment.target.lazy(key), SAMPLE)
    else:
        merged, _plan, _why = merged_of(alignment)
        b_values = sample(merged.lazy(key), SAMPLE)
    a_values = sample(alignment.source.lazy(pair.source), SAMPLE) if pair.source else None
    series = {}
    for label, values in ((f"{a_label}: {pair.source or ', '.join(pair.sources)}", a_values),
                          (f"{b_label}: {key}", b_values)):
        series[label] = histogram_data(values)[0] if values is not None else None
    cols = st.columns(2)
    for col, label in zip(cols, series):
        col.text(label if len(label) < 120 else label[:117] + "...")
    st.plotly_chart(histogram_figure(series, HISTOGRAM_PX), key="compare_histogram")
    figures = "equal bit for bit" if pair.equal else (
        f"max_abs {pair.max_abs:.4g}, rel_l2 {pair.rel_l2:.4g}, cosine {pair.cosine:.6f}"
        if None not in (pair.max_abs, pair.rel_l2, pair.cosine) else "figures undefined (NaN/Inf or zero norm)")
    st.text(f"{pair.status}: {figures}" + (f" (dequantised: {pair.dequantized})" if pair.dequantized else ""))
