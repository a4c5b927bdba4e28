"""Top of the page: what is being compared, counts by status, and the loud warning."""
from __future__ import annotations

from typing import Any

import streamlit as st

from ckptlab.ui import icons
from ckptlab.ui.icons import STATUS_ORDER


def intro(pair: Any, using_sample_pair: bool) -> None:
    st.title("ckptlab: checkpoint lab")
    st.markdown(
        "Each row below is one tensor: a **target** key (what the model expects) beside the **source** "
        "key that would feed it, with a status and the reason. Fix what does not fit with rules, "
        "suggestions and shape fixes, then download the merged checkpoint.")
    if using_sample_pair:
        st.caption(f"Demo pair: **{pair.title}**. {pair.explain}")


def counts(alignment: Any) -> None:
    summary = alignment.summary
    columns = st.columns(len(STATUS_ORDER))
    for column, status in zip(columns, STATUS_ORDER):
        column.metric(icons.label(status), summary.get(status, 0), help=icons.STATUS_HELP[status])
    total = len(alignment.target)
    fed = len(alignment.fed)
    if alignment.warning:
        st.error(f"**Nearly nothing would load:** {alignment.warning}", icon=icons.LOUD)
    else:
        st.success(f"{fed} of {total} target keys are fed by the source.", icon=icons.OK)
