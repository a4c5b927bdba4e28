"""Recipe text to values: YAML or JSON (a key given twice is an error, not a silent
loss), and the words its one-line errors use (``quote``, ``unknown`` with a did-you-mean).
"""
from __future__ import annotations

import json
from collections.abc import Callable, Iterable
import os
from difflib import get_close_matches
from pathlib import Path
from typing import Any

import yaml

from ckptlab.errors import RecipeError
from ckptlab.io import limits

__all__ = ["text_syntax", "quote", "unknown"]


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
        data = json.loads(text, object_pairs_hook=_unique_pairs)
    except json.JSONDecodeError as exc:
        raise RecipeError(f"recipe: not valid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    except RecursionError:
        raise _too_deep() from None
    _check_size(data, lambda v: v.values() if isinstance(v, dict) else v if isinstance(v, list) else ())
    return data


def _too_deep() -> RecipeError:
    return RecipeError(f"recipe: nested deeper than the limit MAX_RECIPE_DEPTH = {limits.MAX_RECIPE_DEPTH}")


def _check_size(root: Any, children: Callable[[Any], Iterable[Any]]) -> None:
    """Refuse a tree (or graph of shared parts, as YAML aliases make) whose expansion is deeper
    than ``MAX_RECIPE_DEPTH`` or holds more than ``MAX_RECIPE_NODES`` values, or that holds
    itself. Iterative, each shared part counted once: a "billion laughs" costs its size."""
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            on_path.discard(key)
            kids = [id(k) for k in children(node)]
            size[key] = 1 + sum(size[k] for k in kids)
            depth[key] = 1 + max((depth[k] for k in kids), default=0)
            if depth[key] > limits.MAX_RECIPE_DEPTH:
                raise _too_deep()
            if size[key] > limits.MAX_RECIPE_NODES:
                raise RecipeError(f"recipe: more than MAX_RECIPE_NODES = {limits.MAX_RECIPE_NODES:,} values "
                                  "with its aliases and merge keys expanded")
            continue
        if key in size:
            continue
        if key in on_path:
            raise RecipeError("recipe: an alias refers to the value that holds it (a recipe is a tree)")
        on_path.add(key)
        stack.append((node, True))
        stack.extend((k, False) for k in children(node) if id(k) not in size)


def _yaml_children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return list(node.value) if isinstance(node, yaml.SequenceNode) else []


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key given twice in one mapping (it keeps the last),
    and a document nested deeper than ``MAX_RECIPE_DEPTH`` (checked as it is composed, before
    Python's recursion limit) or too big once its aliases and merge keys are expanded
    (checked before anything is constructed or merged)."""

    _depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > limits.MAX_RECIPE_DEPTH:
                mark = self.peek_event().start_mark
                raise RecipeError(f"recipe: nested deeper than the limit MAX_RECIPE_DEPTH = "
                                  f"{limits.MAX_RECIPE_DEPTH} at line {mark.line + 1}, column {mark.column + 1}")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def get_single_data(self) -> Any:
        node = self.get_single_node()
        if node is None:
            return None
        _check_size(node, _yaml_children)
        return self.construct_document(node)

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
