"""Parameters grouped by module, for the treemap: where do the parameters sit, and which
parts of the model are fed, adapted or left out?

Each alignment row is a leaf sized by its parameter count (target shape; source shape for
unused source keys, which hang under a separate root so they never mix with target
modules). A module takes the *worst* status among its parameters, so a problem deep inside
a big block still colours the block. Very large checkpoints are shown at module level.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd

TARGET_ROOT = "target"
UNUSED_ROOT = "unused source keys"
SEVERITY = ("conflict", "mismatch", "missing", "unused", "adapted", "converted", "renamed", "exact")   # worst first
STATUS_COLOURS = {
    "exact": "#2e7d32", "renamed": "#66bb6a", "adapted": "#29b6f6", "converted": "#3949ab", "mismatch": "#ef6c00",
    "missing": "#e53935", "unused": "#9e9e9e", "conflict": "#8e24aa",
}
COLUMNS = ("id", "parent", "label", "value", "status", "tensors")


def _worst(a: str, b: str) -> str:
    return a if SEVERITY.index(a) <= SEVERITY.index(b) else b


def _numel(shape: Sequence[int] | None) -> int:
    return max(1, math.prod(shape)) if shape else 1


def node_id(root: str, path: str) -> str:
    return f"{root}/{path}" if path else root


def module_frame(rows: Iterable[Any], max_nodes: int = 3000) -> pd.DataFrame:
    """Treemap nodes (``id``, ``parent``, ``label``, ``value``, ``status``, ``tensors``).

    Values are totals (a module's value is the sum of its children: plotly's
    ``branchvalues="total"``). When there are more than ``max_nodes`` nodes, the deepest
    levels are dropped until it fits; the kept modules keep their totals and statuses.
    """
    nodes: dict[str, dict[str, Any]] = {}

    def add(nid: str, parent: str, label: str, depth: int, value: int, status: str) -> None:
        node = nodes.get(nid)
        if node is None:
            nodes[nid] = {"id": nid, "parent": parent, "label": label, "value": value, "status": status,
                          "tensors": 1, "depth": depth}
        else:
            node["value"] += value
            node["status"] = _worst(node["status"], status)
            node["tensors"] += 1

    for row in rows:
        if row.target is not None:
            root, key, shape = TARGET_ROOT, row.target, row.target_shape
        else:
            root, key, shape = UNUSED_ROOT, row.source, row.source_shape
        value = _numel(shape)
        add(root, "", root, 0, value, row.status)
        parts = key.split(".")
        for depth in range(1, len(parts) + 1):
            path = ".".join(parts[:depth])
            parent = node_id(root, ".".join(parts[:depth - 1]))
            add(node_id(root, path), parent, parts[depth - 1], depth, value, row.status)

    frame = pd.DataFrame(list(nodes.values()), columns=[*COLUMNS, "depth"])
    if frame.empty:
        return frame[list(COLUMNS)]
    depth = int(frame["depth"].max())
    while len(frame) > max_nodes and depth > 1:
        depth -= 1
        frame = frame[frame["depth"] <= depth]
    return frame[list(COLUMNS)].reset_index(drop=True)


def selection_prefix(selected_id: str) -> tuple[str, str]:
    """A clicked treemap id -> (root, dotted key prefix); ``""`` prefix means the whole root."""
    root, _, path = selected_id.partition("/")
    return root, path


def under(key: str | None, prefix: str) -> bool:
    """Whether ``key`` is ``prefix`` or lies inside module ``prefix`` (whole name parts)."""
    if key is None:
        return False
    return not prefix or key == prefix or key.startswith(prefix + ".")
