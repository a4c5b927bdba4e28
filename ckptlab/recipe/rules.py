"""Rename rules (``strip_prefix``, ``add_prefix``, ``replace``, ``drop``, ``keep``), applied in
order to every source key; the regex kinds are compiled once and checked when parsed.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from ckptlab.errors import RecipeError
from ckptlab.io import limits
from ckptlab.recipe.patterns import BoundedRegex, PatternTooSlow
from ckptlab.recipe.parsing import _type_name, quote, unknown
from ckptlab.vocab import RULE_KINDS

__all__ = ["Rule", "rename_keys"]

_REGEX_KINDS = ("replace", "drop", "keep")


def _compile(pattern: str, where: str) -> BoundedRegex:
    """A rule's regex: length-bounded, checked by ``re``, matched under a time bound."""
    return BoundedRegex(pattern, where)


def _bounded_key(key: str, rule: "Rule", tag: str = "") -> str:
    """A rule may not grow a key past ``MAX_KEY_CHARS`` (``\\g<0>\\g<0>`` rules double it each)."""
    if len(key) > limits.MAX_KEY_CHARS:
        where = f"{tag} ({rule.describe()})" if tag else rule.describe()
        raise RecipeError(f"{where}: makes a key of {len(key):,} characters, past the limit "
                          f"MAX_KEY_CHARS = {limits.MAX_KEY_CHARS:,}")
    return key


def _check_template(replacement: str, regex: re.Pattern) -> None:
    """Parse a ``re.sub`` template against its pattern (bad escapes, unknown groups)."""
    parser = getattr(re, "_parser", None)
    if parser is not None and hasattr(parser, "parse_template"):
        parser.parse_template(replacement, regex)
    else:  # pragma: no cover - other Pythons: expanding on an empty match still checks escapes
        regex.sub(replacement, "")




@dataclass(frozen=True)
class Rule:
    """One rename step, applied to every source key in recipe order.

    ``pattern`` is the prefix (strip_prefix/add_prefix) or the regex (replace/drop/keep);
    ``replacement`` is the ``re.sub`` replacement of a ``replace`` rule.
    """

    kind: str
    pattern: str
    replacement: str | None = None

    def __post_init__(self) -> None:
        self.validate()

    def validate(self, index: int | None = None) -> None:
        where = f"rule {index} ({self.kind})" if index is not None else f"rule ({self.kind})"
        if self.kind not in RULE_KINDS:
            where = f"rule {index}" if index is not None else "rule"
            raise RecipeError(f"{where}: {unknown('rule kind', self.kind, RULE_KINDS)}")
        if not isinstance(self.pattern, str):
            raise RecipeError(f"{where}: expected a string, got {_type_name(self.pattern)}")
        if self.kind in ("strip_prefix", "add_prefix") and not self.pattern:
            raise RecipeError(f"{where}: empty prefix")
        if self.kind == "replace":
            if not isinstance(self.replacement, str):
                raise RecipeError(f"{where}: 'with' must be a string, got {_type_name(self.replacement)}")
        elif self.replacement is not None:
            raise RecipeError(f"{where}: takes no replacement")
        if self.kind in _REGEX_KINDS:
            regex = _compile(self.pattern, where)
            if self.kind == "replace":
                try:  # a bad group reference would otherwise show only when a key matches
                    _check_template(self.replacement, regex.re)
                except re.error as exc:
                    raise RecipeError(f"{where}: bad replacement {self.replacement!r}: {exc}") from None

    # -- applying ----------------------------------------------------------------------
    @cached_property
    def regex(self) -> BoundedRegex | None:
        """The compiled pattern of a replace/drop/keep rule (compiled once per rule)."""
        return _compile(self.pattern, f"rule ({self.kind})") if self.kind in _REGEX_KINDS else None

    def apply(self, key: str, deadline: float | None = None) -> str | None:
        """The key after this rule; ``None`` when the rule drops it."""
        kind = self.kind
        if kind == "strip_prefix":
            return key[len(self.pattern):] if key.startswith(self.pattern) else key
        if kind == "add_prefix":
            return _bounded_key(self.pattern + key, self)
        regex = self.regex
        if kind == "replace":
            return _bounded_key(regex.sub(self.replacement, key, deadline), self)
        if kind == "drop":
            return None if regex.search(key, deadline) else key
        return key if regex.search(key, deadline) else None  # keep

    def describe(self) -> str:
        """``add_prefix 'attention_map.'``, ``replace '^conv1\\.' -> 'backbone_conv.'``."""
        if self.kind == "replace":
            return f"replace {quote(self.pattern)} -> {quote(self.replacement)}"
        return f"{self.kind} {quote(self.pattern)}"

    # -- (de)serialising ---------------------------------------------------------------
    def to_dict(self) -> dict:
        if self.kind == "replace":
            return {"replace": {"pattern": self.pattern, "with": self.replacement}}
        return {self.kind: self.pattern}

    @classmethod
    def from_dict(cls, data: Any, index: int = 1) -> "Rule":
        if isinstance(data, Rule):
            return data
        if not isinstance(data, dict) or len(data) != 1:
            shape = f"{len(data)} keys" if isinstance(data, dict) else _type_name(data)
            raise RecipeError(f"rule {index}: expected one 'kind: argument' pair, got {shape}")
        (kind, arg), = data.items()
        if kind not in RULE_KINDS:
            raise RecipeError(f"rule {index}: {unknown('rule kind', kind, RULE_KINDS)}")
        where = f"rule {index} ({kind})"
        if kind == "replace":
            if not isinstance(arg, dict):
                raise RecipeError(f"{where}: expected {{pattern: ..., with: ...}}, got {_type_name(arg)}")
            extra = sorted(set(map(str, arg)) - {"pattern", "with"})
            if extra:
                raise RecipeError(f"{where}: {unknown('field', extra[0], ('pattern', 'with'))}")
            if "pattern" not in arg or "with" not in arg:
                raise RecipeError(f"{where}: needs both 'pattern' and 'with'")
            pattern, replacement = arg["pattern"], arg["with"]
            if not isinstance(pattern, str):
                raise RecipeError(f"{where}: 'pattern' must be a string, got {_type_name(pattern)}")
        else:
            pattern, replacement = arg, None
        rule = object.__new__(cls)
        object.__setattr__(rule, "kind", kind)
        object.__setattr__(rule, "pattern", pattern)
        object.__setattr__(rule, "replacement", replacement)
        rule.validate(index)
        return rule




