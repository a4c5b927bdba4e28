"""Recipe text to values: YAML or JSON (a key given twice is an error, not a silent
loss), and the words its one-line errors use (``quote``, ``unknown`` with a did-you-mean).
"""
from __future__ import annotations

import json
import os
from difflib import get_close_matches
from pathlib import Path
from typing import Any

import yaml

from ckptlab.errors import RecipeError


def text_syntax(name: str | os.PathLike) -> str | None:
    """``"json"`` for a ``.json`` name, ``"yaml"`` for ``.yaml``/``.yml``, else None (sniffed)."""
    suffix = Path(str(name)).suffix.lower()
    return "json" if suffix == ".json" else "yaml" if suffix in (".yaml", ".yml") else None


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict:
    out: dict = {}
    for key, value in pairs:
        if key in out:
            raise RecipeError(f"recipe: not valid JSON: key {quote(key)} given twice in one object")
        out[key] = value
    return out


def _json_load(text: str) -> Any:
    try:
        return json.loads(text, object_pairs_hook=_unique_pairs)
    except json.JSONDecodeError as exc:
        raise RecipeError(f"recipe: not valid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key given twice in one mapping (it keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        if any(key_node.tag == "tag:yaml.org,2002:merge" for key_node, _ in node.value):
            return super().construct_mapping(node, deep=deep)  # '<<: *base' may override on purpose
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
            except TypeError:  # an unhashable key: the base class says so
                break
            if duplicate:
                mark = key_node.start_mark
                raise RecipeError(f"recipe: key {quote(key)} given twice at line {mark.line + 1}, "
                                  f"column {mark.column + 1} (the first one would be lost)")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _yaml_load(text: str) -> Any:
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise RecipeError(f"recipe: not valid YAML{where}: {problem}") from None




def quote(text: str) -> str:
    """Quote a key or pattern for a message as the user typed it (no doubled backslashes)."""
    return f"'{text}'"


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__



def unknown(what: str, name: Any, choices: tuple[str, ...]) -> str:
    """``unknown op 'padd' (did you mean 'pad'? expected pad, truncate, ...)``: a typo is named."""
    close = get_close_matches(str(name), choices, n=1, cutoff=0.6) if isinstance(name, str) else []
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"unknown {what} {name!r} ({hint}expected {', '.join(choices)})"
