"""Verification: what a warm start would report (always, from the table), and when the
target is a model definition, the strict-load report of the merged checkpoint, the
function-preservation check against the source model, and the speed/memory comparison of
the two models. The model checks run on a button (they take seconds)."""
from __future__ import annotations

import json
from typing import Any

import pandas as pd
import streamlit as st

from ckptlab.errors import CheckpointError
from ckptlab.targets import model_target, parse_kwargs
from ckptlab.ui import state

RESULTS = "_verify_results"
LISTED = 12          # key names listed per line of the warm-start report


def model_of(spec: str, kwargs: dict) -> Any:
    """The model definition as a (cached) meta-device target."""
    return state.cached(("model", spec, json.dumps(kwargs, sort_keys=True)), lambda: model_target(spec, kwargs))


def merged_tensors(alignment: Any) -> dict:
    """The merged checkpoint in memory (the same plan the download writes)."""
    from ckptlab import merge

    return state.derived("merged", lambda: {o.key: o.produce() for o in merge.plan(alignment).outputs()})


def show(alignment: Any, source: Any, target: Any) -> None:
    st.subheader("Verification")
    warm_start_report(alignment)
    if not target.model:
        st.caption("The model checks need the target as a model definition: pick a demo pair, or choose "
                   "'Model definition' for the target in the sidebar.")
        return
    st.markdown(f"**Model checks.** Target model: `{target.model}` {_kwargs_text(target.kwargs)}")
    spec_col, kwargs_col = st.columns(2)
    src_spec = spec_col.text_input("Source model definition (package.module:callable), for the function and "
                                   "speed checks", value=source.model or "", key=f"verify_src_spec_{source.model}",
                                   placeholder="sample_ckpts.models:FontUNet")
    src_kwargs_text = kwargs_col.text_input("Source model kwargs (JSON)", value=json.dumps(source.kwargs or {}),
                                            key=f"verify_src_kwargs_{source.model}")
    results = st.session_state.setdefault(RESULTS, {})
    run_key = state.alignment_key()
    load_col, func_col, speed_col = st.columns(3)
    where = st.container()           # errors of the buttons show here, above the results
    if load_col.button("Load report (strict)", key="verify_load"):
        results[("load", run_key)] = state.guarded(where, lambda: _load(alignment, target))
    if func_col.button("Check function preservation", key="verify_function", disabled=not src_spec.strip()):
        results[("function", run_key)] = state.guarded(
            where, lambda: _function(alignment, target, src_spec, src_kwargs_text))
    if speed_col.button("Compare speed and memory", key="verify_speed", disabled=not src_spec.strip()):
        results[("speed", run_key)] = state.guarded(where, lambda: _speed(target, src_spec, src_kwargs_text))
    if not src_spec.strip():
        st.caption("Give the source model's definition to compare outputs, speed and memory.")
    _show_results(results, run_key)


def _kwargs_text(kwargs: dict | None) -> str:
    return f"`{json.dumps(kwargs, sort_keys=True)}`" if kwargs else ""


def _names(keys: list[str]) -> str:
    shown = ", ".join(f"`{k}`" for k in keys[:LISTED])
    return shown + (f" and {len(keys) - LISTED} more (filter the table by status)" if len(keys) > LISTED else "")


def warm_start_report(alignment: Any) -> None:
    """What ``model.load_state_dict(renamed_source, strict=False)`` (or ``ckptlab.load_into``)
    would report with this recipe: read straight from the table's rows."""
    loaded = alignment.by_status("exact", "renamed")
    adapted = alignment.by_status("adapted")
    missing = [r.target for r in alignment.by_status("missing", "mismatch", "conflict")]
    unexpected = [r.source for r in alignment.by_status("unused")]
    by_name = sum(r.status == "exact" for r in loaded)
    lines = [f"**Loaded**: {len(loaded)} ({by_name} by name, {len(loaded) - by_name} renamed)"
             + (f", **adapted**: {len(adapted)}" if adapted else ""),
             f"**Missing keys** (keep the target's own value, start fresh): {len(missing)}"
             + (f": {_names(missing)}" if missing else ""),
             f"**Unexpected keys** (source keys that feed nothing): {len(unexpected)}"
             + (f": {_names(unexpected)}" if unexpected else "")]
    with st.container(border=True, key="warm_start_report"):
        st.markdown("**Warm-start report**: what `model.load_state_dict(source, strict=False)` would say "
                    "with this recipe (`ckptlab.load_into` returns the same)  \n" + "  \n".join(lines))


