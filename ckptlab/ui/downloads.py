"""Downloads: the merged checkpoint (built with a progress bar into the session's folder),
the recipe, the report as CSV/JSON and a standalone PyTorch snippet."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import streamlit as st

from ckptlab.errors import CheckpointError
from ckptlab.ui import icons, state

FORMATS = (".safetensors", ".pt")
BUILT = "_built"


def show(alignment: Any) -> None:
    from ckptlab import merge

    st.subheader("Download")
    try:
        plan = merge.plan(alignment)
    except CheckpointError as exc:
        plan = None
        st.error(f"Merged checkpoint refused: {exc}. Resolve these rows (rules, explicit map, shape fixes) first.",
                 icon=icons.ERROR)
    merged_col, other_col = st.columns(2)
    with merged_col:
        _merged(plan, alignment)
    with other_col:
        _others(plan, alignment)


def _merged(plan: Any, alignment: Any) -> None:
    from ckptlab import write

    suffix = st.radio("Merged checkpoint format", FORMATS, horizontal=True, key="out_format")
    key = (state.alignment_key(), suffix)
    if st.button("Build merged checkpoint", key="build_merged", disabled=plan is None, type="primary"):
        folder = state.session_dir() / "merged"
        folder.mkdir(parents=True, exist_ok=True)
        previous = st.session_state.get(BUILT)
        if previous:
            Path(previous[1]).unlink(missing_ok=True)
            st.session_state[BUILT] = None
        out = folder / f"merged{suffix}"
        bar = st.progress(0.0, text="writing...")

        def progress(done: int, total: int, tensor_key: str) -> None:
            bar.progress(min(1.0, done / total) if total else 1.0, text=f"writing {tensor_key}")

        written = state.guarded(st, lambda: write.write(plan, out, progress=progress), what="writing failed: ")
        if written is not None:
            bar.progress(1.0, text=f"done: {len(plan.outputs())} tensors")
            st.session_state[BUILT] = (key, str(out))
    built = st.session_state.get(BUILT)
    if plan is not None and built and built[0] == key and Path(built[1]).exists():
        path = Path(built[1])
        st.download_button(f"Download merged{suffix} ({path.stat().st_size:,} bytes)", data=path.read_bytes(),
                           file_name=f"merged{suffix}", mime="application/octet-stream", key="download_merged",
                           on_click="ignore")
    elif plan is not None:
        st.caption("Build the file, then download it. Every target key is written: mapped, adapted, "
                   "or the target's own value.")


def _others(plan: Any, alignment: Any) -> None:
    from ckptlab import merge

    if plan is None:
        plan = state.guarded(st, lambda: merge.plan(alignment, on_mismatch="keep-target"), what="report: ")
    if plan is not None:
        # Deferred: a 10,000-row report is built only when its button is clicked.
        a, b = st.columns(2)
        a.download_button("Report (CSV)", data=lambda: plan.report().to_csv(), file_name="ckptlab-report.csv",
                          mime="text/csv", key="download_report_csv", on_click="ignore")
        b.download_button("Report (JSON)", data=lambda: plan.report().to_json(), file_name="ckptlab-report.json",
                          mime="application/json", key="download_report_json", on_click="ignore")
    recipe = alignment.effective_recipe
    st.download_button("Recipe (YAML)", data=recipe.to_yaml(), file_name="recipe.yaml", mime="application/x-yaml",
                       key="download_recipe", on_click="ignore")
    snippet = state.guarded(st, lambda: _snippet(alignment), what="snippet: ")
    if snippet:
        st.download_button("PyTorch snippet (remap.py)", data=snippet, file_name="remap.py", mime="text/x-python",
                           key="download_snippet", on_click="ignore")
        with st.expander("The snippet: the same remap in plain PyTorch, no ckptlab needed"):
            st.code(snippet, language="python")


def _snippet(alignment: Any) -> str:
    try:
        from ckptlab import codegen
    except ImportError:
        return ""
    return codegen.snippet(alignment)
