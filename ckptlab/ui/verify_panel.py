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
from ckptlab.io.model_target import model_target, parse_kwargs
from ckptlab.ui import kept, state, text

RESULTS = state.Slot("_verify_results", factory=dict)
LISTED = 12          # key names listed per line of the warm-start report


def model_of(spec: str, kwargs: dict) -> Any:
    """The model definition as a (cached) meta-device target, built only if the app's
    allowlist allows it (a spec is code; here a visitor typed it)."""
    from ckptlab.ui.inputs import model_allowlist

    return state.cached(("model", spec, json.dumps(kwargs, sort_keys=True)),
                        lambda: model_target(spec, kwargs, allow=model_allowlist()))


def merged_tensors(alignment: Any) -> dict:
    """The merged checkpoint in memory (the same plan the download writes)."""
    from ckptlab import merge

    return state.derived("merged", lambda: {o.key: o.produce() for o in merge.plan(alignment).outputs()})


def show(alignment: Any, source: Any, target: Any) -> None:
    st.subheader("Verification")
    warm_start_report(alignment)
    results = RESULTS.get()
    run_key = state.alignment_key()
    if not target.model:
        where = st.container()
        if where.button("Prove", key="verify_prove", help=PROVE_HELP):
            results[("prove", run_key)] = state.guarded(where, lambda: _prove(alignment, "", ""))
        _show_proof(results.get(("prove", run_key)))
        st.caption("The model checks need the target as a model definition: pick a demo pair, or choose "
                   "'Model definition' for the target in the sidebar, or upload the target's config.json beside it. "
                   "Prove also works with a transformers config.json beside each file.")
        return
    st.markdown(f"**Model checks.** Target model: {text.code(target.model)} {_kwargs_text(target.kwargs)}")
    spec_col, kwargs_col = st.columns(2)
    src_spec = spec_col.text_input("Source model definition (package.module:callable, e.g. "
                                   "sample_ckpts.models:FontUNet), for the function and speed checks",
                                   key=kept.remembered(f"verify_src_spec_{source.model}", source.model or ""), **kept.STICKY)
    src_kwargs_text = kwargs_col.text_input("Source model kwargs (JSON)", key=kept.remembered(
        f"verify_src_kwargs_{source.model}", json.dumps(source.kwargs or {})), **kept.STICKY)
    sizes_col, budget_col, threads_col = st.columns([2, 1, 1])
    sizes_text = sizes_col.text_input(
        "Input sizes for the speed check (comma-separated: image side in pixels for conv models, sequence "
        "length for token models, batch for linear ones)",
        key=kept.remembered(f"verify_sizes_{target.model}", _default_sizes(target)), **kept.STICKY)
    budget = budget_col.number_input("Time budget (s, all sizes)", min_value=0.5, max_value=600.0, step=1.0,
                                     key=kept.remembered("verify_budget", 10.0), **kept.STICKY)
    threads = threads_col.number_input("torch threads", min_value=1, max_value=64, step=1,
                                       key=kept.remembered("verify_threads", 1), **kept.STICKY,
                                       help="1 gives steady ratios on a busy machine")
    load_col, func_col, speed_col, prove_col = st.columns(4)
    where = st.container()           # errors of the buttons show here, above the results
    if load_col.button("Load report (strict)", key="verify_load"):
        results[("load", run_key)] = state.guarded(where, lambda: _load(alignment, target))
    if func_col.button("Check function preservation", key="verify_function", disabled=not src_spec.strip()):
        results[("function", run_key)] = state.guarded(
            where, lambda: _function(alignment, target, src_spec, src_kwargs_text))
    if speed_col.button("Compare speed and memory", key="verify_speed", disabled=not src_spec.strip()):
        bar = where.progress(0.0, text=f"Timing both models in interleaved pairs, up to {budget:g} s...")
        results[("speed", run_key)] = state.guarded(
            where, lambda: _speed(target, src_spec, src_kwargs_text, sizes_text, budget, int(threads),
                                  lambda done, total: bar.progress(done / total, text=f"{done} of {total} sizes")))
        bar.empty()
    if prove_col.button("Prove", key="verify_prove", help=PROVE_HELP):
        results[("prove", run_key)] = state.guarded(where, lambda: _prove(alignment, src_spec, src_kwargs_text))
    if not src_spec.strip():
        st.caption("Give the source model's definition to compare outputs, speed and memory.")
    _show_results(results, run_key)


