"""A recipe kept across a change of inputs: which of its entries still apply.

The app keeps the visitor's recipe when one side of the pair changes (another target file,
the target as a model definition, edited kwargs): accepted suggestions and typed rules stay.
Some entries may then match nothing; the page says which, in one line, instead of dropping
them or failing. A ``convert`` entry that matches no source key would make ``align`` refuse
the whole recipe, so ``applicable`` leaves such entries out (named) before aligning.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from ckptlab.errors import RecipeError
from ckptlab.recipe.edits import convert_line
from ckptlab.recipe.groups import find_groups
from ckptlab.recipe.model import Recipe
from ckptlab.recipe.parsing import quote

Shape = tuple[int, ...]


def applicable(recipe: Recipe, source_shapes: Mapping[str, Shape]) -> Recipe:
    """``recipe`` less the ``convert`` entries that match no source key or whose ops do not
    fit these shapes (``stale_entries`` names them); the recipe itself when all fit."""
    if not recipe.convert:
        return recipe
    kept, claimed = [], set()
    for conv in recipe.convert:
        free = {k: s for k, s in source_shapes.items() if k not in claimed}
        try:
            found = find_groups([conv], free)
        except RecipeError:
            continue
        kept.append(conv)
        claimed.update(found.claimed)
    if len(kept) == len(recipe.convert):
        return recipe
    return replace(recipe, rules=list(recipe.rules), map=dict(recipe.map), adapt=dict(recipe.adapt), convert=kept)


def stale_entries(recipe: Recipe, alignment: Any) -> list[str]:
    """The entries of ``recipe`` (the visitor's, as kept) that match nothing in the
    alignment's pair, in recipe order, each in a few words."""
    source_keys = list(alignment.source.keys())
    target = alignment.target
    out = _stale_rules(recipe, source_keys, target)
    out += [f"map {quote(t)} <- {quote(s)}" for t, s in recipe.map.items()
            if t not in target or s not in alignment.source]
    adapted = {row.target for row in alignment.rows if row.status == "adapted"}
    out += [f"adapt {quote(k)}" for k in recipe.adapt if k not in adapted]      # absent, or the shapes agree
    out += _stale_conversions(recipe, alignment)
    if recipe.keep_target is not None and not any(recipe.keeps_target(k) for k in target.keys()):
        out.append(f"keep_target {quote(recipe.keep_target)}")
    return out


def _stale_rules(recipe: Recipe, source_keys: list[str], target: Any) -> list[str]:
    """A renaming rule is stale when no key it renames ends on a target key; ``drop`` when
    it drops nothing; ``keep`` when it keeps nothing."""
    rules = recipe.rules
    touched: list[list[str]] = [[] for _ in rules]     # per rule: source keys it changed (or kept)
    final: dict[str, str | None] = {}
    for key in source_keys:
        current: str | None = key
        for i, rule in enumerate(rules):
            new = rule.apply(current)
            if (rule.kind == "keep" and new is not None) or (rule.kind != "keep" and new != current):
                touched[i].append(key)
            current = new
            if current is None:
                break
        final[key] = current
    out = []
    for rule, keys in zip(rules, touched):
        if rule.kind in ("drop", "keep"):
            stale = not keys
        else:
            stale = not any(final[k] is not None and final[k] in target for k in keys)
        if stale:
            out.append(rule.describe())
    return out


def _stale_conversions(recipe: Recipe, alignment: Any) -> list[str]:
    """Entries left out before aligning (they matched no source key), and entries that feed
    no target row."""
    used = alignment.recipe.convert
    effective = alignment.effective_recipe.convert
    feeding = {row.convert.index for row in alignment.rows if getattr(row, "convert", None) is not None}
    out = []
    for conv in recipe.convert:
        if conv not in used or conv not in effective or effective.index(conv) + 1 not in feeding:
            out.append(f"convert {convert_line(conv)}")
    return out
