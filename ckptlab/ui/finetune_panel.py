"""The fine-tune plan: which parameters to freeze, the optimizer's param groups (pretrained
at lr, new at lr x multiplier), and the code that does it."""
from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from ckptlab.ui import kept, state, text
from ckptlab.ui.verify_panel import model_of

FINETUNE_MARK = "# -- Fine-tune plan"
NEEDS_MODEL = ("The fine-tune plan needs the target as a model (which tensors are parameters, how modules nest), "
               "not only a checkpoint. In the sidebar, upload the target's **config.json** beside its checkpoint "
               "(a transformers model), choose **Model definition**, or use a demo pair's **Sample** target.")


CODE_PX = 300            # the plan's code box: the view below its picker fits a 1400x1000 window


def show(alignment: Any, target: Any) -> None:
    from ckptlab.align.new_rows import new_rows
    from ckptlab.models import finetune

    if not target.model:
        st.info(NEEDS_MODEL, icon=":material/info:")
        return
    st.subheader("Fine-tune plan")
    st.caption("Pretrained parameters (fed by the source) train at the learning rate, new ones at lr x the "
               "multiplier; frozen ones get requires_grad=False and stay out of the optimizer. A scheduler "
               "scales every group alike, so the ratio holds.")
    model = model_of(target.model, target.kwargs).meta_model
    grown = new_rows(alignment)
    grown_as_new = True
    if grown:
        grown_as_new = st.checkbox(
            f"Train the {len(grown)} grown tensor(s) whole at lr x multiplier (their new rows start untrained)",
            key=kept.remembered("ft_grown_as_new", True), **kept.STICKY)
        st.caption("New rows from an adapter: " + "; ".join(text.code(n.describe()) for n in grown[:8])
                   + ("; ..." if len(grown) > 8 else "") + (
                       ". Trained whole at the new rate." if grown_as_new else
                       ". Left at the base rate: the new rows will learn slowly."))
    a, b, c = st.columns([1.2, 2, 2])
    freeze_loaded = a.checkbox("Freeze the pretrained parameters", key=kept.remembered("ft_freeze_loaded", False), **kept.STICKY)
    # No placeholders: a grey example in an empty field reads as a value already there.
    freeze = b.text_input("Also freeze parameters matching (regex, searched; e.g. `^backbone\\.`)", key=kept.remembered("ft_freeze", ""), **kept.STICKY)
    as_new = c.text_input("Also train at lr x multiplier (regex, searched; e.g. `^head\\.`)", key=kept.remembered("ft_as_new", ""), **kept.STICKY)
    d, e, _ = st.columns([1, 1, 2.2])
    # typed values survive a switch to another view (``kept.remembered``)
    lr = d.number_input("learning rate", min_value=0.0, format="%g", key=kept.remembered("ft_lr", 1e-3), **kept.STICKY)
    mult = e.number_input("new params lr x", min_value=0.0, format="%g", key=kept.remembered("ft_mult", 10.0), **kept.STICKY)
    pretrained = state.guarded(st, lambda: finetune.pretrained_keys(alignment, as_new, grown_as_new))
    if pretrained is None:
        return
    plan = state.guarded(st, lambda: finetune.plan(model, pretrained, lr=lr, new_lr_mult=mult,
                                                   freeze_loaded=freeze_loaded, freeze=freeze or None))
    if plan is None:
        return
    groups = pd.DataFrame(plan.groups, columns=["name", "lr", "tensors", "params"])
    st.dataframe(groups, hide_index=True, key="ft_groups")
    frozen = ", ".join(text.code(m or '(whole model)') for m in plan.frozen_modules[:20]) or "none"
    new = plan.new_names
    st.caption(f"Frozen: {plan.frozen_tensors} tensors ({plan.frozen_params:,} parameters); modules: {frozen}. "
               f"New or trained as new: {len(new)} tensors"
               + (f" ({', '.join(text.code(n) for n in new[:8])}{'...' if len(new) > 8 else ''})" if new else "") + ".")
    code = state.guarded(st, lambda: _code(alignment, lr, mult, freeze_loaded, freeze, pretrained), what="code: ")
    if code:
        st.markdown("**The plan as code** (paste into your training script; the whole remap script is under "
                    "Download)")
        st.code(code, language="python", height=CODE_PX)     # scrolls inside: the view fits one screen


def _code(alignment: Any, lr: float, mult: float, freeze_loaded: bool, freeze: str, pretrained: list[str]) -> str:
    from ckptlab.models import codegen

    script = codegen.snippet(alignment, lr=lr, new_lr_mult=mult, freeze_loaded=freeze_loaded,
                             freeze=freeze or None, pretrained=pretrained)
    start = script.find(FINETUNE_MARK)          # only the fine-tune part; the whole script if not found
    if start < 0:
        return script
    return "import re\n\n" + script[start:].replace('\n\nif __name__ == "__main__":\n    main()\n', "\n")
