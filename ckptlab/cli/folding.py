"""Table lines for per-tensor results: items alike but for a layer index share one line."""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Hashable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")


def fold_items(items: Sequence[T], key: Callable[[T], str], alike: Callable[[T], Hashable],
               rank: Callable[[T], Any], fold: bool = True) -> list[tuple[str, list[T]]]:
    """``(key pattern, members)`` lines. Items with equal ``alike(item)`` fold along their
    layer index (``layers.{0..11}.norm.weight``); lines sort by ``rank`` of their first
    member, then by file order."""
    from ckptlab.align.keyfold import fold_keys

    order = {key(item): i for i, item in enumerate(items)}
    if not fold:
        lines = [(key(item), [item]) for item in items]
    else:
        by_key = {key(item): item for item in items}
        groups: dict[Hashable, list[str]] = defaultdict(list)
        for item in items:
            groups[alike(item)].append(key(item))
        lines = [(f.pattern, [by_key[k] for k in f.keys]) for keys in groups.values() for f in fold_keys(keys)]
    lines.sort(key=lambda line: (rank(line[1][0]), order[key(line[1][0])]))
    return lines


def value_range(values: Sequence[Any], fmt: str = ".4g") -> str:
    """``a`` or ``lo..hi`` over the values present; ``-`` when none."""
    present = [v for v in values if v is not None]
    if not present:
        return "-"
    lo, hi = min(present), max(present)
    return format(lo, fmt) if lo == hi else f"{format(lo, fmt)}..{format(hi, fmt)}"
