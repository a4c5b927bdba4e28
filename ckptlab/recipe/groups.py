"""Matching conversions against a checkpoint's keys: each entry's groups (concrete source keys ->
concrete target keys, with the shapes its ops give), and the checks only keys can make.

Entries claim keys in recipe order (a key claimed by an earlier entry is not offered to a later
one); stacked keys go in numeric order. A stacked tensor does not keep the indices its slices
had, so ``unbind_clash`` refuses an unbind onto a target that numbers that family otherwise.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from difflib import get_close_matches

from ckptlab.errors import RecipeError
from ckptlab.recipe.conversion import Conversion
from ckptlab.recipe.ops import ConvertError, Op, Shape, preview, run

__all__ = ["Group", "Matches", "find_groups", "unbind_clash", "is_count", "show_values"]


@dataclass(frozen=True)
class Group:
    """One application of a conversion: concrete source keys -> concrete target keys."""

    index: int  # the entry's position, from 1
    conversion: Conversion
    sources: tuple[str, ...]
    targets: tuple[str, ...]
    source_shapes: tuple[Shape, ...]
    target_shapes: tuple[Shape, ...]  # what the ops produce, per target

    @property
    def ops(self) -> tuple[Op, ...]:
        return self.conversion.ops

    def run(self, tensors: list) -> list:
        return run(self.ops, tensors, self.conversion.chunk_parts)

    def stacked_values(self) -> tuple[str, ...]:
        """The values the stacking placeholder took, in stacking order (empty: no stack)."""
        name = self.conversion.stacked
        if name is None:
            return ()
        pat = self.conversion.from_patterns[0]
        share = len(self.sources) // len(self.conversion.sources)  # each pattern stacks the same values
        return tuple(pat.match(s)[name] for s in self.sources[:share])

    def family(self, side: str) -> str:
        """The ``from`` (or ``to``) pattern of this group: shared placeholders filled, the one
        of that side only left as ``{name}`` (``'l.0.experts.{e}.w1'``)."""
        conv = self.conversion
        pat = conv.from_patterns[0] if side == "from" else conv.to_patterns[0]
        key = self.sources[0] if side == "from" else self.targets[0]
        values = pat.match(key) or {}
        own = conv.stacked if side == "from" else conv.unbound
        return pat.fill({**values, **({own: "{" + own + "}"} if own else {})})

    def describe(self, target: str | None = None) -> str:
        """``convert 1: transpose of 'h.0.attn.c_attn.weight'`` (and which part, for 1 -> N)."""
        srcs = "'" + "', '".join(self.sources) + "'" if self.sources else ""  # (each quoted, one join)
        part = ""
        if target is not None and len(self.targets) > 1:
            part = f" (output {self.targets.index(target) + 1} of {len(self.targets)})"
        return f"convert {self.index}: {self.conversion.ops_text} of {srcs}{part}"


@dataclass
class Matches:
    """Every group found, and which source keys the conversions claim."""

    groups: list[Group] = field(default_factory=list)
    claimed: dict[str, Group] = field(default_factory=dict)


def _order(value: str) -> tuple:
    """Numbers in numeric order (``10`` after ``9``), then any other text in string order."""
    return (0, int(value), value) if value.isascii() and value.isdigit() else (1, 0, value)


def is_count(values: Sequence[str]) -> bool:
    """``values`` are ``0, 1, ..., n-1`` as an unbind names its outputs."""
    return list(values) == [str(i) for i in range(len(values))]


def show_values(values: Sequence[str], limit: int = 6) -> str:
    """``0, 2, 5`` (the first few, then how many more)."""
    shown = ", ".join(values[:limit])
    return shown + (f", ... ({len(values) - limit} more)" if len(values) > limit else "")


def unbind_clash(groups: Iterable[Group], target_keys: Iterable[str]) -> str | None:
    """Why an unbind would feed the wrong target keys, or None.

    A stacked tensor does not keep the indices its slices had; an unbind names them
    ``0..n-1``. When the target holds keys of that family under other indices (experts
    0, 2, 5 stacked, then unbound as 0, 1, 2), some outputs land on no target key while
    some target keys go unfed: writing them would put slices under the wrong names.
    """
    unbinding = [g for g in groups if g.conversion.unbound and g.targets]
    if not unbinding:
        return None
    keys = list(target_keys)
    indexed: dict[int, dict[tuple, list[str]]] = {}  # per conversion: shared values -> the target's indices
    for g in unbinding:
        conv, name = g.conversion, g.conversion.unbound
        pat = conv.to_patterns[0]
        others = [n for n in pat.names if n != name]
        if g.index not in indexed:
            table: dict[tuple, list[str]] = {}
            for key in keys:  # one pass over the target per conversion, not per group
                values = pat.match(key)
                if values is not None:
                    table.setdefault(tuple(values[n] for n in others), []).append(values[name])
            indexed[g.index] = table
        first = pat.match(g.targets[0])
        made = [m[name] for m in map(pat.match, g.targets) if m is not None]  # the first 'to' pattern's share
        have = indexed[g.index].get(tuple(first[n] for n in others), [])
        if set(made) - set(have) and set(have) - set(made):
            have = sorted(have, key=_order)
            return (f"convert {g.index}: unbind of {', '.join(repr(s) for s in g.sources)} names its slices "
                    f"{g.family('to')!r} for {{{name}}} = 0..{len(made) - 1}, the target has "
                    f"{{{name}}} = {show_values(have)} (a stacked tensor does not keep its indices)")
    return None


def find_groups(conversions: Sequence[Conversion], source_shapes: Mapping[str, Shape],
                strict: bool = True, start: int = 1) -> Matches:
    """Match each conversion against the source keys (in recipe order; a key claimed by an
    earlier entry is not offered to a later one) and preview every group's output shapes.

    With ``strict`` a conversion that matches nothing, or whose ops do not fit the shapes,
    raises a one-line ``RecipeError`` naming the entry; otherwise it is skipped. ``start``:
    the position of the first entry (an editor checking one line at a time).
    """
    out = Matches()
    keys = list(source_shapes)
    for index, conv in enumerate(conversions, start=start):
        try:
            groups = _groups_of(index, conv, [k for k in keys if k not in out.claimed], source_shapes)
        except RecipeError:
            if strict:
                raise
            continue
        if not groups:
            if strict:
                raise RecipeError(f"convert {index}: {_no_match(conv, keys)}")
            continue
        for g in groups:
            out.groups.append(g)
            for s in g.sources:
                out.claimed[s] = g
    return out


def _groups_of(index: int, conv: Conversion, keys: list[str], shapes: Mapping[str, Shape]) -> list[Group]:
    shared, unbound, to_patterns = conv.shared, conv.unbound, conv.to_patterns  # (per group: locals)
    groups = []
    previews: dict[tuple, tuple[Shape, ...]] = {}  # layers alike share one preview
    for group_key, sources in _gathered(conv, keys):
        values = dict(zip(shared, group_key))
        in_shapes = tuple([tuple(shapes[s]) for s in sources])
        out_shapes = previews.get(in_shapes)
        if out_shapes is None:
            try:
                out_shapes = previews[in_shapes] = tuple(preview(conv.ops, list(in_shapes), conv.chunk_parts))
            except ConvertError as exc:
                shown = ", ".join(f"'{s}' {sh}" for s, sh in zip(sources[:3], in_shapes[:3]))
                raise ConvertError(f"convert {index}: {exc.message} on {shown}"
                                   f"{' ...' if len(sources) > 3 else ''}") from None
        if unbound:
            share, left = divmod(len(out_shapes), len(to_patterns))
            if left:
                raise ConvertError(f"convert {index}: {len(out_shapes)} outputs do not deal out evenly to "
                                   f"{len(to_patterns)} 'to' patterns")
            targets = tuple(pat.fill({**values, unbound: str(i)}) for pat in to_patterns for i in range(share))
        else:
            targets = tuple([pat.fill(values) for pat in to_patterns])
        groups.append(Group(index, conv, sources, targets, in_shapes, out_shapes))
    return groups


def _gathered(conv: Conversion, keys: list[str]) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
    """(the shared placeholders' values, the source keys in stacking order) of each group with
    every source it needs, in the order the keys first show it (every key matched before any
    group is previewed)."""
    pats, shared, stacked = conv.from_patterns, conv.shared, conv.stacked
    if len(pats) == 1 and not stacked:  # every placeholder shared: each key it matches is a group alone
        return [(tuple([values[n] for n in shared]), (key,)) for key, values in pats[0].matches(keys)]
    found: dict[tuple, dict[int, list[tuple[tuple, str]]]] = {}
    for key in keys:
        for p, pat in enumerate(pats):
            values = pat.match(key)
            if values is None:
                continue
            group_key = tuple([values[n] for n in shared])
            order = _order(values[stacked]) if stacked else ()
            found.setdefault(group_key, {}).setdefault(p, []).append((order, key))
            break
    out = []
    for group_key, by_pattern in found.items():
        if len(by_pattern) != len(pats):
            continue  # a group that lacks one of its sources is left to the rules
        if stacked and len(pats) > 1 and len({tuple(o for o, _ in sorted(v)) for v in by_pattern.values()}) > 1:
            continue  # the patterns stack different indices (w1 of 8 experts, w3 of 7): left to the rules
        out.append((group_key, tuple(k for p in range(len(pats)) for _, k in sorted(by_pattern[p]))))
    return out


def _no_match(conv: Conversion, keys: list[str]) -> str:
    shown = ", ".join(f"'{s}'" for s in conv.sources)
    text = f"{shown} matches no source key"
    if len(conv.sources) > 1:
        text = f"no source keys match all of {shown}"
    close = get_close_matches(conv.from_patterns[0].example(), keys, n=1, cutoff=0.6)
    return text + (f" (did you mean {close[0]!r}?)" if close else "")
