"""Fold runs of layer indices for display: ``layers.{0..11}.norm.weight``.

A 32-layer model has 32 copies of every layer key; a table that lists them all hides the
one row that matters. Keys that differ only in one numeric component fold into one
pattern. Each key folds along the numeric component that groups it with the most
siblings, so ``layers.3.mlp.0.weight`` folds over the layer index, not over ``0``.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Folded:
    """``pattern`` stands for ``keys`` (in their original order)."""

    pattern: str
    keys: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.keys)


def format_indices(values: Iterable[int]) -> str:
    """``{0..11}``, ``{0,1}``, ``{0..3,7,9..11}``: sorted, runs of three or more joined."""
    ordered = sorted(set(values))
    parts: list[str] = []
    start = prev = None
    for v in [*ordered, None]:
        if start is not None and (v is None or v != prev + 1):
            if prev - start >= 2:
                parts.append(f"{start}..{prev}")
            else:
                parts.extend(str(x) for x in range(start, prev + 1))
            start = None
        if v is not None:
            if start is None:
                start = v
            prev = v
    return "{" + ",".join(parts) + "}"


# Numeric components of one key a fold may run over: real keys have at most ~4
# (``blocks.3.attn.0.weight``); each costs a template as long as the key, so a hostile key of
# hundreds of numbered parts would cost its length squared.
MAX_FOLD_PARTS = 8


def _templates(key: str) -> list[tuple[tuple[str, int], int]]:
    """((template, position), index value) for each numeric component of ``key`` (the first
    ``MAX_FOLD_PARTS`` of them)."""
    parts = key.split(".")
    out = []
    for pos, part in enumerate(parts):
        if part.isascii() and part.isdigit() and (part == "0" or not part.startswith("0")):
            template = ".".join(parts[:pos] + ["\0"] + parts[pos + 1:])
            out.append(((template, pos), int(part)))
            if len(out) == MAX_FOLD_PARTS:
                break
    return out


def fold_keys(keys: Iterable[str]) -> list[Folded]:
    """Fold ``keys`` (in order of first appearance); a key with no sibling stays itself."""
    keys = list(keys)
    options = {key: _templates(key) for key in keys}
    size: dict[tuple[str, int], int] = defaultdict(int)
    for opts in options.values():
        for template, _ in opts:
            size[template] += 1
    groups: dict[object, list[tuple[str, int | None]]] = {}
    for key in keys:
        opts = options[key]
        best = max(opts, key=lambda o: (size[o[0]], -o[0][1]), default=None)
        if best is None or size[best[0]] < 2:
            groups.setdefault(("key", key), []).append((key, None))
        else:
            groups.setdefault(best[0], []).append((key, best[1]))
    out = []
    for group, members in groups.items():
        if len(members) == 1 or group[0] == "key":
            out.extend(Folded(key, (key,)) for key, _ in members)
            continue
        template = group[0]
        pattern = template.replace("\0", format_indices(v for _, v in members))
        out.append(Folded(pattern, tuple(key for key, _ in members)))
    return out


def fold_pattern(keys: Iterable[str]) -> str:
    """One pattern for ``keys`` when they fold into one, else ``"<n> keys"``."""
    folded = fold_keys(keys)
    if len(folded) == 1:
        return folded[0].pattern
    return f"{sum(len(f) for f in folded)} keys"
