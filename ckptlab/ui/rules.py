"""The rule editor, the explicit map and the recipe as YAML.

Drawn *before* the alignment is computed (into a slot lower on the page), so an edit shows
in the table on the same run. Grid rows become a recipe through ``ckptlab.editing``; an
invalid rule is reported beside the grid and the last valid recipe stays in force.
"""
from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from ckptlab import editing
from ckptlab.recipe import RULE_KINDS, Recipe
from ckptlab.ui import state

_RULE_HELP = {
    "strip_prefix": "remove this prefix from keys that have it",
    "add_prefix": "put this prefix in front of every key",
    "replace": "Python re.sub(pattern, replacement)",
    "drop": "regex: matching source keys feed nothing",
    "keep": "regex: only matching source keys are used",
}


def _grid_base(name: str, build: Any) -> pd.DataFrame:
    """The frame a grid starts from; rebuilt only when the recipe changed elsewhere."""
    version = st.session_state.get(state.EDITOR_VERSION, 0)
    saved = st.session_state.get(f"_{name}_base")
    if saved is None or saved[0] != version:
        saved = (version, build())
        st.session_state[f"_{name}_base"] = saved
    return saved[1]


def _rules_frame() -> pd.DataFrame:
    frame = pd.DataFrame(editing.rules_to_rows(state.recipe()), columns=list(editing.RULE_COLUMNS))
    return frame.astype({"position": "float64", "kind": "object", "pattern": "object", "replacement": "object"})


def _map_frame() -> pd.DataFrame:
    return pd.DataFrame(editing.map_to_rows(state.recipe()), columns=list(editing.MAP_COLUMNS)).astype("object")


def edit(slot: Any) -> Any:
    """Draw the editors into ``slot``; return a container for the effective recipe."""
    version = st.session_state.get(state.EDITOR_VERSION, 0)
    with slot:
        st.subheader("Rules")
        st.caption("Applied in order to every source key. Add a line at the bottom of the grid, delete with the "
                   "row's checkbox, reorder by editing **position**. Kinds: "
                   + "; ".join(f"`{k}`: {v}" for k, v in _RULE_HELP.items()) + ".")
        edited = st.data_editor(
            _grid_base("rules", _rules_frame), key=f"rules_grid_{version}", num_rows="dynamic",
            hide_index=True, width="stretch",
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

        st.markdown("**Explicit mappings** (target key <- source key; they win over the rules)")
        mapped = st.data_editor(
            _grid_base("map", _map_frame), key=f"map_grid_{version}", num_rows="dynamic", hide_index=True,
            width="stretch",
            column_config={"target": st.column_config.TextColumn("target key", width="large"),
                           "source": st.column_config.TextColumn("source key", width="large")})
        _apply(lambda: editing.with_map_rows(state.recipe(), mapped.to_dict("records")))
        _upload_recipe()
        return st.container()


def _apply(build: Any) -> None:
    new = state.guarded(st, build)
    if new is not None and new != state.recipe():
        state.set_recipe(new, from_editor=True)


def _upload_recipe() -> None:
    uploaded = st.file_uploader("Load a recipe (YAML or JSON)", type=["yaml", "yml", "json"], key="recipe_upload")
    if uploaded is None or st.session_state.get("_recipe_upload_id") == uploaded.file_id:
        return
    new = state.guarded(st, lambda: Recipe.from_text(uploaded.getvalue().decode("utf-8", errors="replace")),
                        what=f"{uploaded.name}: ")
    if new is not None:
        st.session_state["_recipe_upload_id"] = uploaded.file_id
        state.set_recipe(new)
        st.rerun()       # rebuild the grids from the loaded recipe


def effective(where: Any, alignment: Any) -> None:
    """The recipe as YAML (the one that produced the table, auto-applied suggestions included)."""
    with where:
        recipe = alignment.effective_recipe
        st.markdown("**Recipe** (YAML: copy it, load it back above, download it below)")
        if recipe != state.recipe():
            st.caption("Includes the suggestions applied automatically.")
        st.code(recipe.to_yaml(), language="yaml")
