"""Recipe regexes under bounds: a pattern from a web visitor must not stall the server.

``re`` checks a pattern's syntax (it is what a training script replays); the ``regex`` engine
matches it with a time bound and the GIL released, so a catastrophically backtracking rule
(``(a+)+$``) ends in a one-line ``RecipeError`` naming the rule instead of blocking every
visitor. Lengths and times are named limits (``io.formats.limits``).
"""
from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import regex as _regex

from ckptlab.errors import RecipeError
from ckptlab.io import limits

__all__ = ["BoundedRegex", "PatternTooSlow"]


class PatternTooSlow(RecipeError):
    """A pattern ran past its time bound; ``detail`` says so without naming where (the caller
    that knows the rule's position adds it)."""

    def __init__(self, where: str, detail: str, source: "BoundedRegex | None" = None):
        self.detail, self.source = detail, source
        super().__init__(f"{where}: {detail}")


class BoundedRegex:
    """A recipe's regex: its syntax checked by ``re`` (what a training script replays), matched
    by the ``regex`` engine under a time bound with the GIL released, so a catastrophically
    backtracking pattern from one visitor ends in a one-line ``RecipeError`` naming ``where``
    instead of stalling the server. ``deadline`` (a ``time.monotonic()`` value) bounds a pass."""

    def __init__(self, pattern: str, where: str, checked: re.Pattern | None = None, bounded: bool = True):
        if bounded and len(pattern) > limits.MAX_PATTERN_CHARS:
            raise RecipeError(f"{where}: pattern of {len(pattern):,} characters exceeds the limit "
                              f"MAX_PATTERN_CHARS = {limits.MAX_PATTERN_CHARS:,}")
        try:
            self.re = checked or re.compile(pattern)
            self._rx = _regex.compile(pattern)
        except (re.error, _regex.error, RecursionError, OverflowError) as exc:
            reason = "groups nested too deeply" if isinstance(exc, RecursionError) else exc
            raise RecipeError(f"{where}: bad regex {_shown(pattern, 80)}: {reason}") from None
        self.pattern, self.where = pattern, where
        self.groups, self.groupindex = self.re.groups, self.re.groupindex

    def search(self, key: str, deadline: float | None = None) -> Any:
        return self._run(self._rx.search, key, (key,), deadline)

    def fullmatch(self, key: str, deadline: float | None = None) -> Any:
        return self._run(self._rx.fullmatch, key, (key,), deadline)

    def sub(self, replacement: str, key: str, deadline: float | None = None) -> str:
        return self._run(self._rx.sub, key, (replacement, key), deadline)

    def _run(self, fn: Callable[..., Any], key: str, args: tuple, deadline: float | None) -> Any:
        timeout = limits.MAX_MATCH_SECONDS
        if deadline is not None:
            timeout = min(timeout, deadline - time.monotonic())
            if timeout <= 0:
                raise PatternTooSlow(self.where, f"the rules took more than MAX_RENAME_SECONDS = "
                                                 f"{limits.MAX_RENAME_SECONDS:g} s over this checkpoint's keys", self)
        try:
            return fn(*args, timeout=timeout, concurrent=True)
        except TimeoutError:
            raise PatternTooSlow(self.where, f"pattern {_shown(self.pattern, 80)} took more than MAX_MATCH_SECONDS = "
                                             f"{limits.MAX_MATCH_SECONDS:g} s on key {_shown(key, 60)} (it backtracks "
                                             "catastrophically: avoid nested repeats like (a+)+)", self) from None


def _shown(text: str, limit: int = limits.MAX_PATTERN_CHARS) -> str:
    """A pattern or key as the user typed it (no doubled backslashes), cut at ``limit``."""
    return f"'{text[:limit]}'" + ("…" if len(text) > limit else "")
