"""The conversion editor (from, to, ops; the resulting shapes previewed, errors beside each
line) and "invert recipe". Thin: the logic lives in ``ckptlab.recipe.conversion_edits``.

Drawn before the alignment, like the rule editor, so an edit shows in the table on the
same run; a line that does not work stays out of the recipe and says why.
"""
from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from ckptlab.recipe import conversion_edits as convert_edit
from ckptlab.recipe.ops import OPS
from ckptlab.ui import icons, state, text
from ckptlab.ui.rules import _grid_base

_HELP = ("Each line maps source key pattern(s) to target key pattern(s) through tensor ops. `{i}`: any part "
         "of a key without a dot; several patterns: separate them with commas. Ops, applied in order, "
         "separated by `;`: " + ", ".join(f"`{op}`" for op in OPS) + " — e.g. `transpose`, `chunk: 0`, "
         "`rope_permute: {heads: 8}`. A conversion claims its keys before the rules; the explicit map still wins.")


def _frame() -> pd.DataFrame:
    frame = pd.DataFrame(convert_edit.conversions_to_rows(state.recipe()), columns=list(convert_edit.CONVERT_COLUMNS))
    return frame.astype({"position": "float64", "from": "object", "to": "object", "ops": "object"})


_SHOW_INVERSE = state.Slot("_show_inverse", False)


def _shapes(side: Any) -> dict[str, tuple[int, ...]] | None:
    ck = getattr(side, "ckpt", None)
    if ck is None:
        return None
    return state.cached(("shapes",) + tuple(getattr(side, "identity", ())) + (ck.container,),
                        lambda: {k: tuple(ck.info(k).shape) for k in ck.keys()})


def edit(slot: Any, source: Any, target: Any) -> None:
    """The grid, then one line per entry: what it makes of this source, or its error."""
    version = state.editor_version()
    with slot:
        st.subheader("Conversions")
        st.caption(_HELP)
        edited = st.data_editor(
            _grid_base("convert", _frame), key=f"convert_grid_{version}", num_rows="dynamic", hide_index=True,
            width="stretch",
            column_config={
                "position": st.column_config.NumberColumn("position", format="%g", width="small"),
                "from": st.column_config.TextColumn("from (source key pattern)", width="medium"),
                "to": st.column_config.TextColumn("to (target key pattern)", width="medium"),
                "ops": st.column_config.TextColumn("ops", width="medium"),
            })
        shapes = _shapes(source)
        if shapes is None:
            return
        built = state.guarded(st, lambda: convert_edit.with_conversion_rows(
            state.recipe(), edited.to_dict("records"), shapes, _shapes(target)))
        if built is None:
            return
        new, checks = built
        for check in checks:
            if check.ok:
                st.text(check.message)
            else:
                st.error(text.md(check.message), icon=icons.ERROR)
        if new != state.recipe():
            state.set_recipe(new, from_editor=True)


def invert(where: Any, alignment: Any) -> None:
    """A button that shows the recipe undoing this one (to convert a merged file back)."""
    with where:
        if st.button("Invert recipe", key="invert_recipe",
                     help="the recipe that turns the merged checkpoint back into the source, bit for bit"):
            _SHOW_INVERSE.set(True)
        if not _SHOW_INVERSE.get():
            return
        recipe = alignment.effective_recipe
        inverse = state.guarded(st, lambda: recipe.inverted(partial=True, shapes=alignment.source), what="invert: ")
        if inverse is None:
            return
        skipped = list(getattr(inverse, "skipped", []))
        if skipped:
            st.warning(text.md("Left out (cannot be undone): " + "; ".join(skipped)), icon=icons.WARN)
        st.markdown("**Inverse recipe** (remap the merged checkpoint with it, the source as target)")
        st.code(inverse.to_yaml(), language="yaml")
        st.download_button("Download inverse recipe (YAML)", inverse.to_yaml(), file_name="inverse_recipe.yaml",
                           mime="application/x-yaml", key="download_inverse")
