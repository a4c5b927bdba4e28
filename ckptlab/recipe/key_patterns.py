"""Key patterns: ``blocks.{i}.attn.qkv.weight``, literal text with ``{name}`` placeholders.

A placeholder matches one or more characters without a dot; the same name twice means the same
value. Literal text is matched as text, never as a regex.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from ckptlab.errors import RecipeError
from ckptlab.io import limits
from ckptlab.recipe.patterns import BoundedRegex
from ckptlab.recipe.parsing import _type_name

__all__ = ["KeyPattern", "check_pattern", "braced"]

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class KeyPattern:
    """``blocks.{i}.attn.qkv.weight``: literal text with ``{name}`` placeholders."""

    text: str

    @cached_property
    def names(self) -> tuple[str, ...]:
        """Placeholder names in order of first appearance."""
        return tuple(dict.fromkeys(_PLACEHOLDER.findall(self.text)))

    @cached_property
    def regex(self) -> re.Pattern | BoundedRegex:
        """Placeholders each followed by a dot (or the end) match in linear time: ``re``.
        Others (``{a}_{b}``) can backtrack polynomially: the time-bounded engine."""
        parts, seen, pos = [], set(), 0
        for m in _PLACEHOLDER.finditer(self.text):
            parts.append(re.escape(self.text[pos:m.start()]))
            name = m.group(1)
            parts.append(f"(?P={name})" if name in seen else f"(?P<{name}>[^.]+)")
            seen.add(name)
            pos = m.end()
        parts.append(re.escape(self.text[pos:]))
        if all(self.text[m.end():m.end() + 1] in (".", "") for m in _PLACEHOLDER.finditer(self.text)):
            return re.compile("".join(parts))
        # generated from a checked pattern (its length bounded there; escaping makes it longer)
        return BoundedRegex("".join(parts), f"key pattern '{self.text[:80]}'", bounded=False)

    @cached_property
    def ends(self) -> tuple[str, str]:
        """The literal text before the first and after the last placeholder (a cheap first test)."""
        found = list(_PLACEHOLDER.finditer(self.text))
        if not found:
            return self.text, ""
        return self.text[:found[0].start()], self.text[found[-1].end():]

    def match(self, key: str) -> dict[str, str] | None:
        head, tail = self.ends
        if not (key.startswith(head) and key.endswith(tail)):
            return None
        m = self.regex.fullmatch(key)
        return m.groupdict() if m else None

    def matches(self, keys: Iterable[str]) -> Iterator[tuple[str, dict[str, str]]]:
        """(key, values) of each of ``keys`` the pattern matches, in order: ``match`` over many
        keys with its lookups done once."""
        head, tail = self.ends
        fullmatch = self.regex.fullmatch
        for key in keys:
            if key.startswith(head) and key.endswith(tail):
                m = fullmatch(key)
                if m:
                    yield key, m.groupdict()

    @cached_property
    def template(self) -> str:
        """The text as a ``str.format_map`` template (literal braces doubled): ``fill`` without
        a regex pass and a call per placeholder (every target key of a conversion is filled)."""
        parts, pos = [], 0
        for m in _PLACEHOLDER.finditer(self.text):
            parts.append(self.text[pos:m.start()].replace("{", "{{").replace("}", "}}"))
            parts.append("{" + m.group(1) + "}")
            pos = m.end()
        parts.append(self.text[pos:].replace("{", "{{").replace("}", "}}"))
        return "".join(parts)

    def fill(self, values: Mapping[str, str]) -> str:
        """Each placeholder replaced by its value, as is (a value is text, never read as a pattern)."""
        return self.template.format_map(values)

    def example(self) -> str:
        """The pattern with every placeholder as ``0`` (for "did you mean")."""
        return _PLACEHOLDER.sub("0", self.text)


def check_pattern(text: Any, where: str) -> KeyPattern:
    """``text`` as a KeyPattern, or a one-line ``RecipeError`` saying what is wrong with it."""
    if not isinstance(text, str) or not text:
        raise RecipeError(f"{where}: a key pattern must be a non-empty string, got {_type_name(text)}")
    if len(text) > limits.MAX_PATTERN_CHARS:
        raise RecipeError(f"{where}: key pattern of {len(text):,} characters exceeds the limit "
                          f"MAX_PATTERN_CHARS = {limits.MAX_PATTERN_CHARS:,}")
    stripped = _PLACEHOLDER.sub("", text)
    if "{" in stripped or "}" in stripped:
        raise RecipeError(f"{where}: bad placeholder in {text!r} (write {{name}}: letters, digits, _)")
    if "}{" in text:
        raise RecipeError(f"{where}: placeholders in {text!r} touch each other (cannot tell where one ends)")
    return KeyPattern(text)


def braced(names: Iterable[str]) -> str:
    """``{i}, {j}``: placeholder names as a message shows them."""
    return ", ".join("{" + n + "}" for n in names)
