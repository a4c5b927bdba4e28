"""What ``keep_extras`` writes back beside the tensors, and what it names instead of dropping.

A training checkpoint holds more than weights: optimizer state (tensors in nested dicts),
epoch and step counters, hyper-parameters (often an object of a class ckptlab never imports,
read as an inert placeholder). A ``.pt`` output keeps all of it: plain values as they are,
tensors streamed one at a time, placeholders rebuilt as the class and state the file recorded
(``Rebuild``), so a ``torch.load`` that can import the class gets the object back. A
``.safetensors`` output can only hold text metadata: plain values go there as JSON; the rest
is listed as ``NotKept`` with the reason, for the report and the CLI to say. Nothing is
dropped silently.
"""
from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch

from ckptlab.io.formats.base import LazyTensor
from ckptlab.io.formats.placeholder import Placeholder
from ckptlab.io.writers.torch_pickle import Rebuild

MAX_DEPTH = 256
MAX_TEXT_NODES = 100_000  # a metadata entry bigger than this is not metadata (and DAGs stay cheap)
_SCALARS = (type(None), bool, int, float, complex, str, bytes, bytearray, torch.dtype, torch.device)
TEXT_ONLY = "safetensors metadata holds text only: write .pt to keep it"


@dataclass(frozen=True)
class NotKept:
    """An entry of the source the output could not hold, and why (one line)."""

    key: str
    reason: str

    def __str__(self) -> str:
        return f"{self.key} ({self.reason})"


class _Unkeepable(Exception):
    def __init__(self, reason: str):
        self.reason = reason


def dotted(path: tuple) -> str:
    return ".".join(str(p) for p in path)


def for_pt(beside: Iterable[tuple[tuple, Any]], tensor_keys: Iterable[str], nest: bool
           ) -> tuple[list[tuple[tuple, Any]], list[NotKept]]:
    """The entries a ``.pt`` output writes (placeholders as ``Rebuild``), and those it cannot.

    Flat output (``nest=False``) puts entries at its top level beside the tensors; an entry
    that sat deeper (beside a nested state_dict) needs ``nest`` to keep its place.
    """
    taken = set(tensor_keys)
    kept, not_kept = [], []
    memo: dict[int, Any] = {}
    for path, value in beside:
        key = dotted(path)
        if not nest and len(path) > 1:
            not_kept.append(NotKept(key, f"it sits inside {dotted(path[:-1])!r} beside the weights: "
                                         "--nest keeps the file's layout"))
            continue
        if not nest and str(path[0]) in taken:
            not_kept.append(NotKept(key, "an output tensor has the same key"))
            continue
        try:
            kept.append((path, _writable(value, memo, 0)))
        except _Unkeepable as exc:
            not_kept.append(NotKept(key, exc.reason))
    return kept, not_kept


def for_safetensors(beside: Iterable[tuple[tuple, Any]], reserved: Iterable[str]
                    ) -> tuple[dict[str, str], list[NotKept]]:
    """Plain entries as safetensors metadata (strings as they are, the rest as JSON)."""
    reserved = set(reserved)
    meta, not_kept = {}, []
    for path, value in beside:
        key = dotted(path)
        if key in reserved:
            not_kept.append(NotKept(key, "ckptlab uses that metadata key itself"))
            continue
        reason = _why_not_text(value, 0, set(), [MAX_TEXT_NODES])
        if reason:
            not_kept.append(NotKept(key, f"{reason}; {TEXT_ONLY}"))
            continue
        try:
            meta[key] = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        except (TypeError, ValueError) as exc:
            not_kept.append(NotKept(key, f"not JSON ({exc}); {TEXT_ONLY}"))
    return meta, not_kept


# -- walks ---------------------------------------------------------------------------------
def _writable(value: Any, memo: dict[int, Any], depth: int) -> Any:
    """``value`` with placeholders turned into ``Rebuild``s; shared parts stay shared (memo)."""
    if isinstance(value, _SCALARS) and not isinstance(value, Placeholder):
        return value
    if isinstance(value, (LazyTensor, torch.Tensor)):
        return value
    if depth > MAX_DEPTH:
        raise _Unkeepable(f"nested deeper than {MAX_DEPTH} levels")
    if id(value) in memo:
        return memo[id(value)]
    kind = type(value)
    if isinstance(value, dict) and kind.__module__ in ("builtins", "collections") and kind is not defaultdict:
        out = kind()
        memo[id(value)] = out
        for k, v in value.items():
            out[_writable(k, memo, depth + 1)] = _writable(v, memo, depth + 1)
        return out
    if kind is list:
        out = []
        memo[id(value)] = out
        out.extend(_writable(v, memo, depth + 1) for v in value)
        return out
    if kind in (tuple, set, frozenset, torch.Size):
        out = kind(_writable(v, memo, depth + 1) for v in value)
        memo[id(value)] = out
        return out
    if isinstance(value, Placeholder):
        return _rebuild(value, memo, depth)
    raise _Unkeepable(f"a {kind.__name__} value ckptlab cannot write back")


def _rebuild(obj: Placeholder, memo: dict[int, Any], depth: int) -> Rebuild:
    record = obj.__dict__
    if record.get("kwargs"):
        raise _Unkeepable(f"a {obj.qualname} object built with keyword arguments (not written back)")
    name = type(obj).__name__
    module = obj.qualname[: -len(name) - 1] if obj.qualname.endswith("." + name) else obj.qualname.rpartition(".")[0]
    out = Rebuild(module, name)
    memo[id(obj)] = out
    walk = lambda v: _writable(v, memo, depth + 1)  # noqa: E731
    out.args = tuple(walk(a) for a in record.get("args", ()))
    out.state = walk(record.get("state")) if record.get("state") is not None else None
    out.items = [(walk(k), walk(v)) for k, v in record.get("items", {}).items()]
    out.list_items = [walk(v) for v in record.get("list_items", [])]
    return out


def _why_not_text(value: Any, depth: int, seen: set[int], budget: list[int]) -> str:
    """Why ``value`` cannot be JSON metadata ("" when it can)."""
    budget[0] -= 1
    if budget[0] < 0:
        return f"more than {MAX_TEXT_NODES:,} values"
    if isinstance(value, (LazyTensor, torch.Tensor)):
        return "it holds tensors"
    if isinstance(value, Placeholder):
        return f"an object of class {obj_name(value)}"
    if isinstance(value, (type(None), bool, int, float, str)):
        return ""
    if depth > MAX_DEPTH or id(value) in seen:
        return "nested too deep, or holds itself"
    if isinstance(value, dict) and all(isinstance(k, (str, int, float, bool, type(None))) for k in value):
        seen = seen | {id(value)}
        return next((r for v in value.values() if (r := _why_not_text(v, depth + 1, seen, budget))), "")
    if type(value) in (list, tuple):
        seen = seen | {id(value)}
        return next((r for v in value if (r := _why_not_text(v, depth + 1, seen, budget))), "")
    return f"a {type(value).__name__} value"


def obj_name(value: Placeholder) -> str:
    return value.display_name or value.qualname

