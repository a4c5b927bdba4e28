"""Top of the page: what is compared, counts by status, the warnings (loud when few keys
are fed) — the first things to read, above every view."""
from __future__ import annotations

from typing import Any

import streamlit as st

from ckptlab.ui import icons, text
from ckptlab.ui.icons import STATUS_ORDER


def intro(pair: Any, using_sample_pair: bool, compact: bool = False) -> None:
    """One title line and, for a demo pair, what it shows (the page must leave room for a
    view; the compact layout says only which pair)."""
    st.markdown("#### ckptlab: checkpoint lab", help=(
        "Each row is one tensor: a target key (what the model expects) beside the source key that would feed it, "
        "with a status and the reason. Fix what does not fit, then download the merged checkpoint."))
    if using_sample_pair:
        st.caption(f"Demo pair: **{text.md(pair.title)}**." + ("" if compact else f" {text.md(pair.explain)}"))


def counts(alignment: Any) -> None:
    summary = alignment.summary
    columns = st.columns(len(STATUS_ORDER))
    for column, status in zip(columns, STATUS_ORDER):
        column.metric(icons.label(status), f"{summary.get(status, 0):,}", help=icons.STATUS_HELP[status])


def warning_lines(alignment: Any) -> tuple[str | None, list[str]]:
    """(the loud few-keys-fed warning or None, every other warning) as plain text.

    Only the core's ``fed_warning`` (few or no target keys fed: story 5's empty load) is loud;
    a load of 15 of 16 keys with one warning must not look like an empty one. Recipe entries
    that match nothing here are warned about too (one line naming them): a typo, or a recipe
    kept from other inputs, would otherwise change nothing, silently."""
    loud = getattr(alignment, "fed_warning", None)
    others = [str(w) for w in (getattr(alignment, "warnings", None) or []) if str(w) != loud]
    stale = stale_lines(alignment)
    if stale:
        others.append(f"recipe entries that match nothing in these checkpoints (kept; they change nothing): "
                      f"{'; '.join(stale[:6])}" + (f" and {len(stale) - 6} more" if len(stale) > 6 else ""))
    return loud, others


def stale_lines(alignment: Any) -> list[str]:
    """The visitor's recipe entries that match nothing here (``ckptlab.align.stale``)."""
    from ckptlab.ui import state

    return state.stale_lines(alignment)


def warnings(alignment: Any) -> None:
    loud, others = warning_lines(alignment)
    total, fed = len(alignment.target), len(alignment.fed)
    if loud:
        st.error(f"**Nearly nothing would load:** {text.md(loud)}", icon=icons.LOUD)
    elif others:
        st.info(f"{fed:,} of {text.plural(total, 'target key')} are fed by the source; "
                f"{text.plural(len(others), 'warning')} below.", icon=icons.WARN)
    else:
        st.success(f"{fed:,} of {text.plural(total, 'target key')} are fed by the source.", icon=icons.OK)
    for line in others:
        st.warning(text.md(line), icon=icons.WARN)
