"""Which known conversion fits a pair, and how well: the suggestion stage that offers them.

A conversion whose fingerprint both sides carry is fitted to the pair (prefixes found,
parameters filled, entries that match nothing left out) and simulated on the suggestion
state, followed by the prefix fixes it leaves to do. It is ``high`` when it then explains
nearly every target key (``NEARLY``) with fitting shapes and no conflict, ``medium`` when
it explains more than before without conflict; a parameter nobody could supply is a note
(a warning of the alignment) naming it, never a guess.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ckptlab.align.types import Suggestion
from ckptlab.recipe.known import KeyIndex, KnownConversion, catalogue
from ckptlab.recipe.known.params import derive_params, find_params
from ckptlab.recipe.rules import Rule

NEARLY = 0.9


def known_suggestions(state, params: Mapping[str, Any] | None = None, sides: Iterable[tuple[str, Any]] = (),
                      notes: list[str] | None = None):
    """(suggestions, the state with the high one applied) for a ``ckptlab.align.suggest.state.State``."""
    from ckptlab.align.suggest.prefix import prefix_suggestions

    sides = list(sides)
    if len(state.stats().fed) == len(state.target_shapes):
        return [], state  # everything loads already (the recipe given does the job): nothing to offer
    free = {k: v for k, v in state.source_shapes.items() if k not in state.claimed}
    s_index, t_index = KeyIndex(free), KeyIndex(state.target_shapes)
    out: list[Suggestion] = []
    base_fed = None
    for known in catalogue():
        if not known.matches(s_index, t_index):
            continue
        values, origin, looked = find_params(known, sides, params)
        derived_notes = derive_params(known, free, values, origin)
        if notes is not None:
            notes.extend(derived_notes)
        missing = known.missing_params(values)
        if missing:
            if notes is not None:
                notes.append(known.missing_message(missing, looked))
            continue
        data = known.instantiate(s_index, t_index, values)
        if base_fed is None:
            base_fed = prefix_suggestions(state)[1].stats().fed
        graded = _grade(known, data, state, base_fed, origin, values)
        if graded is None:
            continue
        suggestions, after = graded
        out.extend(suggestions)
        if suggestions[0].confidence == "high":
            state = after
            base_fed = None
    return out, state


def _grade(known: KnownConversion, data: dict, state, base_fed: set, origin: Mapping[str, str],
           values: Mapping[str, Any]):
    from ckptlab.align.rule_scope import find_groups_among, offered
    from ckptlab.align.suggest.prefix import prefix_suggestions
    from ckptlab.recipe.conversion import Conversion

    free = {k: v for k, v in state.source_shapes.items() if k not in state.claimed}
    entries = []
    misfit = []
    left_out: list[str] = []
    found = []  # (keys offered, groups) of each entry kept: what with_conversions would find again
    for entry in data.get("convert", []):
        conv = Conversion.from_dict(entry, len(entries) + 1)
        keys = offered(conv, free)
        # (numbered as the entry will be once applied: the rows then take these very groups)
        every = find_groups_among([conv], keys, strict=False, start=len(entries) + 1).groups
        groups = _onto_target(every, state.target_shapes)
        if not groups:
            continue  # this pair has no such tensors (no qkv bias, no head): leave the entry out
        fits = _fit(groups, state.target_shapes)
        if not fits and not conv.ops:
            # a rename onto a tensor of another shape (a head with another class count): left
            # out, so the target keeps its own values there instead of blocking the merge
            left_out.extend(t for g in groups for t in g.targets)
            continue
        entries.append(entry)
        found.append((keys, every))
        if not fits:
            misfit.append(entry)
    rules = [Rule.from_dict(r, i) for i, r in enumerate(data.get("rules", []), start=1)]
    if not entries and not rules:
        return None
    after = _converted(state, entries, found) if entries else state
    for rule in rules:
        after = after.with_rule(rule)
    before_conflicts = state.stats().conflict
    applied = after
    stats = prefix_suggestions(after)[1].stats()  # the prefix fixes it leaves to do, done
    gain = len(stats.fed) - len(base_fed)
    conflicts = stats.conflict - before_conflicts
    if gain <= 0 or conflicts:
        return None
    n_target = len(state.target_shapes)
    nearly = len(stats.fed) >= NEARLY * n_target
    confidence = "high" if nearly and not misfit else "medium"
    given = ", ".join(f"{k}={values[k]} from {origin.get(k, 'its default')}" for k in values)
    reason = (f"known conversion {known.name!r} ({known.from_} -> {known.to}): {known.description} "
              f"Then {len(stats.fed)} of {n_target} target keys are fed with fitting shapes")
    if given:
        reason += f" ({given})"
    if misfit:
        reason += f"; {len(misfit)} of its conversions give other shapes than the target's"
    if left_out:
        from ckptlab.align.keyfold import fold_pattern

        reason += (f"; {fold_pattern(left_out)!r} left out: the shapes differ (e.g. another class count), "
                   "so the target keeps its own values there")
    converted = len(applied.converted) - len(state.converted)
    suggestions = []
    if entries:
        suggestions.append(Suggestion({"convert": entries}, confidence, reason, max(converted, gain)))
    for i, rule in enumerate(rules, start=1):
        part = f" (rule {i} of {len(rules)})" if len(rules) > 1 else ""
        suggestions.append(Suggestion(rule.to_dict(), confidence, reason + part, gain))
    return suggestions, applied


def _onto_target(groups: list, target_shapes: Mapping[str, tuple]) -> list:
    """The groups whose every target the target has (all of them, the usual case, told in one
    pass over their targets rather than a test per group)."""
    has = target_shapes.__contains__
    if all(map(has, [t for g in groups for t in g.targets])):
        return list(groups)
    return [g for g in groups if all(map(has, g.targets))]


def _fit(groups: list, target_shapes: Mapping[str, tuple]) -> bool:
    """Every output of these groups has its target's shape (a loop: 20,000 groups, no frame each)."""
    for g in groups:
        for t, shape in zip(g.targets, g.target_shapes):
            if tuple(shape) != target_shapes[t]:
                return False
    return True


def _converted(state, entries: list[dict], found: list[tuple[dict, list]]):
    """``state.with_conversions(entries)``, from the groups each entry found on its own when no
    entry was offered a key an earlier one claims (then each is offered, in recipe order, the
    very keys it was offered alone, and finds the same groups); else worked out again."""
    claimed: set[str] = set()
    for keys, groups in found:
        if not claimed.isdisjoint(keys):
            return state.with_conversions(entries)
        for g in groups:
            claimed.update(g.sources)
    return state.with_groups([g for _, groups in found for g in groups])