def _kwargs_text(kwargs: dict | None) -> str:
    """The kwargs as a code span (typed by a visitor: never markdown)."""
    # an uploaded config.json sits in the session's folder: its path is shown as the name the visitor knows
    return text.code(state.error_message(json.dumps(kwargs, sort_keys=True), "config.json"), 300) if kwargs else ""


def _names(keys: list[str]) -> str:
    shown = ", ".join(text.code(k) for k in keys[:LISTED])
    return shown + (f" and {len(keys) - LISTED} more (filter the table by status)" if len(keys) > LISTED else "")


def _mismatches(items: list[dict]) -> str:
    shown = ", ".join(f"{text.code(m['key'])} {tuple(m['checkpoint_shape'])} vs model {tuple(m['model_shape'])}"
                      for m in items[:LISTED])
    return shown + (f" and {len(items) - LISTED} more" if len(items) > LISTED else "")


def warm_start_report(alignment: Any) -> None:
    """What ``model.load_state_dict(renamed_source, strict=False)`` would report with this
    recipe, in torch's own categories (``ckptlab.models.warmstart.incompatible_keys``)."""
    from ckptlab.models.warmstart import incompatible_keys

    view = incompatible_keys(alignment)
    counts = alignment.summary
    converted = f", {counts['converted']} converted" if counts.get("converted") else ""
    lines = [f"**Loaded**: {len(view.loaded)} ({counts['exact']} by name, {counts['renamed']} renamed{converted})"
             + (f", **adapted**: {len(view.adapted)} (fitted by the recipe's adapters: `ckptlab.load_into` and "
                "the merged file load them; a plain `load_state_dict` of the renamed source would raise a size "
                "mismatch on them)" if view.adapted else ""),
             f"**Missing keys** (`missing_keys`: keep the model's own value, start fresh): {len(view.missing_keys)}"
             + (f": {_names(view.missing_keys)}" if view.missing_keys else ""),
             f"**Unexpected keys** (`unexpected_keys`: source keys that feed nothing): {len(view.unexpected_keys)}"
             + (f": {_names(view.unexpected_keys)}" if view.unexpected_keys else "")]
    if view.size_mismatch:
        lines.append(f"**Size mismatch**: {len(view.size_mismatch)}: {_mismatches(view.size_mismatch)}. "
                     "`load_state_dict` RAISES on these, even with strict=False (`RuntimeError: size mismatch "
                     "for ...`): fix them under Shape fixes, or drop them with a rule")
    if view.conflicts:
        lines.append(f"**Conflicts**: {len(view.conflicts)}: "
                     + ", ".join(f"{text.code(c['key'])} <- {len(c['sources'])} sources" for c in view.conflicts[:LISTED])
                     + " (a renamed dict would silently keep one; ckptlab refuses to build the merge)")
    if view.dropped:
        lines.append(f"Dropped by the recipe's rules (torch never sees them): {len(view.dropped)} source keys")
    with st.container(border=True, key="warm_start_report"):
        st.markdown("**Warm-start report**: what `model.load_state_dict(renamed_source, strict=False)` would say "
                    "with this recipe's renames (`ckptlab.load_into` returns the same keys)  \n" + "  \n".join(lines))


def _load(alignment: Any, target: Any) -> dict:
    from ckptlab.models.load_check import describe_misfit, load_report

    report = load_report(merged_tensors(alignment), model_of(target.model, target.kwargs))
    return {"summary": describe_misfit(report), "report": report}


def source_as_model_expects(source_ckpt: Any, src_model: Any) -> tuple[dict, str]:
    """The source checkpoint under the source model's own key names, and what was done.

    A source that needed fixing for the target (a ``module.`` prefix, a container) may not
    load strictly into its own model either: only sure fixes (``auto="high"``) are applied,
    and every model key must get its tensor, shapes unchanged, or the check is refused.
    """
    from ckptlab import merge
    from ckptlab.align.matcher import align

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


