"""Values view: per-tensor statistics with flags, for the source and the merged result, and
a histogram of any tensor, source beside merged.

``show(alignment)`` draws it; the pure helpers (``merged_of``, ``stats_frame``,
``histogram_figure``, ``histogram_data``) are tested without Streamlit. Names from files go
into dataframes and ``st.text`` only (never markdown) and are HTML-escaped inside plotly.
"""
from __future__ import annotations

import html
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
import torch

from ckptlab.errors import CheckpointError
from ckptlab.ui import kept, valuecache

SAMPLE = 200_000   # values drawn per histogram (evenly spaced, read window by window)
BINS = 60
SIDES = ("Source", "Merged")
SIDE_KEY = "values_side"
FLAGGED_KEY = "values_flagged_only"
SEARCH_KEY = "values_search"
TENSOR_KEY = "values_tensor"
COLUMNS = ["flags", "key", "dtype", "shape", "min", "max", "mean", "std", "absmax", "zeros", "nan", "inf"]


# -- pure helpers -------------------------------------------------------------------------------
def merged_of(alignment: Any) -> tuple[Any, Any, str]:
    """``(merged Checkpoint, plan, "")``, or ``(None, None, why)`` when the merge is blocked."""
    from ckptlab import merge
    from ckptlab.merge.merged_view import merged_checkpoint

    try:
        plan = merge.plan(alignment, on_mismatch="keep-target")
    except CheckpointError as exc:
        return None, None, str(exc)
    return merged_checkpoint(plan), plan, ""


def merged_key(alignment: Any) -> str:
    """The merged result's content key: both inputs' and the effective recipe's."""
    return valuecache.combined("merged", valuecache.content_key(alignment.source),
                               valuecache.content_key(alignment.target), alignment.effective_recipe.to_json())


def stats_frame(result: Any, flagged_only: bool = False, search: str = "") -> pd.DataFrame:
    """The statistics table: flagged tensors first (worst flag first), then in file order."""
    from ckptlab.values.stats import FLAGS

    frame = result.to_frame()
    if frame.empty:
        return frame.reindex(columns=COLUMNS)
    severity = {flag: i for i, flag in enumerate(FLAGS)}
    frame["_rank"] = [severity[s.flags[0]] if s.flags else len(severity) for s in result.tensors]
    frame["_order"] = range(len(frame))
    if flagged_only:
        frame = frame[frame["flags"] != ""]
    if search:
        frame = frame[frame["key"].str.contains(search, case=False, regex=False)]
    frame = frame.sort_values(["_rank", "_order"], kind="stable")
    return frame[COLUMNS].reset_index(drop=True)


def histogram_data(values: torch.Tensor) -> tuple[Any, int]:
    """(finite values as float64 numpy, how many were not finite)."""
    flat = values.detach().reshape(-1)
    if flat.is_complex():
        flat = torch.view_as_real(flat.to(torch.complex128)).reshape(-1)
    flat = flat.to(torch.float64)
    finite = torch.isfinite(flat)
    return flat[finite].numpy(), int((~finite).sum())


def histogram_figure(series: dict[str, Any], height: int = 300) -> go.Figure:
    """One histogram per labelled array, side by side with shared bins (so shapes compare)."""
    from plotly.subplots import make_subplots

    present = {label: v for label, v in series.items() if v is not None and len(v)}
    lo = min((float(v.min()) for v in present.values()), default=0.0)
    hi = max((float(v.max()) for v in present.values()), default=1.0)
    size = (hi - lo) / BINS if hi > lo else 1.0
    fig = make_subplots(rows=1, cols=max(1, len(series)), shared_yaxes=False, horizontal_spacing=0.06)
    for i, (label, values) in enumerate(series.items(), start=1):
        if values is None or not len(values):
            continue
        fig.add_trace(go.Histogram(x=values, xbins={"start": lo, "end": hi + size, "size": size},
                                   name=html.escape(label), showlegend=False), row=1, col=i)
        fig.update_xaxes(range=[lo - size, hi + size], row=1, col=i)
    fig.update_layout(margin={"t": 4, "l": 0, "r": 0, "b": 0}, height=height, bargap=0.02)
    return fig


