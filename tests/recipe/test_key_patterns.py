"""Key patterns: ``fill`` from its template and ``matches`` over many keys give what the plain
definitions give (placeholders replaced by their values as text; ``match`` key by key)."""
from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from ckptlab.recipe.key_patterns import KeyPattern

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
PATTERNS = st.lists(st.sampled_from(["a", ".", "{i}", "{j}", "_", "{", "}", "{{", "{0}", "{i:x}", "%s", "\\"]),
                    max_size=7).map("".join)
VALUES = st.text(st.sampled_from("ab.{}0_\\%"), min_size=1, max_size=4)


@settings(max_examples=500, deadline=None)
@given(text=PATTERNS, i=VALUES, j=VALUES)
def test_fill_replaces_each_placeholder_by_its_value_as_text(text, i, j):
    values = {"i": i, "j": j}
    assert _outcome(KeyPattern(text).fill, values) == _outcome(
        lambda v: _PLACEHOLDER.sub(lambda m: v[m.group(1)], text), values)


def _outcome(fill, values):
    try:
        return fill(values)
    except KeyError as exc:  # a placeholder with no value: the same name missing
        return ("KeyError", exc.args)


@settings(max_examples=300, deadline=None)
@given(text=PATTERNS.filter(lambda t: "}{" not in t), keys=st.lists(st.text("a._0{}ij", max_size=8), max_size=8))
def test_matches_gives_what_match_gives_key_by_key(text, keys):
    pattern = KeyPattern(text)
    want = [(key, pattern.match(key)) for key in keys if pattern.match(key) is not None]
    assert list(pattern.matches(keys)) == want
