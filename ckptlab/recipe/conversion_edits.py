"""The conversion editor's logic, outside Streamlit: grid rows <-> ``convert`` entries, and
what each entry does to this source (the resulting shapes) or why it cannot.

A grid line holds ``from`` and ``to`` (one key pattern, or several separated by commas) and
``ops`` (``transpose; chunk: 0; rope_permute: {heads: 8}``, or a YAML list). Each line is
checked on its own against the source's shapes: a line that does not parse, matches no
source key or whose ops do not fit the shapes gets its error beside it and stays out of the
recipe, so the rest of the page keeps working with the lines that do.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import yaml

from ckptlab.recipe.conversion import Conversion
from ckptlab.recipe.groups import find_groups
from ckptlab.recipe.ops import Op
from ckptlab.errors import RecipeError
from ckptlab.recipe.model import Recipe

__all__ = ["CONVERT_COLUMNS", "Shape", "EntryCheck", "ops_text", "parse_ops", "conversions_to_rows",
    "with_conversion_rows"]

CONVERT_COLUMNS = ("position", "from", "to", "ops")
Shape = tuple[int, ...]


@dataclass(frozen=True)
class EntryCheck:
    """One grid line: ``ok`` with the preview of what it does, or the error that keeps it out."""

    line: int
    ok: bool
    message: str


def ops_text(ops: tuple[Op, ...] | list[Op]) -> str:
    """``transpose; chunk: 0; rope_permute: {heads: 8}`` (what the grid shows)."""
    parts = []
    for op in ops:
        value = op.to_value()
        if isinstance(value, str):
            parts.append(value)
            continue
        (name, arg), = value.items()
        parts.append(f"{name}: {yaml.safe_dump(arg, default_flow_style=True, width=10_000).strip()}"
                     .replace("\n...", ""))
    return "; ".join(parts)


def parse_ops(text: Any) -> list:
    """The grid's ops text back to the YAML list (``[]`` when empty)."""
    if text is None or (isinstance(text, float) and math.isnan(text)) or not str(text).strip():
        return []
    text = str(text).strip()
    pieces = [text] if text.startswith("[") else [p for p in (s.strip() for s in text.split(";")) if p]
    ops: list = []
    for piece in pieces:
        try:
            value = yaml.safe_load(piece)
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or "not valid YAML"
            raise RecipeError(f"ops: cannot read {piece!r}: {problem}") from None
        ops.extend(value if isinstance(value, list) else [value])
    return ops


def _patterns_text(patterns: tuple[str, ...]) -> str:
    return ", ".join(patterns)


def _parse_patterns(text: Any, many: bool | None = None) -> str | list[str]:
    items = [p.strip() for p in str(text).split(",") if p.strip()]
    return items if len(items) > 1 else (items[0] if items else "")


def conversions_to_rows(recipe: Recipe) -> list[dict[str, Any]]:
    return [{"position": float(i), "from": _patterns_text(c.sources), "to": _patterns_text(c.targets),
             "ops": ops_text(c.ops)} for i, c in enumerate(recipe.convert, start=1)]


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or not str(value).strip()


def _ordered(rows: list[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Rows in ``position`` order (lines without one keep their place at the end)."""
    keyed = [(r.get("position") if not _blank(r.get("position")) else math.inf, i, r) for i, r in enumerate(rows)]
    return [r for _, _, r in sorted(keyed, key=lambda k: (k[0], k[1]))]


def with_conversion_rows(recipe: Recipe, rows: list[Mapping[str, Any]], source_shapes: Mapping[str, Shape],
                         target_shapes: Mapping[str, Shape] | None = None) -> tuple[Recipe, list[EntryCheck]]:
    """The recipe with the grid's valid lines as its ``convert`` list, and one check per line
    that has something in it (blank lines are ignored)."""
    shapes = {k: tuple(v) for k, v in source_shapes.items()}
    kept: list[Conversion] = []
    claimed: set[str] = set()
    checks: list[EntryCheck] = []
    line = 0
    for row in _ordered(rows):
        if all(_blank(row.get(c)) for c in ("from", "to", "ops")):
            continue
        line += 1
        if _blank(row.get("from")) or _blank(row.get("to")):
            checks.append(EntryCheck(line, False, f"convert {line}: needs 'from' and 'to' (not applied yet)"))
            continue
        try:
            conv = Conversion.from_dict({"from": _parse_patterns(row["from"]), "to": _parse_patterns(row["to"]),
                                         "ops": parse_ops(row.get("ops"))}, line)
            available = {k: s for k, s in shapes.items() if k not in claimed}
            found = find_groups([conv], available, start=line)
        except RecipeError as exc:
            message = exc.message if exc.message.startswith("convert") else f"convert {line}: {exc.message}"
            if "matches no source key" in message and find_groups([conv], shapes, strict=False).groups:
                message = f"convert {line}: every key it matches is taken by an earlier line"
            checks.append(EntryCheck(line, False, message))
            continue
        kept.append(conv)
        claimed.update(found.claimed)
        checks.append(EntryCheck(line, True, _preview(line, found.groups, target_shapes)))
    return replace(recipe, convert=kept, rules=list(recipe.rules), map=dict(recipe.map),
                   adapt=dict(recipe.adapt)), checks


def _preview(line: int, groups: list, target_shapes: Mapping[str, Shape] | None) -> str:
    """``convert 1: 12 groups; 'h.0.qkv' (12, 4) -> 'h.0.q' (4, 4), ...; 2 targets the target lacks``."""
    first = groups[0]
    srcs = ", ".join(f"'{s}' {tuple(sh)}" for s, sh in zip(first.sources[:3], first.source_shapes[:3]))
    srcs += " ..." if len(first.sources) > 3 else ""
    dsts = ", ".join(f"'{t}' {tuple(sh)}" for t, sh in zip(first.targets[:3], first.target_shapes[:3]))
    dsts += " ..." if len(first.targets) > 3 else ""
    text = f"convert {line}: {len(groups)} group{'s' if len(groups) != 1 else ''}; {srcs} -> {dsts}"
    if target_shapes is None:
        return text
    outputs = [(t, tuple(sh)) for g in groups for t, sh in zip(g.targets, g.target_shapes)]
    absent = [t for t, _ in outputs if t not in target_shapes]
    wrong = [(t, sh) for t, sh in outputs if t in target_shapes and tuple(target_shapes[t]) != sh]
    if absent:
        text += f"; {len(absent)} output key{'s' if len(absent) != 1 else ''} not in the target (first: '{absent[0]}')"
    if wrong:
        t, sh = wrong[0]
        text += (f"; {len(wrong)} output{'s' if len(wrong) != 1 else ''} of the wrong shape (first: '{t}' "
                 f"gives {sh}, the target has {tuple(target_shapes[t])})")
    return text
