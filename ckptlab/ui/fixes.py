"""Shape fixes: for each mismatched row, the conversions its structure allows first (a
transpose, permute, a part of a fused tensor, the alignment's suggested conversion), then an
adapter (op / dim / fill) with the resulting shape previewed.

Applying a conversion adds a ``convert`` entry and the row turns ``converted``; applying an
adapter adds ``adapt[target_key]`` and the row turns ``adapted``. No lossy op is ever
preselected, and a lossy or fresh-start choice on a tensor the structure says is transposed or
fused is named beside the row before Apply (``ckptlab.align.fix_offers``). Adapted rows stay
listed so their fix can be changed or removed.
"""
from __future__ import annotations

from typing import Any

import streamlit as st

from ckptlab.align import fix_offers
from ckptlab.recipe import edits as editing
from ckptlab.recipe.adapt_spec import AdaptSpec
from ckptlab.vocab import ADAPT_FILLS, ADAPT_OPS, LOSSY_ADAPT_OPS
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


def _convert(key: str, fragment: dict) -> None:
    try:
        state.set_recipe(editing.with_conversion_fix(state.recipe(), key, fragment))
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
    st.caption("Each mismatched tensor: a **conversion** when its shape says the values are only laid out "
               "another way (transposed, permuted, a part of a fused tensor): it keeps every value. Otherwise an "
               "**adapter** fits the source to the target shape. `pad` grows a dim "
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
    choices = fix_offers.offers(row, alignment.suggestions) if row.status == "mismatch" else []
    start = alignment.effective_recipe.adapt.get(key) or _preselect(alignment, key, src, dst, bool(choices))
    with st.container(border=True):
        st.markdown(f"{icons.mark(row.status)} {text.md(key)}  \n{src} -> {dst}")
        if choices:
            _conversion_line(key, dst, choices)
        op_col, dim_col, fill_col, result, action = st.columns([2.2, 1, 1.4, 5.8, 1.4], vertical_alignment="bottom")
        op = op_col.selectbox("adapter op" if choices else "op", ADAPT_OPS, key=f"fix_op_{key}",
                              index=ADAPT_OPS.index(start.op) if start is not None else None, placeholder="choose")
        dims = [AUTO, *range(len(dst))]
        dim = dim_col.selectbox("dim", dims, key=f"fix_dim_{key}",
                                index=dims.index(start.dim if start is not None and start.dim is not None else AUTO))
        fill = fill_col.selectbox("fill", ADAPT_FILLS, index=ADAPT_FILLS.index(start.fill if start else "zeros"),
                                  key=f"fix_fill_{key}", disabled=op not in ("pad", "resize"))
        fits = _preview(result, key, src, dst, op, dim, fill)
        note = fix_offers.lossy_note(op, row.source, src, dst)
        action.button("Apply" if current is None else "Update", key=f"fix_apply_{key}", disabled=not fits,
                      on_click=_set, args=(key, src, dst, op, dim, fill), type="secondary" if choices else "primary")
        if current is not None:
            action.button("Remove", key=f"fix_remove_{key}", on_click=_remove, args=(key,))
        if note is not None and note[1]:
            st.warning(text.md(note[0]), icon=icons.WARN)
        elif note is not None:
            st.caption(f":orange[{text.md(note[0])}]")
        error = _ERRORS.get().get(key)
        if error:
            st.error(text.md(error), icon=icons.ERROR)


def _preselect(alignment: Any, key: str, src: tuple, dst: tuple, structured: bool) -> AdaptSpec | None:
    """The adapter shown first: none when a conversion is offered, never a lossy one."""
    if structured:
        return None
    suggested = _suggested(alignment, key)
    if suggested is not None and suggested.op not in LOSSY_ADAPT_OPS:
        return suggested
    return editing.default_fix(src, dst)


def _conversion_line(key: str, dst: tuple, choices: list) -> None:
    """The conversions this row can take, the first one chosen; one Apply."""
    pick_col, result, action = st.columns([4.6, 5.8, 1.4], vertical_alignment="bottom")
    labels = [c.label for c in choices]
    label = pick_col.selectbox("conversion (keeps every value)", labels, index=0, key=f"fix_convert_{key}")
    chosen = choices[labels.index(label)] if label in labels else choices[0]
    lines = editing.fragment_entries(chosen.fragment)
    where = f" ({text.plural(len(lines), 'entry', 'entries')}, the whole family)" if chosen.family else ""
    result.markdown(f"-> `{dst}` :green[same values, converted]{where}")
    action.button("Apply", key=f"fix_convert_apply_{key}", on_click=_convert, args=(key, chosen.fragment),
                  type="primary")


def _preview(where: Any, key: str, src: tuple, dst: tuple, op: str | None, dim: Any, fill: str) -> bool:
    """The shape the adapter gives, or why it does not fit; whether it fits."""
    if op is None:
        where.caption("choose an adapter op to preview it")
        return False
    try:
        _, shape = editing.shape_fix(src, dst, op, None if dim == AUTO else int(dim), fill, key=key)
    except Exception as exc:  # noqa: BLE001 - the preview says why it does not fit
        where.markdown(f":red[{text.md(exc)}]")
        return False
    lossy = op in LOSSY_ADAPT_OPS
    where.markdown(f"-> `{shape}` " + (":orange[fits, lossy]" if lossy else ":green[fits]"))
    return True
