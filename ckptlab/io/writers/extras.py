"""What ``keep_extras`` writes back beside the tensors, and what it names instead of dropping.

A training checkpoint holds more than weights: optimizer state (tensors in nested dicts),
epoch and step counters, hyper-parameters (often an object of a class ckptlab never imports,
read as an inert placeholder). An output is never riskier to load than its input, so a
``.pt`` output holds only what ``torch.load(weights_only=True)`` reads: tensors (streamed one
at a time), plain containers, primitives, torch's own allowlisted types. numpy arrays become
tensors and numpy scalars Python numbers (``Converted`` says so); placeholders are never
written back as a class reference (a class name is code to ``weights_only=False``), so an
entry holding one is ``NotKept``, with the reason. A ``.safetensors`` output can only hold
text metadata: plain values go there as JSON; the rest is ``NotKept``. Nothing is dropped
or changed silently.
"""
from __future__ import annotations

import itertools
import json
from collections import Counter, OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch

from ckptlab.errors import CheckpointError, quote
from ckptlab.io.formats.base import LazyTensor
from ckptlab.io.formats.numpy_values import NumpyArray
from ckptlab.io.formats.placeholder import Placeholder

__all__ = ["MAX_DEPTH", "MAX_TEXT_NODES", "TEXT_ONLY", "WEIGHTS_ONLY", "NotKept", "Converted", "dotted",
    "for_pt", "for_safetensors", "obj_name"]

MAX_DEPTH = 256
MAX_TEXT_NODES = 100_000  # a metadata entry bigger than this is not metadata (and DAGs stay cheap)
# Exact types a .pt output holds as they are: each pickles to nothing or to a global in
# torch's weights_only allowlist (bytes: _codecs.encode; complex, bytearray; dtype, device).
_SCALARS = frozenset({type(None), bool, int, float, complex, str, bytes, bytearray, torch.dtype, torch.device})
_DICTS = frozenset({dict, OrderedDict, Counter})  # defaultdict: its factory is a global
TEXT_ONLY = "safetensors metadata holds text only: write .pt to keep it"
WEIGHTS_ONLY = "which torch.load(weights_only=True) would not read"


@dataclass(frozen=True)
class NotKept:
    """An entry of the source the output could not hold, and why (one line)."""

    key: str
    reason: str

    def __str__(self) -> str:
        return f"{self.key} ({self.reason})"


@dataclass(frozen=True)
class Converted:
    """An entry kept with its values but not its type (a numpy array written as a tensor)."""

    key: str
    how: str

    def __str__(self) -> str:
        return f"{self.key} ({self.how})"


class _Unkeepable(Exception):
    def __init__(self, reason: str):
        self.reason = reason


def dotted(path: tuple) -> str:
    return ".".join(str(p) for p in path)


def for_pt(beside: Iterable[tuple[tuple, Any]], tensor_keys: Iterable[str], nest: bool
           ) -> tuple[list[tuple[tuple, Any]], list[NotKept], list[Converted]]:
    """The entries a ``.pt`` output writes, those it cannot, and those it converted.

    Flat output (``nest=False``) puts entries at its top level beside the tensors; an entry
    that sat deeper (beside a nested state_dict) needs ``nest`` to keep its place.
    """
    taken = set(tensor_keys)
    kept, not_kept, converted = [], [], []
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
        changes: list[str] = []
        known = len(memo)
        try:
            kept.append((path, _writable(value, memo, 0, changes)))
        except _Unkeepable as exc:
            not_kept.append(NotKept(key, exc.reason))
            for made in list(itertools.islice(reversed(memo), len(memo) - known)):
                del memo[made]  # half-built containers: another entry sharing one rebuilds it
            continue
        if changes:
            converted.append(Converted(key, "; ".join(sorted(set(changes)))))
    return kept, not_kept, converted


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
def _writable(value: Any, memo: dict[int, Any], depth: int, changes: list[str]) -> Any:
    """``value`` as a weights_only load reads it (numpy values converted, noted in
    ``changes``); anything else raises ``_Unkeepable``. Shared parts stay shared (memo)."""
    kind = type(value)
    if kind in _SCALARS or isinstance(value, (LazyTensor, torch.Tensor)):
        return value
    if _is_numpy_scalar(value):
        changes.append(f"numpy {value.dtype} scalar written as a Python {type(value.item()).__name__}")
        return value.item()
    if isinstance(value, NumpyArray):  # noted for every entry that holds it, converted once
        out = memo[id(value)] if id(value) in memo else memo.setdefault(id(value), _numpy_tensor(value))
        changes.append(f"numpy array written as a torch.{str(out.dtype).removeprefix('torch.')} tensor")
        return out
    if depth > MAX_DEPTH:
        raise _Unkeepable(f"nested deeper than {MAX_DEPTH} levels")
    if id(value) in memo:
        return memo[id(value)]
    if kind in _DICTS:
        out = kind()
        memo[id(value)] = out
        for k, v in value.items():
            out[_writable(k, memo, depth + 1, changes)] = _writable(v, memo, depth + 1, changes)
        return out
    if kind is list:
        out = []
        memo[id(value)] = out
        out.extend(_writable(v, memo, depth + 1, changes) for v in value)
        return out
    if kind in (tuple, set, torch.Size):
        out = kind(_writable(v, memo, depth + 1, changes) for v in value)
        memo[id(value)] = out
        return out
    if isinstance(value, Placeholder):
        raise _Unkeepable(f"an object of class {quote(obj_name(value))}, {WEIGHTS_ONLY}")
    raise _Unkeepable(f"a {quote(kind.__name__)} value, {WEIGHTS_ONLY}")


def _is_numpy_scalar(value: Any) -> bool:
    """A numpy number the reader made (np.float64 etc.); never imports numpy itself."""
    return type(value).__module__ == "numpy" and hasattr(value, "item") and getattr(value, "shape", None) == ()


def _numpy_tensor(value: NumpyArray) -> torch.Tensor:
    """The array's (checked) values as a tensor: torch.load(weights_only=True) reads no numpy."""
    try:
        return torch.from_numpy(value.to_numpy())
    except (CheckpointError, TypeError, ValueError) as exc:
        reason = exc.message if isinstance(exc, CheckpointError) else str(exc)
        raise _Unkeepable(f"a numpy array torch cannot hold ({reason})") from None


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

