"""The fine-tune plan: which parameters to freeze, the optimizer's param groups (pretrained
at lr, new at lr x multiplier), and the code that does it."""
from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from ckptlab.ui import state
from ckptlab.ui.verify_panel import model_of


def show(alignment: Any, target: Any) -> None:
    from ckptlab import finetune, merge

    if not target.model:
        return
    st.subheader("Fine-tune plan")
    report = merge.plan(alignment, on_mismatch="keep-target").report()
    model = model_of(target.model, target.kwargs).meta_model
    a, b, c, d = st.columns([1.4, 2, 1, 1])
    freeze_loaded = a.checkbox("Freeze the pretrained parameters", key="ft_freeze_loaded")
    freeze = b.text_input("Also freeze parameters matching (regex)", key="ft_freeze", placeholder="^backbone\\.")
    lr = c.number_input("learning rate", min_value=0.0, value=1e-3, format="%g", key="ft_lr")
    mult = d.number_input("new params lr x", min_value=0.0, value=10.0, format="%g", key="ft_mult")
    plan = state.guarded(st, lambda: finetune.plan(model, report, lr=lr, new_lr_mult=mult,
                                                   freeze_loaded=freeze_loaded, freeze=freeze or None))
    if plan is None:
        return
    groups = pd.DataFrame(plan.groups, columns=["name", "lr", "tensors", "params"])
    st.dataframe(groups, hide_index=True)
    frozen = ", ".join(f"`{m or '(whole model)'}`" for m in plan.frozen_modules[:20]) or "none"
    st.caption(f"Frozen: {plan.frozen_tensors} tensors ({plan.frozen_params:,} parameters); modules: {frozen}. "
               f"New (not pretrained): {len(plan.new_names)} tensors.")
    code = state.guarded(st, lambda: _code(alignment, lr, mult, freeze_loaded, freeze), what="code: ")
    if code:
        st.code(code, language="python")


def _code(alignment: Any, lr: float, mult: float, freeze_loaded: bool, freeze: str) -> str:
    try:
        from ckptlab import codegen
    except ImportError:
        return ""
    return codegen.snippet(alignment, lr=lr, new_lr_mult=mult, freeze_loaded=freeze_loaded,
                           freeze=freeze or None)