def rename_keys(rules: "list[Rule]", source_keys, labels: dict[int, str] | None = None
                ) -> dict[str, tuple[str | None, str]]:
    """Apply the rules in order to each source key.

    Returns ``{source_key: (new_key or None when dropped, reason)}``; the reason lists
    the rules that changed the key ("add_prefix 'x.' (rule 1)") and is ``""`` when none
    did. ``labels`` overrides "rule N" for some rule positions (0-based), e.g. with
    "suggested, high". The whole pass is bounded by ``MAX_RENAME_SECONDS``; a rule past its
    bound is named in the one-line error.
    """
    labels = labels or {}
    tags = [labels.get(i, f"rule {i + 1}") for i in range(len(rules))]
    compiled = [(rule, rule.regex) for rule in rules]
    deadline = time.monotonic() + limits.MAX_RENAME_SECONDS
    out: dict[str, tuple[str | None, str]] = {}
    for key in source_keys:
        try:
            out[key] = _rename_one(key, compiled, tags, deadline)
        except PatternTooSlow as exc:
            index = next(i for i, (_, regex) in enumerate(compiled) if regex is exc.source)
            raise RecipeError(f"{tags[index]} ({compiled[index][0].describe()}): {exc.detail}") from None
    return out


def _rename_one(key: str, compiled: list, tags: list[str], deadline: float) -> tuple[str | None, str]:
    current: str | None = key
    why: list[str] = []
    for (rule, regex), tag in zip(compiled, tags):
        kind = rule.kind
        if kind == "strip_prefix":
            if current.startswith(rule.pattern):
                current = current[len(rule.pattern):]
                why.append(f"{rule.describe()} ({tag})")
        elif kind == "add_prefix":
            current = _bounded_key(rule.pattern + current, rule, tag)
            why.append(f"{rule.describe()} ({tag})")
        elif kind == "replace":
            new = _bounded_key(regex.sub(rule.replacement, current, deadline), rule, tag)
            if new != current:
                current = new
                why.append(f"{rule.describe()} ({tag})")
        elif kind == "drop":
            if regex.search(current, deadline):
                return None, f"dropped by {tag} ({rule.describe()})"
        elif not regex.search(current, deadline):  # keep
            return None, f"not kept by {tag} ({rule.describe()})"
    return current, "; ".join(why)
