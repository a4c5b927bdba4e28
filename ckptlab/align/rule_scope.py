"""Which keys a list of rename rules (or a recipe's conversions) cannot touch, told without
running their patterns.

A rule's regex runs under a time bound (``recipe.patterns``) that costs a few microseconds a
call even when the pattern fails at its first character: over 20,000 keys, a rule such as
``^model\\.layers\\.11\\.mlp\\.`` (what the suggestion stages write) took most of an
alignment. A pattern anchored at the start by literal text cannot match a key that does not
begin with that text, so such keys are passed over unchanged; every other key goes through
the rules exactly as before (same results, same reasons, same time bounds). Likewise a
``convert`` entry's source pattern only matches keys ending in its literal tail
(``.self_attn.q_proj.weight``): the others are not offered to ``find_groups``.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache

from ckptlab.errors import RecipeError
from ckptlab.io import limits

_STOP = frozenset(".^$*+?{}[]()|")
_QUANTIFIER = frozenset("*+?{")


@lru_cache(maxsize=512)
def literal_head(pattern: str) -> str:
    """The text every match of ``pattern`` starts with at the start of a key, or ``""`` when
    it cannot be told simply (not anchored by ``^``, an alternation anywhere, a class first)."""
    if not pattern.startswith("^") or "|" in pattern:
        return ""
    head: list[str] = []
    i = 1
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            nxt = pattern[i + 1:i + 2]
            if not nxt or (nxt.isascii() and nxt.isalnum()):
                break  # \d, \b, \A, a group reference ...: not a literal
            head.append(nxt)
            i += 2
        elif c in _STOP:
            break
        else:
            head.append(c)
            i += 1
    if head and i < len(pattern) and pattern[i] in _QUANTIFIER:
        head.pop()  # 'a*', 'a?', 'a{0,1}': the last literal may be absent
    return "".join(head)


def passes_over(rules: Sequence) -> Callable[[str], bool] | None:
    """A test telling keys that go through every rule unchanged (none strips, replaces or drops
    them, and no time bound or length check could fire), or None when some rule may touch any
    key (``add_prefix``, ``keep``, a regex without a literal head)."""
    heads = _heads(rules)
    if heads is None:
        return None
    if not heads:
        return lambda key: len(key) <= limits.MAX_KEY_CHARS
    heads = tuple(heads)
    return lambda key: not key.startswith(heads) and len(key) <= limits.MAX_KEY_CHARS


def _heads(rules: Iterable) -> list[str] | None:
    heads = []
    for rule in rules:
        if rule.kind == "strip_prefix":
            heads.append(rule.pattern)
        elif rule.kind in ("replace", "drop"):
            head = literal_head(rule.pattern)
            if not head:
                return None
            heads.append(head)
        else:  # add_prefix renames every key; keep drops every key it does not match
            return None
    return heads


def rename(keys: list[str], recipe, labels: dict[int, str] | None = None) -> dict[str, tuple[str | None, str]]:
    """``recipe.rename(keys, labels)``, in the keys' order, running each regex rule only on the
    keys it may match. A key that every regex rule passes over is changed by its prefix rules
    alone: such keys are grouped by the prefix rules that change them, and each group takes the
    name those rules give and the reason ``recipe.rename`` gives one of them (the reason names
    the rules that changed a key, the same for the whole group)."""
    rules = list(recipe.rules)
    if not rules:
        return {key: (key, "") for key in keys}  # what the rules give when there are none
    heads = [literal_head(rule.pattern) if rule.kind in ("replace", "drop") else "" for rule in rules]
    slow: list[str] = []
    groups: dict[tuple[int, ...], list[tuple[str, str]]] = {}
    for key in keys:
        found = _by_prefixes(key, rules, heads)
        if found is None:
            slow.append(key)
        else:
            groups.setdefault(found[0], []).append((key, found[1]))
    out = recipe.rename(slow, labels) if slow else {}
    for touched, members in groups.items():
        if not touched:
            out.update((key, (key, "")) for key, _ in members)
            continue
        first, name = members[0]
        got, why = recipe.rename([first], labels)[first]
        if got != name:  # (cannot happen: then the key takes the rules' own path)
            out.update(recipe.rename([key for key, _ in members], labels))
            continue
        out.update((key, (new, why)) for key, new in members)
    return {key: out[key] for key in keys}


def _by_prefixes(key: str, rules: Sequence, heads: list[str]) -> tuple[tuple[int, ...], str] | None:
    """(positions of the rules that change ``key``, its new name) when only prefix rules change
    it and every regex rule fails at its literal head; None when a regex rule may match."""
    current, touched = key, []
    for i, rule in enumerate(rules):
        kind = rule.kind
        if kind == "strip_prefix":
            if current.startswith(rule.pattern):
                current = current[len(rule.pattern):]
                touched.append(i)
        elif kind == "add_prefix":
            current = rule.pattern + current
            touched.append(i)
        elif not heads[i] or current.startswith(heads[i]):  # keep, or a regex that may match
            return None
        if len(current) > limits.MAX_KEY_CHARS:  # the rules' own length check says it
            return None
    return tuple(touched), current


def find_groups_among(conversions: Sequence, shapes: dict, strict: bool = True, start: int = 1):
    """``find_groups(conversions, shapes, strict, start)``, each conversion offered only the
    unclaimed keys its source patterns may match (the others match none of them, so they join
    no group and are claimed by none), in recipe order as ``find_groups`` does; the groups of a
    conversion offered keys it was offered before in this alignment are not looked for again
    (``group_memo``). A strict call that fails is run again on every key: its message ("did you
    mean ...") names the closest of all of them, as before."""
    from ckptlab.align.group_memo import groups_among
    from ckptlab.recipe.groups import Matches, find_groups

    out = Matches()
    try:
        for index, conversion in enumerate(conversions, start=start):
            offered = _may_match(conversion, shapes, out.claimed)
            for group in groups_among(conversion, offered, index, strict):
                out.groups.append(group)
                for key in group.sources:
                    out.claimed[key] = group
    except RecipeError:
        if not strict:
            raise
        return find_groups(conversions, shapes, strict=True, start=start)
    return out


def offered(conversion, shapes: dict) -> dict:
    """The keys of ``shapes`` (in order) the conversion's source patterns may match: what
    ``find_groups_among`` offers it when it comes first."""
    return _may_match(conversion, shapes, {})


def _may_match(conversion, shapes: dict, claimed: dict) -> dict:
    """The unclaimed keys of ``shapes`` (in order) that end as one of the conversion's source
    patterns does after its last placeholder, or else begin as it does before its first."""
    ends = [pattern.ends for pattern in conversion.from_patterns]
    tails, heads = tuple({tail for _, tail in ends}), tuple({head for head, _ in ends})
    # (the keys filtered first, alone: a comprehension over the items unpacks 20,000 pairs)
    if "" not in tails:
        keys = [key for key in shapes if key.endswith(tails)]
    elif "" not in heads:
        keys = [key for key in shapes if key.startswith(heads)]
    else:
        keys = shapes
    return {key: shapes[key] for key in keys if key not in claimed}