def _load(alignment: Any, target: Any) -> dict:
    from ckptlab import verify

    report = verify.load_report(merged_tensors(alignment), model_of(target.model, target.kwargs))
    return {"summary": verify.describe_misfit(report), "report": report}


def source_as_model_expects(source_ckpt: Any, src_model: Any) -> tuple[dict, str]:
    """The source checkpoint under the source model's own key names, and what was done.

    A source that needed fixing for the target (a ``module.`` prefix, a container) may not
    load strictly into its own model either: only sure fixes (``auto="high"``) are applied,
    and every model key must get its tensor, shapes unchanged, or the check is refused.
    """
    from ckptlab import merge
    from ckptlab.align import align

    fitted = align(source_ckpt, src_model, auto="high")
    unfed = fitted.by_status("missing", "mismatch", "conflict", "adapted")
    if unfed:
        first = unfed[0]
        raise CheckpointError(f"the source checkpoint does not fit the source model: {len(unfed)} of its keys "
                              f"get no source tensor of the right shape (first: {first.target}, "
                              f"{first.status}); check the source model definition and kwargs")
    tensors = {o.key: o.produce() for o in merge.plan(fitted).outputs()}
    applied = [s.describe() for s in fitted.suggestions if s.applied]
    return tensors, ("keys as the source model names them: " + "; ".join(applied)) if applied else ""


def _function(alignment: Any, target: Any, src_spec: str, src_kwargs_text: str) -> dict:
    from ckptlab import verify

    src_kwargs = parse_kwargs(src_kwargs_text)
    src_model = model_of(src_spec, src_kwargs)
    src_tensors, fixed = source_as_model_expects(alignment.source, src_model)
    check = verify.compare_function(src_model, src_tensors, model_of(target.model, target.kwargs),
                                    merged_tensors(alignment)).to_dict()
    check["compared"] = (f"source model `{src_spec}` {_kwargs_text(src_kwargs)} holding the source checkpoint"
                         + (f" ({fixed})" if fixed else "")
                         + f" vs target model `{target.model}` {_kwargs_text(target.kwargs)} holding the merged "
                         "checkpoint, on the same seeded random input")
    check["fresh"] = len(alignment.by_status("missing")) + sum(
        r.adapt is not None and r.adapt.op == "reinit" for r in alignment.by_status("adapted"))
    return check


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
        _show_function(check)
    speed = results.get(("speed", run_key))
    if speed:
        _show_speed(speed)


def _show_function(check: dict) -> None:
    verdict = "outputs bit for bit equal" if check["equal"] else f"max |difference| {check['max_abs_diff']:.3g}"
    good = check["max_abs_diff"] < 1e-4
    why = "" if good or not check["fresh"] else (
        f" Expected: {check['fresh']} target tensors start fresh (missing), so the new model computes something "
        "else until it is trained.")
    (st.success if good else st.warning)(
        f"Function preservation: {verdict} (source input {tuple(check['source_input_shape'])}, "
        f"target input {tuple(check['target_input_shape'])}).{why}")
    st.caption(f"Compared: {check['compared']}. Extra target input channels, if any, are filled with zeros and "
               "with random values; every fill is listed.")
    st.dataframe(pd.DataFrame(check["fills"]), hide_index=True)


def _show_speed(speed: Any) -> None:
    frame = pd.DataFrame([{"model": r.name, "median ms": round(r.median_ms, 3), "parameters": r.params,
                           "peak memory (MB)": round(r.peak_bytes / 2**20, 3), "time vs source": round(r.time_ratio, 3),
                           "memory vs source": round(r.memory_ratio, 3)} for r in speed.rows])
    st.dataframe(frame, hide_index=True, key="speed_table")
    target = speed.row("target")
    faster = "faster" if target.time_ratio < 1 else "slower"
    st.markdown(f"The target model is **{abs(1 - target.time_ratio):.0%} {faster}** and needs "
                f"**{target.memory_ratio:.2f}x** the source's activation memory "
                f"(input {tuple(speed.input_shapes['target'])}).")
    st.caption(f"{speed.repeats} interleaved runs on {speed.device}, {speed.threads} threads; "
               f"memory: {speed.memory_method}.")
