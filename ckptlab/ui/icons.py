"""How each status looks, so the metrics, the table, the fixes and the legends speak the
same colours. No emoji: headless browsers and many Linux desktops have no colour-emoji
font and would draw boxes, so colour comes from Streamlit's own markdown colours, the
table's coloured labels and Material icons (a font Streamlit ships). Every status has a
colour of its own (exact and renamed are told apart at a glance)."""
from __future__ import annotations

STATUS_ORDER = ("exact", "renamed", "adapted", "converted", "mismatch", "missing", "unused", "conflict")
# Streamlit's markdown colour names (metric labels, fixes, legends) ...
STATUS_COLOURS = {
    "exact": "green", "renamed": "blue", "adapted": "violet", "converted": "rainbow", "mismatch": "orange",
    "missing": "red", "unused": "gray", "conflict": "yellow",
}
# ... and the same colours as hex for the table's labels (Streamlit's palette).
STATUS_HEX = {
    "exact": "#21c354", "renamed": "#1c83e1", "adapted": "#803df5", "converted": "#00c0f2", "mismatch": "#ff8700",
    "missing": "#ff2b2b", "unused": "#a3a8b8", "conflict": "#faca2b",
}
STATUS_HELP = {
    "exact": "same key, same shape: loads as is",
    "renamed": "a rule or accepted suggestion mapped it",
    "adapted": "a shape fix makes it fit",
    "converted": "a conversion computed it from the source tensors listed (transpose, split, ...)",
    "mismatch": "mapped, but the shape does not fit: needs a shape fix",
    "missing": "target key with no source: keeps the target's own value (starts fresh)",
    "unused": "source key that feeds nothing",
    "conflict": "two or more source keys map to this target key",
}
OK, WARN, LOUD, ERROR = ":material/check_circle:", ":material/warning:", ":material/campaign:", ":material/error:"


def mark(status: str) -> str:
    """A square in the status colour (markdown)."""
    return f":{STATUS_COLOURS.get(status, 'gray')}[■]"


def label(status: str) -> str:
    """The status name after its coloured square (markdown: metric labels, fixes, legends)."""
    return f"{mark(status)} {status}"


def legend(statuses: tuple[str, ...] = STATUS_ORDER) -> str:
    return "  ".join(label(s) for s in statuses)


def pill_column(title: str = "status"):
    """The table's status column: a coloured label per row (Streamlit's multiselect column
    in a read-only frame draws its options as coloured pills; cells hold ``[status]``)."""
    import streamlit as st

    return st.column_config.MultiselectColumn(
        title, options=list(STATUS_ORDER), color=[STATUS_HEX[s] for s in STATUS_ORDER], width="small",
        help="; ".join(f"**{s}**: {STATUS_HELP[s]}" for s in STATUS_ORDER))