def kept_rows(alignment: Any) -> set[int]:
    """Rows of dim 0 that adapters kept from the source (10 for a head padded 10 -> 100,
    or truncated 100 -> 10): the only output widths a grown or cut head can be compared at."""
    kept = set()
    for row in alignment.by_status("adapted"):
        if row.source_shape and row.target_shape and row.source_shape[0] != row.target_shape[0]:
            kept.add(min(row.source_shape[0], row.target_shape[0]))
    return kept


def _function(alignment: Any, target: Any, src_spec: str, src_kwargs_text: str) -> dict:
    from ckptlab.models.function_check import compare_function

    src_kwargs = parse_kwargs(src_kwargs_text)
    src_model = model_of(src_spec, src_kwargs)
    src_tensors, fixed = source_as_model_expects(alignment.source, src_model)
    check = compare_function(src_model, src_tensors, model_of(target.model, target.kwargs),
                             merged_tensors(alignment), kept_rows=kept_rows(alignment)).to_dict()
    # markdown for a caption: the specs as code spans, the applied fixes (key names) escaped
    check["compared"] = (f"source model {text.code(src_spec)} {_kwargs_text(src_kwargs)} holding the source "
                         "checkpoint" + (f" ({text.md(fixed, 600)})" if fixed else "")
                         + f" vs target model {text.code(target.model)} {_kwargs_text(target.kwargs)} holding the "
                         "merged checkpoint, on the same seeded random input")
    check["fresh"] = len(alignment.by_status("missing")) + sum(
        r.adapt is not None and r.adapt.op == "reinit" for r in alignment.by_status("adapted"))
    return check


def _default_sizes(target: Any) -> str:
    from ckptlab.models.inputs import default_sizes

    try:
        return ", ".join(map(str, default_sizes(model_of(target.model, target.kwargs).meta_model)))
    except CheckpointError:
        return ""


def parse_sizes(text: str) -> list[int]:
    """``"16, 32 64"`` -> ``[16, 32, 64]``; anything else is a one-line error."""
    parts = [p for p in text.replace(",", " ").split() if p]
    if not parts:
        raise CheckpointError("give at least one input size (e.g. 16, 32, 64)")
    try:
        sizes = [int(p) for p in parts]
    except ValueError:
        raise CheckpointError(f"input sizes must be whole numbers separated by commas, got {text!r}") from None
    if any(s < 1 for s in sizes):
        raise CheckpointError(f"input sizes must be positive, got {text!r}")
    return sorted(set(sizes))


def _speed(target: Any, src_spec: str, src_kwargs_text: str, sizes_text: str, budget: float, threads: int,
           progress: Any = None) -> Any:
    from ckptlab.models.speed import compare_speed

    models = {"source": model_of(src_spec, parse_kwargs(src_kwargs_text)),
              "target": model_of(target.model, target.kwargs)}
    return compare_speed(models, sizes=parse_sizes(sizes_text), budget_s=float(budget), threads=threads,
                         progress=progress)


PROVE_HELP = ("Build both models (the source from the definition above or a config.json beside its file), "
              "run seeded inputs through the source model and the target model holding the merged result, "
              "and compare: outputs equal, or the first target module whose output differs")


def _prove(alignment: Any, src_spec: str, src_kwargs_text: str) -> dict:
    """``ckptlab.prove`` on this alignment; the source definition typed above, when given, is built
    (under the app's allowlist) as the source model."""
    from ckptlab.models.proof import prove

    source_model = None
    if src_spec.strip():
        source_model = model_of(src_spec.strip(), parse_kwargs(src_kwargs_text)).build("cpu")
    return prove(alignment, source_model=source_model).to_dict()


def _show_proof(proof: dict | None) -> None:
    """The proof as inert text: module names come from the models, reasons name files."""
    if not proof:
        return
    if proof["proved"]:
        st.success(f"Proved: outputs equal (max |diff| {proof['max_abs']:.2g})")
    elif proof["first_divergence"] is not None:
        st.warning(f"Not proved: the first diverging module is {text.code(proof['first_divergence'])} "
                   f"(outputs max |diff| {proof['max_abs']:.2g})")
    else:
        st.warning("Not proved")
    st.caption(text.md(proof["reason"], 800))


