"""The recipe that undoes a recipe: remap with it, then with its inverse, and get back every
tensor bit for bit.

Renames are reversed in reverse order (``add_prefix`` <-> ``strip_prefix``, a literal
``replace`` swapped), the map is turned around, a zero ``pad`` becomes a ``truncate``, and
each conversion runs from its targets to its sources through the inverse ops in reverse
order. What loses information (``drop``, ``keep``, a ``truncate``/``resize``/``sum``/``reinit``
adapter, ``narrow``, a ``dtype`` cast, a regex ``replace``) cannot be undone: it is named in a
one-line ``RecipeError``, or left out with ``partial=True``. So is a ``stack`` whose matches are
not numbered ``0..n-1`` in the given shapes (experts 0, 2, 5): the stacked tensor does not keep
the indices, and the ``unbind`` that undoes it names its slices ``0..n-1`` (without shapes,
align refuses such an unbind when the target numbers that family otherwise).

The source ``container`` is not carried over: the merged file holds its tensors at the top
level. Two assumptions the recipe text cannot check: a ``strip_prefix`` is undone by adding the
prefix to every key (so every source key should have carried it), and a ``replace`` is
undone by replacing back (so no key held the replacement text before).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from ckptlab.errors import RecipeError
from ckptlab.recipe.adapt_spec import AdaptSpec
from ckptlab.recipe.groups import find_groups, is_count, show_values
from ckptlab.recipe.ops import ConvertError
from ckptlab.recipe.rules import Rule, rename_keys


__all__ = ["invert"]

_META = set(".^$*+?{}[]|()")


def invert(recipe: Any, partial: bool = False, shapes: Mapping[str, Any] | None = None) -> Any:
    """The inverse of ``recipe`` (a ``Recipe``: typed loosely, since ``model`` imports this module),
    as a copy of its own class; see the module docstring. ``shapes``: the forward source's key -> shape (a Checkpoint's
    infos will do), needed to undo a ``reshape``; a cat of unequal parts is undone exactly
    with them too (without, it is split into equal parts and align flags a part that does
    not fit)."""
    lost: list[str] = []  # each part left out, described
    short: list[str] = []  # the same, in a word or two (the error line must stay short)
    rules = []
    for i in reversed(range(len(recipe.rules))):
        rule = recipe.rules[i]
        back = _invert_rule(rule)
        if back is None:
            lost.append(f"rule {i + 1} ({rule.describe()})")
            short.append(f"rule {i + 1} ({rule.kind})")
        else:
            rules.append(back)
    convert = []
    source_shapes = _shapes(shapes)
    for i, conv in enumerate(recipe.convert, start=1):
        gap = _stack_gap(conv, source_shapes) if source_shapes is not None and conv.stacked else None
        if gap is not None:
            values, family = gap
            shown = f"stack of {{{conv.stacked}}} = {show_values(values)}"
            lost.append(f"convert {i} ({shown} in {family!r}: an unbind names its {len(values)} slices "
                        f"0..{len(values) - 1})")
            short.append(f"convert {i} ({shown})")
            continue
        try:
            group_shapes = _group_shapes(conv, source_shapes) if source_shapes is not None else None
            back = conv.inverted(group_shapes)
            back.validate(i)
        except (ConvertError, RecipeError) as exc:
            why = exc.message if isinstance(exc, ConvertError) else exc.message.split(": ", 1)[-1]
            lost.append(f"convert {i} ({why})")
            short.append(f"convert {i} ({why.split(':', 1)[0].split(' ', 1)[0]}"
                         f"{': needs the source shapes' if 'shape it started from' in why else ''})")
            continue
        convert.append(back)
    adapt = {}
    for target, spec in recipe.adapt.items():
        if spec.op != "pad" or spec.fill == "repeat":  # repeat rescales the kept channels too
            lost.append(f"adapt {target!r} ({spec.describe()})")
            short.append(f"adapt {target!r} ({spec.op})")
            continue
        original = recipe.map.get(target) or rename_keys(rules, [target])[target][0]
        if original is None:
            lost.append(f"adapt {target!r} (its source key cannot be named)")
            short.append(f"adapt {target!r}")
            continue
        adapt[original] = AdaptSpec("truncate", spec.dim)
    if recipe.dtype is not None:
        lost.append(f"dtype ({recipe.dtype.describe()}: a cast loses bits)")
        short.append("dtype")
    if lost and not partial:
        shown = ", ".join(short[:6]) + (f" and {len(short) - 6} more" if len(short) > 6 else "")
        raise RecipeError(f"recipe cannot be inverted: {shown} cannot be undone "
                          "(partial=True leaves them out)")
    if recipe.keep_target is not None:
        # kept target values were never in the source: undoing the job drops them, first
        rules.insert(0, Rule("drop", recipe.keep_target))
    inverse_map = {}
    for target, source in recipe.map.items():
        inverse_map[source] = target
    # a copy of the recipe's own class (this module sits below ``model``, which calls it)
    out = replace(recipe, rules=rules, map=inverse_map, adapt=adapt, convert=convert, container=None, dtype=None, keep_target=None,
                  params=dict(recipe.params))
    out.skipped = lost  # what partial=True left out (shown by the CLI and the app)
    return out


def _invert_rule(rule: Rule) -> Rule | None:
    if rule.kind == "add_prefix":
        return Rule("strip_prefix", rule.pattern)
    if rule.kind == "strip_prefix":
        return Rule("add_prefix", rule.pattern)
    if rule.kind != "replace":
        return None  # drop, keep
    parsed = _literal(rule.pattern)
    if parsed is None or "\\" in rule.replacement:
        return None
    start, text, end = parsed
    new = rule.replacement
    if not text:
        return None
    if start and not end and not new:  # '^prefix' -> '': a stripped prefix
        return Rule("add_prefix", text)
    if not new:
        return None  # a deleted infix cannot be found again
    if start and not end:
        return Rule("replace", "^" + _escape(new), _template(text))
    pattern = ("^" if start else "") + _escape(new) + ("$" if end else "")
    return Rule("replace", pattern, _template(text))


def _literal(pattern: str) -> tuple[bool, str, bool] | None:
    """``(anchored at start, literal text, anchored at end)`` when the regex is plain text."""
    start = pattern.startswith("^")
    body = pattern[1:] if start else pattern
    end = body.endswith("$") and not body.endswith("\\$")
    body = body[:-1] if end else body
    out, i = [], 0
    while i < len(body):
        c = body[i]
        if c == "\\":
            if i + 1 >= len(body) or body[i + 1].isalnum():
                return None  # \d, \w, \1 ...: not a literal
            out.append(body[i + 1])
            i += 2
            continue
        if c in _META:
            return None
        out.append(c)
        i += 1
    return start, "".join(out), end


def _escape(text: str) -> str:
    """Escape only what a regex needs (so ``.`` becomes ``\\.``, letters stay readable)."""
    return "".join("\\" + c if c in _META or c == "\\" else c for c in text)


def _template(text: str) -> str:
    return text.replace("\\", "\\\\")


def _shapes(shapes: Any) -> dict[str, tuple[int, ...]] | None:
    if shapes is None:
        return None
    if hasattr(shapes, "info") and hasattr(shapes, "keys"):  # a Checkpoint
        return {k: tuple(shapes.info(k).shape) for k in shapes.keys()}
    return {k: tuple(getattr(v, "shape", v)) for k, v in shapes.items()}


def _group_shapes(conv: Any, shapes: dict[str, tuple[int, ...]]) -> list[tuple[int, ...]] | None:
    """The source shapes of the conversion's first group (every group is assumed alike)."""
    groups = find_groups([conv], shapes, strict=False).groups
    return list(groups[0].source_shapes) if groups else None


def _stack_gap(conv: Any, shapes: dict[str, tuple[int, ...]]) -> tuple[tuple[str, ...], str] | None:
    """The stacked values and family of the first group not numbered ``0..n-1``, or None.

    A stacked tensor does not keep which index each slice had, and the unbind that undoes the
    stack names its slices ``0..n-1``: experts 0, 2, 5 would come back as 0, 1, 2."""
    for group in find_groups([conv], shapes, strict=False).groups:
        values = group.stacked_values()
        if not is_count(values):
            return values, group.family("from")
    return None
