"""What the web app's editors do to a recipe, as pure functions.

The rule editor is a grid (``st.data_editor``) whose state no test can drive, so every
decision lives here: grid rows <-> rules (with the position column deciding the order),
grid rows <-> the explicit map, accepting a suggestion, and choosing a shape fix. Each
returns a new ``Recipe`` (recipes are values) or raises a one-line ``RecipeError`` /
``AdaptError`` naming the rule or key at fault.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import replace
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ckptlab.errors import RecipeError
from ckptlab.recipe.adapt_spec import AdaptSpec
from ckptlab.recipe.conversion import Conversion
from ckptlab.recipe.dtype_policy import DtypeSpec
from ckptlab.recipe.model import FRAGMENT_KEYS, Recipe
from ckptlab.recipe.ops import describe_ops
from ckptlab.recipe.parsing import quote
from ckptlab.recipe.rules import Rule
from ckptlab.vocab import RULE_KINDS

__all__ = ["RULE_COLUMNS", "MAP_COLUMNS", "rules_to_rows", "incomplete_rows", "rows_to_rules",
    "with_rule_rows", "map_to_rows", "rows_to_map", "with_map_rows", "fragment_kind", "fragment_entries",
    "convert_line", "describe_fragment", "fragment_id", "accept_suggestion", "differing_dims", "default_fix",
    "shape_fix", "with_shape_fix", "with_conversion_fix", "without_shape_fix", "pretrained_keys"]

RULE_COLUMNS = ("position", "kind", "pattern", "replacement")
MAP_COLUMNS = ("target", "source")


def _blank(value: Any) -> bool:
    """Empty cells come back from the grid as None, NaN or ''."""
    return value is None or (isinstance(value, float) and math.isnan(value)) or (
        isinstance(value, str) and not value.strip())


def _text(value: Any) -> str:
    return "" if _blank(value) else str(value)


# -- rules ----------------------------------------------------------------------------
def rules_to_rows(recipe: Recipe) -> list[dict[str, Any]]:
    """One grid row per rule, numbered 1..n in recipe order."""
    return [{"position": i, "kind": r.kind, "pattern": r.pattern, "replacement": r.replacement or ""}
            for i, r in enumerate(recipe.rules, start=1)]


def _position(row: Mapping[str, Any], fallback: float) -> float:
    value = row.get("position")
    if _blank(value):
        return fallback
    try:
        return float(value)
    except (TypeError, ValueError):
        raise RecipeError(f"rule position {value!r} is not a number") from None


def _complete(row: Mapping[str, Any]) -> bool:
    """A grid line counts once it has a kind and a pattern (a line being typed does not)."""
    return not _blank(row.get("kind")) and not _blank(row.get("pattern"))


def incomplete_rows(rows: Iterable[Mapping[str, Any]]) -> list[int]:
    """1-based grid lines that are partly filled (a kind without a pattern, or the reverse):
    not applied yet, and the page says so instead of raising while the visitor types."""
    out = []
    for line, row in enumerate(rows, start=1):
        filled = [not _blank(row.get(c)) for c in ("kind", "pattern", "replacement")]
        if any(filled) and not _complete(row):
            out.append(line)
    return out


def rows_to_rules(rows: Iterable[Mapping[str, Any]]) -> list[Rule]:
    """Grid rows -> rules, ordered by ``position`` (rows without one keep their place after
    the numbered ones). Lines without both a kind and a pattern are skipped (see
    ``incomplete_rows``); a ``replacement`` typed beside a kind that takes none is ignored,
    so switching a row's kind never makes it invalid by itself."""
    rows = [dict(r) for r in rows]
    filled = [(i, r) for i, r in enumerate(rows) if _complete(r)]
    ordered = sorted(filled, key=lambda item: (_position(item[1], math.inf), item[0]))
    rules = []
    for index, (_, row) in enumerate(ordered, start=1):
        kind = _text(row.get("kind"))
        pattern = _text(row.get("pattern"))
        if kind == "replace":
            data = {"replace": {"pattern": pattern, "with": _text(row.get("replacement"))}}
        else:
            data = {kind: pattern}
        rules.append(Rule.from_dict(data, index))
    return rules


def with_rule_rows(recipe: Recipe, rows: Iterable[Mapping[str, Any]]) -> Recipe:
    """The recipe with its rules replaced by the grid's (map/adapt/container kept)."""
    return replace(recipe, rules=rows_to_rules(rows), map=dict(recipe.map), adapt=dict(recipe.adapt),
                   convert=list(recipe.convert))  # conversions and dtype stay as they are


# -- explicit map ---------------------------------------------------------------------
def map_to_rows(recipe: Recipe) -> list[dict[str, str]]:
    return [{"target": t, "source": s} for t, s in recipe.map.items()]


