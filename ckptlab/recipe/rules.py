"""Rename rules (``strip_prefix``, ``add_prefix``, ``replace``, ``drop``, ``keep``), applied in
order to every source key; the regex kinds are compiled once and checked when parsed.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from ckptlab.errors import RecipeError
from ckptlab.recipe.parsing import _type_name, quote, unknown
from ckptlab.vocab import RULE_KINDS

_REGEX_KINDS = ("replace", "drop", "keep")


def _compile(pattern: str, where: str) -> re.Pattern:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise RecipeError(f"{where}: bad regex {quote(pattern)}: {exc}") from None


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
                    _check_template(self.replacement, regex)
                except re.error as exc:
                    raise RecipeError(f"{where}: bad replacement {self.replacement!r}: {exc}") from None

    # -- applying ----------------------------------------------------------------------
    @cached_property
    def regex(self) -> re.Pattern | None:
        """The compiled pattern of a replace/drop/keep rule (compiled once per rule)."""
        return _compile(self.pattern, f"rule ({self.kind})") if self.kind in _REGEX_KINDS else None

    def apply(self, key: str) -> str | None:
        """The key after this rule; ``None`` when the rule drops it."""
        kind = self.kind
        if kind == "strip_prefix":
            return key[len(self.pattern):] if key.startswith(self.pattern) else key
        if kind == "add_prefix":
            return self.pattern + key
        regex = self.regex
        if kind == "replace":
            return regex.sub(self.replacement, key)
        if kind == "drop":
            return None if regex.search(key) else key
        return key if regex.search(key) else None  # keep

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




def rename_keys(rules: "list[Rule]", source_keys, labels: dict[int, str] | None = None) -> dict[str, tuple[str | None, str]]:
    """Apply the rules in order to each source key.

    Returns ``{source_key: (new_key or None when dropped, reason)}``; the reason lists
    the rules that changed the key ("add_prefix 'x.' (rule 1)") and is ``""`` when none
    did. ``labels`` overrides "rule N" for some rule positions (0-based), e.g. with
    "suggested, high".
    """
    labels = labels or {}
    tags = [labels.get(i, f"rule {i + 1}") for i in range(len(rules))]
    compiled = [(rule, rule.regex) for rule in rules]
    out: dict[str, tuple[str | None, str]] = {}
    for key in source_keys:
        current: str | None = key
        why: list[str] = []
        for (rule, regex), tag in zip(compiled, tags):
            kind = rule.kind
            if kind == "strip_prefix":
                if current.startswith(rule.pattern):
                    current = current[len(rule.pattern):]
                    why.append(f"{rule.describe()} ({tag})")
            elif kind == "add_prefix":
                current = rule.pattern + current
                why.append(f"{rule.describe()} ({tag})")
            elif kind == "replace":
                new = regex.sub(rule.replacement, current)
                if new != current:
                    current = new
                    why.append(f"{rule.describe()} ({tag})")
            elif kind == "drop":
                if regex.search(current):
                    why = [f"dropped by {tag} ({rule.describe()})"]
                    current = None
                    break
            elif not regex.search(current):  # keep
                why = [f"not kept by {tag} ({rule.describe()})"]
                current = None
                break
        out[key] = (current, "; ".join(why))
    return out
