"""Which keys a list of rename rules cannot touch, told without running their regexes.

A rule's regex runs under a time bound (``recipe.patterns``) that costs a few microseconds a
call even when the pattern fails at its first character: over 20,000 keys, a rule such as
``^model\\.layers\\.11\\.mlp\\.`` (what the suggestion stages write) took most of an
alignment. A pattern anchored at the start by literal text cannot match a key that does not
begin with that text, so such keys are passed over unchanged; every other key goes through
the rules exactly as before (same results, same reasons, same time bounds).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache

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
    """``recipe.rename(keys, labels)``, with the keys no rule can touch passed over (``(key, "")``,
    as the rules would give them), in the keys' order."""
    passes = passes_over(recipe.rules) if recipe.rules else None
    if passes is None:
        return recipe.rename(keys, labels)
    done = recipe.rename([k for k in keys if not passes(k)], labels)
    return {k: done[k] if k in done else (k, "") for k in keys}