def rows_to_map(rows: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Grid rows -> ``{target_key: source_key}``; a half-filled row or a target given twice
    is an error naming the row."""
    mapping: dict[str, str] = {}
    for index, row in enumerate(rows, start=1):
        target, source = _text(row.get("target")).strip(), _text(row.get("source")).strip()
        if not target and not source:
            continue
        if not target or not source:
            missing = "target" if not target else "source"
            raise RecipeError(f"map row {index}: the {missing} key is empty")
        if target in mapping:
            raise RecipeError(f"map row {index}: target {target!r} is already mapped (from {mapping[target]!r})")
        mapping[target] = source
    return mapping


def with_map_rows(recipe: Recipe, rows: Iterable[Mapping[str, Any]]) -> Recipe:
    return replace(recipe, rules=list(recipe.rules), map=rows_to_map(rows), adapt=dict(recipe.adapt),
                   convert=list(recipe.convert))


# -- suggestions ----------------------------------------------------------------------
def fragment_kind(fragment: Mapping[str, Any]) -> str:
    """What a fragment is: its rule kind (``strip_prefix``) or its part(s) of a recipe
    (``convert``, ``map+adapt``); the panel and its tests go through every kind."""
    parts = [k for k in FRAGMENT_KEYS if k in fragment]
    if parts:
        return "+".join(parts)
    return next(iter(fragment), "") if len(fragment) == 1 else "?"


def fragment_entries(fragment: Mapping[str, Any]) -> list[str]:
    """One line per entry a fragment adds (a conversion entry, a mapped or adapted key, a
    rule...): what the panel lists under its headline. A fragment that is not one the
    recipe takes is a one-line ``RecipeError`` (its Accept would fail the same way)."""
    if not isinstance(fragment, Mapping) or not fragment:
        raise RecipeError(f"suggestion: expected a non-empty mapping, got {type(fragment).__name__}")
    fragment = dict(fragment)
    if not (set(FRAGMENT_KEYS) & fragment.keys()):
        return [Rule.from_dict(fragment).describe()]
    lines = []
    for key, value in fragment.items():
        if key not in FRAGMENT_KEYS:
            raise RecipeError(f"suggestion: unknown part {key!r} beside {', '.join(FRAGMENT_KEYS)}")
        lines += _PART_LINES[key](value)
    return lines


def _map_lines(value: Any) -> list[str]:
    return [f"map {quote(target)} <- {quote(source)}" for target, source in (value or {}).items()]


def _adapt_lines(value: Any) -> list[str]:
    return [f"adapt {quote(target)}: {AdaptSpec.from_dict(spec, target).describe()}"
            for target, spec in (value or {}).items()]


def _convert_lines(value: Any) -> list[str]:
    return [convert_line(c) for c in _conversions({"convert": value})]


def convert_line(conversion: Conversion) -> str:
    """``'h.{i}.attn.c_attn.weight': transpose`` (one key pattern: converted in place), or
    ``'a' -> 'b', 'c': chunk dim 0``."""
    src = ", ".join(quote(s) for s in conversion.sources)
    if conversion.sources == conversion.targets:
        return f"{src}: {describe_ops(conversion.ops)}"
    return f"{src} -> {', '.join(quote(t) for t in conversion.targets)}: {describe_ops(conversion.ops)}"


_PART_LINES = {
    "map": _map_lines,
    "adapt": _adapt_lines,
    "convert": _convert_lines,
    "container": lambda value: [f"use container {quote(value)}"],
    "dtype": lambda value: [DtypeSpec.from_dict(value).describe()],
    "keep_target": lambda value: [f"keep the target's own value for keys matching {quote(value)}"],
}


def describe_fragment(fragment: Mapping[str, Any]) -> str:
    """A suggestion's fragment in words, one line: ``add_prefix 'attention_map.'``,
    ``map 'a' <- 'b'``, ``convert 4 entries (transpose)``; a fragment of several entries
    is counted here and listed by ``fragment_entries``."""
    lines = fragment_entries(fragment)
    if len(lines) == 1:
        return lines[0]
    kind = fragment_kind(fragment)
    if kind == "convert":
        ops = dict.fromkeys(describe_ops(c.ops) for c in _conversions(fragment))
        return f"convert {len(lines)} entries ({'; '.join(ops)})"
    if kind in ("map", "adapt"):
        return f"{kind} {len(lines)} keys"
    return "; ".join(lines)


def fragment_id(fragment: Mapping[str, Any]) -> str:
    """A short stable id for a fragment (widget keys: the same suggestion keeps its button)."""
    text = json.dumps(fragment, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def accept_suggestion(recipe: Recipe, fragment: Mapping[str, Any]) -> Recipe:
    """The recipe plus a suggestion's fragment; accepting the same rule twice adds it once."""
    fragment = dict(fragment)
    if not (set(FRAGMENT_KEYS) & fragment.keys()):
        rule = Rule.from_dict(fragment, len(recipe.rules) + 1)
        if rule in recipe.rules:
            return recipe
    return recipe.merged(fragment)


# -- shape fixes ----------------------------------------------------------------------
def differing_dims(source_shape: Sequence[int], target_shape: Sequence[int]) -> list[int]:
    """Dims whose sizes differ (all of them when the ranks differ)."""
    if len(source_shape) != len(target_shape):
        return list(range(len(target_shape)))
    return [d for d, (s, t) in enumerate(zip(source_shape, target_shape)) if s != t]


def default_fix(source_shape: Sequence[int], target_shape: Sequence[int]) -> AdaptSpec | None:
    """The adapter to preselect: grow the one differing dim (``pad``), or start fresh
    (``reinit``) when the ranks differ. None when only a lossy op (truncate, resize, sum)
    would fit: dropping trained values is the visitor's choice, never the page's."""
    if len(source_shape) != len(target_shape):
        return AdaptSpec("reinit")
    dims = differing_dims(source_shape, target_shape)
    if len(dims) != 1 or target_shape[dims[0]] < source_shape[dims[0]]:
        return None
    return AdaptSpec("pad", dims[0])


def shape_fix(source_shape: Sequence[int], target_shape: Sequence[int], op: str,
              dim: int | None = None, fill: str = "zeros", key: str = "") -> tuple[AdaptSpec, tuple[int, ...]]:
    """The adapter and the shape it produces; ``AdaptError`` when it cannot fit."""
    from ckptlab.recipe import adapters as adapt

    spec = AdaptSpec(op, dim, fill if op in ("pad", "resize") else "zeros")
    return spec, tuple(adapt.preview_shape(tuple(source_shape), tuple(target_shape), spec, key=key))


def with_shape_fix(recipe: Recipe, target_key: str, source_shape: Sequence[int], target_shape: Sequence[int],
                   op: str, dim: int | None = None, fill: str = "zeros") -> Recipe:
    """The recipe with ``adapt[target_key]`` set, after checking the fix fits."""
    spec, _ = shape_fix(source_shape, target_shape, op, dim, fill, key=target_key)
    return recipe.with_adapt(target_key, spec)


def with_conversion_fix(recipe: Recipe, target_key: str, fragment: Mapping[str, Any]) -> Recipe:
    """The recipe with a conversion chosen for a mismatched row: the fragment joins it,
    and the adapters and explicit mapping it replaces go (an adapter on a key the conversion
    now feeds, a map entry that would win over it)."""
    from ckptlab.recipe.key_patterns import KeyPattern

    targets = [KeyPattern(t) for c in _conversions(fragment) for t in c.targets]
    replaced = {k for k in [*recipe.adapt, *recipe.map] if k == target_key or any(p.match(k) for p in targets)}
    base = replace(recipe, rules=list(recipe.rules), convert=list(recipe.convert),
                   map={k: v for k, v in recipe.map.items() if k not in replaced},
                   adapt={k: v for k, v in recipe.adapt.items() if k not in replaced})
    return accept_suggestion(base, fragment)


def _conversions(fragment: Mapping[str, Any]) -> list[Conversion]:
    value = fragment.get("convert")
    entries = value if isinstance(value, list) else [value]
    return [Conversion.from_dict(entry, index) for index, entry in enumerate(entries, start=1)]


def without_shape_fix(recipe: Recipe, target_key: str) -> Recipe:
    adapt = {k: v for k, v in recipe.adapt.items() if k != target_key}
    return replace(recipe, rules=list(recipe.rules), map=dict(recipe.map), adapt=adapt, convert=list(recipe.convert))


# -- fine-tune plan -------------------------------------------------------------------
def pretrained_keys(fed_keys: Iterable[str], train_as_new: str | None) -> list[str]:
    """The fed target keys the param groups treat as pretrained: all but those matching
    ``train_as_new`` (a regex, searched), which train at lr x mult like new ones (a head
    grown from 10 to 100 classes is fed, yet the user wants it trained fast)."""
    import re

    if _blank(train_as_new):
        return list(fed_keys)
    from ckptlab.recipe.patterns import BoundedRegex

    try:
        checked = re.compile(str(train_as_new))
    except re.error as exc:
        raise RecipeError(f"train-as-new pattern {train_as_new!r} is not a valid regex: {exc}") from None
    pattern = BoundedRegex(str(train_as_new), "train-as-new pattern", checked)  # typed by a visitor: time-bounded
    return [key for key in fed_keys if not pattern.search(key)]
