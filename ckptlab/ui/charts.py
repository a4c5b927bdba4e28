"""Charts: a treemap of parameters by module coloured by the share of its target keys
that get a source tensor (a click filters the Alignment table, both sides), and a
histogram of one tensor's values, source beside merged.

Titles and key names are drawn by Streamlit as plain text above the figures, not inside
them: plotly's breadcrumb (pathbar) would cover a treemap title, long subplot titles
overlap, and a key name from the file never goes through plotly's HTML-ish labels
unescaped in a title.
"""
from __future__ import annotations

import html
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
import torch

from ckptlab.align import module_tree as modtree
from ckptlab.errors import CheckpointError
from ckptlab.ui import kept, state, table, text

TREEMAP = "treemap"
_LAST_CLICK = state.Slot("_treemap_last_click")
_SAMPLE = 200_000        # values drawn per histogram (a fixed, evenly spaced subset)
TREEMAP_NODES = 600      # more is unreadable and slow to draw: big checkpoints show modules only
FED = ("exact", "renamed", "adapted")
# share of the module's target keys that are fed: 0 red .. 1 green; unused source keys grey
SHARE_SCALE = [[0.0, "#e53935"], [0.5, "#fbc02d"], [1.0, "#2e7d32"]]
UNUSED_GREY = "#9e9e9e"


def take_click() -> None:
    """Turn a new treemap click into the table's module filter (called before drawing)."""
    event = state.widget_value(TREEMAP)
    points = (event or {}).get("selection", {}).get("points", []) if event else []
    if not points:
        return
    point = points[0]
    clicked = point.get("id") or point.get("label")
    if clicked and clicked != _LAST_CLICK.get():
        _LAST_CLICK.set(clicked)
        table.set_module(modtree.selection_prefix(clicked))


def show(alignment: Any) -> None:
    take_click()
    left, right = st.columns(2, gap="medium")
    with left:
        _treemap(alignment)
    with right:
        _histogram(alignment)


def fed_text(fed: int, total: int) -> str:
    """``1,197 of 1,200 (99%)``: the percentage rounded *down*, so only a module whose every
    key is fed says 100% (and none fed says 0%)."""
    return f"{fed:,} of {total:,} ({fed * 100 // total}%)" if total else "—"


def fed_counts(rows: Any, nodes: pd.DataFrame) -> list[tuple[int, int] | None]:
    """For each treemap node: (fed target keys, target keys) inside it (None under the
    unused-source root). A module that loads 37 of 43 keys is mostly green, whatever the
    six others are (a worst-status colour would paint it all red)."""
    fed: dict[str, int] = {}
    total: dict[str, int] = {}
    for row in rows:
        if row.target is None:
            continue
        parts = row.target.split(".")
        ids = [modtree.TARGET_ROOT] + [modtree.node_id(modtree.TARGET_ROOT, ".".join(parts[:d]))
                                       for d in range(1, len(parts) + 1)]
        for nid in ids:
            total[nid] = total.get(nid, 0) + 1
            fed[nid] = fed.get(nid, 0) + (row.status in FED)
    return [(fed[nid], total[nid]) if total.get(nid) else None for nid in nodes["id"]]