# -- streamlit ---------------------------------------------------------------------------------
def source_stats(alignment: Any):
    from ckptlab.values.stats import stats

    ck = alignment.source
    return valuecache.cached_scan(valuecache.combined("stats", valuecache.content_key(ck)), "Source statistics",
                                  ck.total_bytes, lambda progress: stats(ck, progress=progress))


def merged_stats(alignment: Any):
    from ckptlab.values.stats import stats

    ck, _plan, why = merged_of(alignment)
    if ck is None:
        return None, why
    result = valuecache.cached_scan(valuecache.combined("stats", merged_key(alignment)), "Merged statistics",
                                    ck.total_bytes, lambda progress: stats(ck, progress=progress))
    return result, ""


def show(alignment: Any) -> None:
    st.markdown("**Value statistics**")
    side = kept.segmented(st, "Values of", SIDES, SIDE_KEY, SIDES[0])
    if side == SIDES[0]:
        result, why = source_stats(alignment), ""
    else:
        result, why = merged_stats(alignment)
    if result is None:
        st.text(f"Merged values are not available yet: {why}")
    else:
        _stats_table(result)
    # collapsed: the part then fits one screen (the treemap part shows a histogram too)
    with st.expander("Histogram: source beside merged", expanded=False):
        _histograms(alignment)


def _stats_table(result: Any) -> None:
    from ckptlab.values.stats import FLAGS

    flagged = result.flagged
    counts = {flag: sum(flag in s.flags for s in flagged) for flag in FLAGS}
    text = ", ".join(f"{n} {flag}" for flag, n in counts.items() if n) or "none"
    st.caption(f"{len(result)} tensors; flagged: {text}. min/max/mean/std are over finite values, std is the "
               "population std, sums in float64.")
    left, right = st.columns([1, 3])
    flagged_only = kept.toggle(left, "Flagged only", FLAGGED_KEY, False)
    search = kept.text_input(right, "Search keys", SEARCH_KEY, placeholder="part of a key",
                             label_visibility="collapsed")
    frame = stats_frame(result, flagged_only, search)
    st.dataframe(frame, hide_index=True, height=360, column_config={
        "flags": st.column_config.TextColumn("flags", help="; ".join(f"{k}: {v}" for k, v in FLAGS.items())),
        "min": st.column_config.NumberColumn(format="%.4g"), "max": st.column_config.NumberColumn(format="%.4g"),
        "mean": st.column_config.NumberColumn(format="%.4g"), "std": st.column_config.NumberColumn(format="%.4g"),
        "absmax": st.column_config.NumberColumn(format="%.4g"),
    })


def _histograms(alignment: Any) -> None:
    rows = [r for r in alignment.rows if r.target is not None and r.source is not None and r.fed]
    if not rows:
        st.caption("No target key is fed yet: nothing to compare.")
        return
    keys = [r.target for r in rows]
    key = kept.selectbox(st, "Tensor", keys, TENSOR_KEY)
    show_tensor_pair(alignment, key)


def show_tensor_pair(alignment: Any, key: str, a_label: str = "source", b_label: str = "merged",
                     b_value: Any = None) -> None:
    """Histograms of the source tensor feeding ``key`` and of ``key``'s merged value (or ``b_value``)."""
    from ckptlab.io.windows import sample

    row = alignment.row(key)
    source_values = sample(alignment.source.lazy(row.source), SAMPLE) if row.source else None
    if b_value is None:
        merged, _plan, why = merged_of(alignment)
        b_value = sample(merged.lazy(key), SAMPLE) if merged is not None else None
        if merged is None:
            st.text(f"Merged value not available: {why}")
    series, notes = {}, []
    for label, values in ((f"{a_label}: {row.source or '-'}", source_values), (f"{b_label}: {key}", b_value)):
        if values is None:
            series[label] = None
            continue
        data, bad = histogram_data(values)
        series[label] = data
        if bad:
            notes.append(f"{label}: {bad} non-finite values left out")
    columns = st.columns(len(series))
    for column, label in zip(columns, series):
        column.text(label if len(label) < 120 else label[:117] + "...")
    st.plotly_chart(histogram_figure(series), key=f"histogram_{a_label}_{b_label}")
    for note in notes:
        st.text(note)
    st.text(f"{row.status}: {row.reason}"[:300])
