"""Shape fixes: for each mismatched row, op / dim / fill with the resulting shape previewed.

Applying one adds ``adapt[target_key]`` to the recipe, and the row turns ``adapted``.
Adapted rows stay listed so their fix can be changed or removed.
"""
from __future__ import annotations

from typing import Any

import streamlit as st

from ckptlab.recipe import edits as editing
from ckptlab.recipe.adapt_spec import AdaptSpec
from ckptlab.vocab import ADAPT_FILLS, ADAPT_OPS
from ckptlab.ui import icons, state, text

MAX_ROWS = 40
_ERRORS = state.Slot("_fix_errors", factory=dict)     # target key -> the last Apply's error
AUTO = "auto"


def _set(key: str, source_shape: tuple, target_shape: tuple, op: str, dim: Any, fill: str) -> None:
    try:
        new = editing.with_shape_fix(state.recipe(), key, source_shape, target_shape, op,
                                     None if dim == AUTO else int(dim), fill)
        state.set_recipe(new)
        _ERRORS.get()[key] = None
    except Exception as exc:  # noqa: BLE001 - shown on the row
        _ERRORS.get()[key] = text.one_line(exc)


def _remove(key: str) -> None:
    state.set_recipe(editing.without_shape_fix(state.recipe(), key))


def _suggested(alignment: Any, key: str) -> AdaptSpec | None:
    for s in alignment.suggestions:
        spec = (s.rule.get("adapt") or {}).get(key) if isinstance(s.rule, dict) else None
        if spec is not None:
            return AdaptSpec.from_dict(spec, key)
    return None


def show(alignment: Any) -> None:
    rows = [r for r in alignment.rows if r.status == "mismatch" or (r.status == "adapted" and r.source_shape)]
    if not rows:
        st.info("No shape to fix: every mapped source tensor has its target's shape.")
        return
    st.caption("Each mismatched tensor: pick how the source is fitted to the target shape. `pad` grows a dim "
               "(fill: zeros, mean, init = the target's own values, repeat = tile and rescale), `truncate` keeps "
               "the leading slices, `resize` pads/cuts every dim, `sum` collapses channels, `reinit` keeps the "
               "target's value.")
    box = st.container()           # scrolls with the page (no box scrolling inside it)
    with box:
        for row in rows[:MAX_ROWS]:
            _fix_row(alignment, row)
    if len(rows) > MAX_ROWS:
        st.caption(f"{len(rows) - MAX_ROWS} more rows: fix them with `adapt` entries in the recipe YAML.")


def _fix_row(alignment: Any, row: Any) -> None:
    key, src, dst = row.target, tuple(row.source_shape), tuple(row.target_shape)
    current = state.recipe().adapt.get(key)
    start = alignment.effective_recipe.adapt.get(key) or _suggested(alignment, key) or editing.default_fix(src, dst)
    with st.container(border=True):
        name, op_col, dim_col, fill_col, result, action = st.columns([4, 1.4, 1, 1.4, 3, 1.4],
                                                                     vertical_alignment="bottom")
        name.markdown(f"{icons.mark(row.status)} {text.md(key)}  \n{src} -> {dst}")
        op = op_col.selectbox("op", ADAPT_OPS, index=ADAPT_OPS.index(start.op), key=f"fix_op_{key}")
        dims = [AUTO, *range(len(dst))]
        dim = dim_col.selectbox("dim", dims, index=dims.index(start.dim if start.dim is not None else AUTO),
                                key=f"fix_dim_{key}")
        fill = fill_col.selectbox("fill", ADAPT_FILLS, index=ADAPT_FILLS.index(start.fill), key=f"fix_fill_{key}",
                                  disabled=op not in ("pad", "resize"))
        try:
            _, shape = editing.shape_fix(src, dst, op, None if dim == AUTO else int(dim), fill, key=key)
            result.markdown(f"-> `{shape}` :green[fits]")
            fits = True
        except Exception as exc:  # noqa: BLE001 - the preview says why it does not fit
            result.markdown(f":red[{text.md(exc)}]")
            fits = False
        action.button("Apply" if current is None else "Update", key=f"fix_apply_{key}", disabled=not fits,
                      on_click=_set, args=(key, src, dst, op, dim, fill), type="primary")
        if current is not None:
            action.button("Remove", key=f"fix_remove_{key}", on_click=_remove, args=(key,))
        error = _ERRORS.get().get(key)
        if error:
            st.error(text.md(error), icon=icons.ERROR)
