"""Charts: a treemap of parameters by module coloured by status (a click filters the
table), and a histogram of one tensor's values, source beside merged."""
from __future__ import annotations

from typing import Any

import plotly.graph_objects as go
import streamlit as st
import torch
from plotly.subplots import make_subplots

from ckptlab import modtree
from ckptlab.errors import CheckpointError
from ckptlab.ui import icons, state, table

TREEMAP = "treemap"
_LAST_CLICK = "_treemap_last_click"
_SAMPLE = 200_000        # values drawn per histogram (a fixed, evenly spaced subset)
TREEMAP_NODES = 600      # more is unreadable and slow to draw: big checkpoints show modules only


def take_click() -> None:
    """Turn a new treemap click into the table's module filter (called before the table)."""
    event = st.session_state.get(TREEMAP)
    points = (event or {}).get("selection", {}).get("points", []) if event else []
    if not points:
        return
    point = points[0]
    clicked = point.get("id") or point.get("label")
    if clicked and clicked != st.session_state.get(_LAST_CLICK):
        st.session_state[_LAST_CLICK] = clicked
        st.session_state[table.MODULE_FILTER] = modtree.selection_prefix(clicked)


def show(alignment: Any) -> None:
    st.subheader("Charts")
    left, right = st.columns(2)
    with left:
        _treemap(alignment)
    with right:
        _histogram(alignment)


def _treemap(alignment: Any) -> None:
    nodes = state.derived("treemap", lambda: modtree.module_frame(alignment.rows, max_nodes=TREEMAP_NODES))
    if nodes.empty:
        return
    fig = go.Figure(go.Treemap(
        ids=nodes["id"], parents=nodes["parent"], labels=nodes["label"], values=nodes["value"],
        branchvalues="total", maxdepth=4,
        marker={"colors": [modtree.STATUS_COLOURS[s] for s in nodes["status"]]},
        customdata=nodes[["status", "tensors"]].to_numpy(),
        hovertemplate="<b>%{id}</b><br>%{value:,} parameters in %{customdata[1]} tensors"
                      "<br>worst status: %{customdata[0]}<extra></extra>",
    ))
    fig.update_layout(margin={"t": 30, "l": 0, "r": 0, "b": 0}, height=420,
                      title="Parameters by module (colour: worst status inside; click to filter the table)")
    st.plotly_chart(fig, key=TREEMAP, on_select="rerun", selection_mode="points")
    st.caption(icons.legend(modtree.SEVERITY[::-1]))


CHANGED_FIRST = {"adapted": 0, "converted": 0, "mismatch": 1, "renamed": 2, "exact": 3}


def changed_first(rows: Any) -> list[str]:
    """Target keys a histogram can show, the tensors a fix changes first: adapted, then
    mismatched (still to fix: merged shows the target's own value), renamed, exact."""
    shown = [r for r in rows if r.status in CHANGED_FIRST and r.target is not None and r.source is not None]
    return [r.target for r in sorted(shown, key=lambda r: CHANGED_FIRST[r.status])]


def _histogram(alignment: Any) -> None:
    from ckptlab import merge

    keys = changed_first(alignment.rows)
    if not keys:
        st.caption("No target key is fed yet: the histogram compares a source tensor with its merged value.")
        return
    key = st.selectbox("Tensor values: source vs merged (changed tensors first)", keys, key="histogram_key")
    row = alignment.row(key)
    source = alignment.source.tensor(row.source)
    try:
        plan = state.derived("plan_keep_target", lambda: merge.plan(alignment, on_mismatch="keep-target"))
        merged = merge.merged_tensor(plan, key)
    except CheckpointError as exc:   # conflicts elsewhere block the plan: show the source alone
        st.caption(f"Merged value not available yet: {exc}")
        merged = None
    fig = make_subplots(rows=1, cols=2, subplot_titles=(
        f"source: {row.source}", f"merged: {key}" + (" (target's own value until fixed)"
                                                    if row.status == "mismatch" else "")))
    for col, values in ((1, source), (2, merged)):
        if values is None:
            continue
        fig.add_trace(go.Histogram(x=_sample(values), nbinsx=50, showlegend=False), row=1, col=col)
    fig.update_layout(margin={"t": 40, "l": 0, "r": 0, "b": 0}, height=380)
    st.plotly_chart(fig, key="histogram")
    st.caption(f"{row.status}: {row.reason}")


def _sample(tensor: torch.Tensor) -> Any:
    flat = tensor.detach().reshape(-1)
    if not (flat.is_floating_point() or flat.is_complex()):
        flat = flat.to(torch.float64)
    flat = flat.real if flat.is_complex() else flat
    if flat.numel() > _SAMPLE:
        flat = flat[:: flat.numel() // _SAMPLE + 1]
    return flat.to(torch.float64).numpy()
