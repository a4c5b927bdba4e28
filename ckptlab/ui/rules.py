"""The rule editor, the explicit map and the recipe (YAML to copy, load, download, reset).

The editors are drawn *before* the alignment is computed (the Alignment view's
``prepare``), so an edit shows in the table on the same run. Grid rows become a recipe
through ``ckptlab.recipe.edits``; an invalid rule is reported beside the grid and the last
valid recipe stays in force.
"""
from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from ckptlab.recipe import edits as editing
from ckptlab.recipe.model import Recipe
from ckptlab.recipe.parsing import text_syntax
from ckptlab.vocab import RULE_KINDS
from ckptlab.ui import icons, kept, state, text

_RULE_HELP = {
    "strip_prefix": "remove this prefix from keys that have it",
    "add_prefix": "put this prefix in front of every key",
    "replace": "Python re.sub(pattern, replacement)",
    "drop": "regex: matching source keys feed nothing",
    "keep": "regex: only matching source keys are used",
}
UPLOAD_VERSION = state.Slot("_recipe_upload_version", 0)   # part of the recipe uploader's key: a new one is empty
_UPLOADED = state.Slot("_recipe_upload_id")                   # the loaded recipe file (loaded once)
_BASES = state.Slot("_grid_bases", factory=dict)              # grid name -> (widget key, frame drawn from)
GRID_HEIGHT = 250


def _grid(name: str, build: Any) -> tuple[str, pd.DataFrame]:
    """The grid's widget key and the frame it starts from. Rebuilt from the recipe when the
    recipe changed elsewhere, or when the grid missed a run (another view was open: its
    pending rows were dropped, so it must start again from the recipe, which has them)."""
    key = kept.editor_key(f"{name}_grid_{state.editor_version()}")
    bases = _BASES.get()
    saved = bases.get(name)
    if saved is None or saved[0] != key:
        saved = bases[name] = (key, build())
    return saved


def _grid_base(name: str, build: Any) -> pd.DataFrame:
    """The frame only (for grids keyed ``<name>_grid_<version>``, e.g. the conversions'):
    rebuilt from the recipe whenever ``_grid`` would give a new key."""
    return _grid(name, build)[1]


def _rules_frame() -> pd.DataFrame:
    frame = pd.DataFrame(editing.rules_to_rows(state.recipe()), columns=list(editing.RULE_COLUMNS))
    return frame.astype({"position": "float64", "kind": "object", "pattern": "object", "replacement": "object"})


def _map_frame() -> pd.DataFrame:
    return pd.DataFrame(editing.map_to_rows(state.recipe()), columns=list(editing.MAP_COLUMNS)).astype("object")


def rules_editor() -> None:
    """The rule grid: one line per rule, applied in order to every source key."""
    key, base = _grid("rules", _rules_frame)
    st.caption("Applied in order to every source key. Add a line at the bottom, delete with the row's checkbox, "
               "reorder by editing **position**.", help="\n".join(f"- `{k}`: {v}" for k, v in _RULE_HELP.items()))
    edited = st.data_editor(
        base, key=key, num_rows="dynamic",
        hide_index=True, width="stretch", height=GRID_HEIGHT,
        column_config={
            "position": st.column_config.NumberColumn("position", format="%g", help="order of application",
                                                      width="small"),
            "kind": st.column_config.SelectboxColumn("kind", options=list(RULE_KINDS), required=True),
            "pattern": st.column_config.TextColumn("pattern / prefix", width="medium"),
            "replacement": st.column_config.TextColumn("replacement (replace only)", width="medium"),
        })
    records = edited.to_dict("records")
    _apply(lambda: editing.with_rule_rows(state.recipe(), records))
    waiting = editing.incomplete_rows(records)
    if waiting:
        st.caption(f"Line {', '.join(map(str, waiting))}: not applied until it has a kind and a pattern.")


def map_editor() -> None:
    """Explicit mappings: target key <- source key; they win over the rules."""
    key, base = _grid("map", _map_frame)
    st.caption("Target key <- source key; explicit mappings win over the rules.")
    mapped = st.data_editor(
        base, key=key, num_rows="dynamic", hide_index=True,
        width="stretch", height=GRID_HEIGHT,
        column_config={"target": st.column_config.TextColumn("target key", width="large"),
                       "source": st.column_config.TextColumn("source key", width="large")})
    _apply(lambda: editing.with_map_rows(state.recipe(), mapped.to_dict("records")))


def _apply(build: Any) -> None:
    new = state.guarded(st, build)
    if new is not None and new != state.recipe():
        state.set_recipe(new, from_editor=True)


def upload_key() -> str:
    return f"recipe_upload_{UPLOAD_VERSION.get()}"


def clear_upload() -> None:
    """A new uploader (an empty one): after a reset or a new pair, no old file stays shown."""
    UPLOAD_VERSION.bump()
    _UPLOADED.clear()


def recipe_loader() -> None:
    """Load a recipe file (before the alignment, so it applies in this run)."""
    uploaded = st.file_uploader("Load a recipe (YAML or JSON)", type=["yaml", "yml", "json"], key=upload_key())
    if uploaded is None or _UPLOADED.get() == uploaded.file_id:
        return
    try:
        new = Recipe.from_text(uploaded.getvalue().decode("utf-8", errors="replace"), syntax=text_syntax(uploaded.name))
    except Exception as exc:  # noqa: BLE001 - one line beside the uploader
        st.error(text.md(text.error_text(exc, uploaded.name)), icon=icons.ERROR)
        return
    _UPLOADED.set(uploaded.file_id)
    state.set_recipe(new)
    st.rerun()       # rebuild the grids from the loaded recipe


def _reset() -> None:
    state.set_recipe(Recipe())
    clear_upload()


def recipe_panel(alignment: Any) -> None:
    """The recipe as YAML (the one that produced the table, auto-applied suggestions
    included), to copy or download; and a reset."""
    recipe = alignment.effective_recipe
    if recipe != state.recipe():
        st.caption("Includes the suggestions applied automatically.")
    st.code(recipe.to_yaml(), language="yaml", height=180)
    download, reset = st.columns(2)
    download.download_button("Download recipe.yaml", data=recipe.to_yaml(), file_name="recipe.yaml",
                             mime="application/x-yaml", key="download_recipe_view", on_click="ignore")
    reset.button("Reset recipe", key="reset_recipe", on_click=_reset, disabled=recipe == Recipe())
