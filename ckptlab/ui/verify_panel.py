"""Verification, when the target is a model definition: the strict-load report of the
merged checkpoint, the function-preservation check against the source model, and the
speed/memory comparison of the two models. Each runs on a button (they take seconds)."""
from __future__ import annotations

import json
from typing import Any

import pandas as pd
import streamlit as st

from ckptlab.targets import model_target, parse_kwargs
from ckptlab.ui import state

RESULTS = "_verify_results"


def model_of(spec: str, kwargs: dict) -> Any:
    """The model definition as a (cached) meta-device target."""
    return state.cached(("model", spec, json.dumps(kwargs, sort_keys=True)), lambda: model_target(spec, kwargs))


def merged_tensors(alignment: Any) -> dict:
    """The merged checkpoint in memory (the same plan the download writes)."""
    from ckptlab import merge

    return state.derived("merged", lambda: {o.key: o.produce() for o in merge.plan(alignment).outputs()})


def show(alignment: Any, source: Any, target: Any) -> None:
    st.subheader("Verification")
    if not target.model:
        st.caption("Verification needs the target as a model definition: pick a demo pair, or choose "
                   "'Model definition' for the target in the sidebar.")
        return
    st.caption(f"Target model: `{target.model}` {json.dumps(target.kwargs) if target.kwargs else ''}")
    spec_col, kwargs_col = st.columns(2)
    src_spec = spec_col.text_input("Source model definition (for the function and speed checks)",
                                   value=source.model or "", key=f"verify_src_spec_{source.model}")
    src_kwargs_text = kwargs_col.text_input("Source model kwargs (JSON)", value=json.dumps(source.kwargs or {}),
                                            key=f"verify_src_kwargs_{source.model}")
    results = st.session_state.setdefault(RESULTS, {})
    run_key = state.alignment_key()
    load_col, func_col, speed_col = st.columns(3)
    if load_col.button("Load report (strict)", key="verify_load"):
        results[("load", run_key)] = state.guarded(st, lambda: _load(alignment, target))
    if func_col.button("Check function preservation", key="verify_function", disabled=not src_spec.strip()):
        results[("function", run_key)] = state.guarded(
            st, lambda: _function(alignment, source, target, src_spec, src_kwargs_text))
    if speed_col.button("Compare speed and memory", key="verify_speed", disabled=not src_spec.strip()):
        results[("speed", run_key)] = state.guarded(st, lambda: _speed(target, src_spec, src_kwargs_text))
    _show_results(results, run_key)


def _load(alignment: Any, target: Any) -> dict:
    from ckptlab import verify

    report = verify.load_report(merged_tensors(alignment), model_of(target.model, target.kwargs))
    return {"summary": verify.describe_misfit(report), "report": report}


def _function(alignment: Any, source: Any, target: Any, src_spec: str, src_kwargs_text: str) -> dict:
    from ckptlab import verify

    src_model = model_of(src_spec, parse_kwargs(src_kwargs_text))
    check = verify.compare_function(src_model, alignment.source, model_of(target.model, target.kwargs),
                                    merged_tensors(alignment))
    return check.to_dict()


def _speed(target: Any, src_spec: str, src_kwargs_text: str) -> Any:
    from ckptlab import verify

    models = {"source": model_of(src_spec, parse_kwargs(src_kwargs_text)),
              "target": model_of(target.model, target.kwargs)}
    return verify.compare_speed(models, repeats=10, warmup=2)


def _show_results(results: dict, run_key: tuple) -> None:
    load = results.get(("load", run_key))
    if load:
        ok = not any(load["report"].values())
        (st.success if ok else st.warning)(f"Strict load of the merged checkpoint: {load['summary']}")
        if not ok:
            st.json(load["report"], expanded=False)
    check = results.get(("function", run_key))
    if check:
        verdict = "bit for bit equal" if check["equal"] else f"max |difference| {check['max_abs_diff']:.3g}"
        (st.success if check["max_abs_diff"] < 1e-4 else st.warning)(
            f"Function preservation: {verdict} (source input {tuple(check['source_input_shape'])}, "
            f"target input {tuple(check['target_input_shape'])})")
        st.dataframe(pd.DataFrame(check["fills"]), hide_index=True)
    speed = results.get(("speed", run_key))
    if speed:
        frame = pd.DataFrame([{"model": r.name, "median ms": round(r.median_ms, 3), "parameters": r.params,
                               "peak bytes": r.peak_bytes, "time vs source": round(r.time_ratio, 3),
                               "memory vs source": round(r.memory_ratio, 3)} for r in speed.rows])
        st.dataframe(frame, hide_index=True)
        st.caption(f"{speed.repeats} interleaved runs on {speed.device}, {speed.threads} threads; "
                   f"memory: {speed.memory_method}.")