def _show_results(results: dict, run_key: tuple) -> None:
    _show_proof(results.get(("prove", run_key)))
    load = results.get(("load", run_key))
    if load:
        ok = not any(load["report"].values())
        (st.success if ok else st.warning)(f"Strict load of the merged checkpoint: {text.md(load['summary'], 600)}")
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
        f"target input {tuple(check['target_input_shape'])}; compared: {text.md(check['outputs'])}).{why}")
    st.caption(f"Compared: {check['compared']}. Extra target input channels, if any, are filled with zeros and "
               "with random values; every fill is listed.")
    st.dataframe(pd.DataFrame(check["fills"]), hide_index=True)


def speed_frame(speed: Any) -> pd.DataFrame:
    """One line per input size: both models' times and peaks, the ratio and its spread."""
    return pd.DataFrame([{
        "size": p.size, "source input": str(p.input_shapes["source"]), "target input": str(p.input_shapes["target"]),
        "source ms": round(p.median_ms["source"], 3), "target ms": round(p.median_ms["target"], 3),
        "time ratio": round(p.ratio, 3), "ratio IQR": f"{p.ratio_low:.2f}-{p.ratio_high:.2f}", "pairs": p.pairs,
        "source peak MB": round(p.peak_bytes["source"] / 2**20, 3),
        "target peak MB": round(p.peak_bytes["target"] / 2**20, 3), "memory ratio": round(p.memory_ratio, 3),
        "noisy": p.noisy} for p in speed.points])


def speed_figure(speed: Any) -> Any:
    """Time and peak memory against input size for both models, and the ratio with its IQR."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    sizes = [p.size for p in speed.points]
    fig = make_subplots(rows=1, cols=3, horizontal_spacing=0.08,
                        subplot_titles=("median time per pass (ms)", "peak memory (MB)",
                                        "time ratio target / source (IQR)"))
    for name, colour, dash in zip(speed.names, ("#1f77b4", "#ff7f0e"), ("solid", "dash")):
        line = {"color": colour, "dash": dash}                 # dashed: equal curves stay both visible
        fig.add_trace(go.Scatter(x=sizes, y=[p.median_ms[name] for p in speed.points], name=name,
                                 mode="lines+markers", line=line, legendgroup=name), 1, 1)
        fig.add_trace(go.Scatter(x=sizes, y=[p.peak_bytes[name] / 2**20 for p in speed.points], name=name,
                                 mode="lines+markers", line=line, legendgroup=name, showlegend=False), 1, 2)
    fig.add_trace(go.Scatter(
        x=sizes, y=[p.ratio for p in speed.points], mode="markers", name="ratio", showlegend=False,
        marker={"color": ["#d62728" if p.noisy else "#2ca02c" for p in speed.points], "size": 9},
        error_y={"type": "data", "symmetric": False, "array": [p.ratio_high - p.ratio for p in speed.points],
                 "arrayminus": [p.ratio - p.ratio_low for p in speed.points]}), 1, 3)
    fig.add_hline(y=1.0, line_dash="dot", line_color="grey", row=1, col=3)
    for col in (1, 2, 3):
        fig.update_xaxes(title_text="input size", type="log" if len(sizes) > 2 else "linear", row=1, col=col)
    fig.update_layout(height=320, margin={"t": 40, "b": 10, "l": 10, "r": 10},
                      legend={"orientation": "h", "y": -0.25})
    return fig


def _show_speed(speed: Any) -> None:
    for point in speed.points:
        (st.warning if point.noisy else st.info)(speed.verdict(point))
    st.plotly_chart(speed_figure(speed), key="speed_chart")
    st.dataframe(speed_frame(speed), hide_index=True, key="speed_table")
    st.caption(f"Each size: both models warmed up, then timed in interleaved pairs (alternating order) until the "
               f"median ratio was known within {speed.tolerance:.0%} or the size's share of the {speed.budget_s:g} s "
               f"budget ran out; ratio = target time / source time per pair, median and interquartile range (IQR). "
               f"{speed.threads} torch thread(s) on {speed.device}. Memory: {speed.memory_method}. Parameters: "
               f"source {speed.params['source']:,}, target {speed.params['target']:,}.")
