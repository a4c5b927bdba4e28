"""A conversion's groups found once per alignment, however many stages ask.

Grading a known conversion finds each of its entries' groups (concrete source keys -> target
keys, shapes previewed); the rows, once the suggestion is applied, find the very same groups
again: the same entry offered the same keys. At 20,000 keys each pass cost ~0.1 s of CPU.
Within ``remembering()`` (``align`` holds it for the call) the groups one conversion finds
among one set of offered keys are kept and handed out again when the same conversion is
offered the same keys (same names, same order, same shapes); a group takes the position of the
entry that asks (``Group.index``, the only thing that differs). Outside it nothing is kept.
Only groups found are kept: a conversion that matches nothing is asked again, so a strict
caller still gets its error. The memo lives in a context variable: concurrent alignments (one
per thread) each have their own, and it is dropped when the call ends.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import replace

from ckptlab.recipe.conversion import Conversion
from ckptlab.recipe.groups import Group, find_groups

__all__ = ["groups_among", "remembering"]

# (from patterns, to patterns) -> [(the conversion, the offered (key, shape) pairs, its groups)]
_Memo = dict[tuple, list[tuple[Conversion, list, list[Group]]]]
_memo: ContextVar[_Memo | None] = ContextVar("ckptlab_group_memo", default=None)


@contextmanager
def remembering() -> Iterator[None]:
    """Keep the groups found in the body (a nested call shares the outer memo)."""
    token = _memo.set({}) if _memo.get() is None else None
    try:
        yield
    finally:
        if token is not None:
            _memo.reset(token)


def groups_among(conversion: Conversion, offered: Mapping[str, tuple], index: int, strict: bool) -> list[Group]:
    """``find_groups([conversion], offered, strict, start=index).groups``, found once per memo."""
    memo = _memo.get()
    if memo is None:
        return find_groups([conversion], offered, strict=strict, start=index).groups
    items = list(offered.items())
    kept = memo.setdefault((conversion.sources, conversion.targets), [])
    for known, seen, groups in kept:
        if known == conversion and seen == items:
            return groups if groups[0].index == index else [replace(g, index=index) for g in groups]
    groups = find_groups([conversion], offered, strict=strict, start=index).groups
    if groups:
        kept.append((conversion, items, groups))
    return groups
