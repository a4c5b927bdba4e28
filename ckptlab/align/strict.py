"""Strict readiness: would this job pass ``load_state_dict(strict=True)`` on purpose, with nothing
ckptlab warned about?

PyTorch's ``strict=True`` refuses a missing or an unexpected key; ``strict=False`` hides an empty
load. A strict job here is the useful middle: every target key is fed or kept on purpose
(``keep_target`` in the recipe, a ``reinit`` adapter), every source key is used or dropped on
purpose (a ``drop``/``keep`` rule), nothing conflicts or mismatches, and no warning stands. What
is not so is listed, one line per kind, for ``al.strict_problems``, ``ckptlab align --strict`` and
the app's build badge.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ckptlab.vocab import Status

__all__ = ["strict_problems"]

SHOWN = 3  # keys named per line


def strict_problems(rows: Sequence[Any], warnings: Sequence[str], recipe: Any) -> list[str]:
    """One line per problem kind, then every warning; empty when the job is strict-clean."""
    missing = [r.target for r in rows if r.status == Status.MISSING and not r.kept]
    unused = [r.source for r in rows if r.status == Status.UNUSED]
    dropped = _dropped(unused, recipe)
    unexpected = [key for key in unused if key not in dropped]
    mismatch = [r.target for r in rows if r.status == Status.MISMATCH]
    conflict = [r.target for r in rows if r.status == Status.CONFLICT]
    out = []
    if missing:
        out.append(f"{_count(missing, 'target key')} not fed: {_names(missing)} "
                   "(feed them, or keep them on purpose with keep_target)")
    if unexpected:
        out.append(f"{_count(unexpected, 'source key')} used by nothing: {_names(unexpected)} "
                   "(map them, or drop them on purpose with a drop rule)")
    if mismatch:
        out.append(f"{_count(mismatch, 'shape mismatch', 'es')}: {_names(mismatch)} (set a shape fix or a conversion)")
    if conflict:
        out.append(f"{_count(conflict, 'conflict')}: {_names(conflict)} (two sources map to one target)")
    return out + [f"warning: {w}" for w in warnings]


def _dropped(source_keys: list[str], recipe: Any) -> set[str]:
    """The source keys a ``drop``/``keep`` rule of the recipe removed on purpose (one pass)."""
    if recipe is None or not source_keys:
        return set()
    return {key for key, (new, _) in recipe.rename(source_keys).items() if new is None}


def _count(keys: list, what: str, plural: str = "s") -> str:
    return f"{len(keys)} {what}{'' if len(keys) == 1 else plural}"


def _names(keys: list[str]) -> str:
    shown = ", ".join(repr(k) for k in keys[:SHOWN])
    return shown + (f" and {len(keys) - SHOWN} more" if len(keys) > SHOWN else "")
