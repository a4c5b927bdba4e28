"""One emoji per status, so the table, the metrics and the fixes speak the same colours
(the treemap uses ``ckptlab.modtree.STATUS_COLOURS``)."""
from __future__ import annotations

STATUS_ORDER = ("exact", "renamed", "adapted", "mismatch", "missing", "unused", "conflict")
STATUS_ICONS = {
    "exact": "🟢", "renamed": "🟩", "adapted": "🔵", "mismatch": "🟠",
    "missing": "🔴", "unused": "⚪", "conflict": "🟣",
}