def _treemap(alignment: Any) -> None:
    nodes = state.derived("treemap", lambda: modtree.module_frame(alignment.rows, max_nodes=TREEMAP_NODES))
    if nodes.empty:
        return
    fed = state.derived("treemap_fed", lambda: fed_counts(alignment.rows, nodes))
    shares = [None if c is None else c[0] / c[1] for c in fed]
    st.markdown("**Parameters by module**")
    st.caption("Size: parameters. Colour: share of the module's target keys fed by the source (red none, "
               "green all; grey: unused source keys). Click a module to filter the Alignment table (either side).")
    fig = go.Figure(go.Treemap(
        ids=nodes["id"], parents=nodes["parent"], labels=[html.escape(str(x)) for x in nodes["label"]],
        values=nodes["value"], branchvalues="total", maxdepth=3,
        marker={"colors": [_hex(UNUSED_GREY if s is None else s) for s in shares]},
        customdata=[[("—" if c is None else fed_text(*c)), n] for c, n in zip(fed, nodes["tensors"])],
        hovertemplate="%{label}<br>%{value:,} parameters in %{customdata[1]:,} tensors"
                      "<br>target keys fed: %{customdata[0]}<extra></extra>",
        pathbar={"side": "bottom"},
    ))
    fig.update_layout(margin={"t": 4, "l": 0, "r": 0, "b": 4}, height=430)
    st.plotly_chart(fig, key=TREEMAP, on_select="rerun", selection_mode="points")
    module = table.module_filter()
    if module is not None:
        st.text(f"Clicked: {table.module_label(module)}. The Alignment table shows only its rows.")


def _hex(value: float | str) -> str:
    """A colour of ``SHARE_SCALE`` for a share (or the grey given)."""
    if isinstance(value, str):
        return value
    (a, ca), (b, cb) = (SHARE_SCALE[0], SHARE_SCALE[1]) if value <= 0.5 else (SHARE_SCALE[1], SHARE_SCALE[2])
    t = (value - a) / (b - a)
    mix = [round(int(ca[i:i + 2], 16) * (1 - t) + int(cb[i:i + 2], 16) * t) for i in (1, 3, 5)]
    return "#" + "".join(f"{v:02x}" for v in mix)


CHANGED_FIRST = {"adapted": 0, "converted": 0, "mismatch": 1, "renamed": 2, "exact": 3}


def changed_first(rows: Any) -> list[str]:
    """Target keys a histogram can show, the tensors a fix changes first: adapted, then
    mismatched (still to fix: merged shows the target's own value), renamed, exact."""
    shown = [r for r in rows if r.status in CHANGED_FIRST and r.target is not None and r.source is not None]
    return [r.target for r in sorted(shown, key=lambda r: CHANGED_FIRST[r.status])]


def _histogram(alignment: Any) -> None:
    from ckptlab import merge

    keys = changed_first(alignment.rows)
    st.markdown("**Tensor values: source vs merged**")
    if not keys:
        st.caption("No target key is fed yet: the histogram compares a source tensor with its merged value.")
        return
    key = kept.selectbox(st, "Tensor (changed tensors first)", keys, "histogram_key")
    row = alignment.row(key)
    source = alignment.source.tensor(row.source)
    try:
        plan = state.derived("plan_keep_target", lambda: merge.plan(alignment, on_mismatch="keep-target"))
        merged = merge.merged_tensor(plan, key)
    except CheckpointError as exc:   # conflicts elsewhere block the plan: show the source alone
        st.caption(f"Merged value not available yet: {text.md(state.error_message(exc))}")
        merged = None
    from ckptlab.ui.values import histogram_data, histogram_figure

    titles = (f"source: {row.source}", f"merged: {key}" + (" (target's own value until fixed)"
                                                           if row.status == "mismatch" else ""))
    for column, title in zip(st.columns(2), titles):
        column.text(text.one_line(title, 120))
    series = {title: None if values is None else histogram_data(torch.from_numpy(_sample(values)))[0]
              for title, values in zip(titles, (source, merged))}
    st.plotly_chart(histogram_figure(series), key="histogram_pair")     # one x range and bins for both
    st.text(text.one_line(f"{row.status}: {row.reason}", 300))


def _sample(tensor: torch.Tensor) -> Any:
    flat = tensor.detach().reshape(-1)
    if not (flat.is_floating_point() or flat.is_complex()):
        flat = flat.to(torch.float64)
    flat = flat.real if flat.is_complex() else flat
    if flat.numel() > _SAMPLE:
        flat = flat[:: flat.numel() // _SAMPLE + 1]
    return flat.to(torch.float64).numpy()
