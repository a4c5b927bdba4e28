"""Recipes: the ordered rename rules, explicit map and shape adapters that turn a source
checkpoint's keys into a target's.

A recipe is data, not code: it is what the web app edits, what the CLI reads from
``--recipe``, and what a training script replays. So it validates strictly on the way in
(one-line ``RecipeError`` naming the rule's position) and serialises to YAML/JSON that
round-trips exactly: ``Recipe.from_dict(r.to_dict()) == r`` and the same YAML text.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from ckptlab.errors import RecipeError
from ckptlab.recipe.adapt_spec import AdaptSpec
from ckptlab.recipe.conversion import Conversion
from ckptlab.recipe.dtype_policy import CAST_DTYPES, DTYPE_FIELDS, DtypeSpec  # noqa: F401
from ckptlab.recipe.parsing import (  # noqa: F401
    _json_load,
    _type_name,
    _yaml_load,
    quote,
    text_syntax,
    unknown,
)
from ckptlab.recipe.rules import Rule, _compile, rename_keys

__all__ = ["TOP_LEVEL_KEYS", "FRAGMENT_KEYS", "Recipe"]

TOP_LEVEL_KEYS = ("rules", "keep_target", "map", "adapt", "container", "convert", "dtype", "params")
# a suggestion fragment is a rule dict, or a mapping of some of these (``Recipe.merged``)
FRAGMENT_KEYS = ("map", "adapt", "container", "convert", "dtype", "keep_target")


def _params(data: Any) -> dict[str, Any]:
    """``params: {heads: 32}``: values a known conversion needs (ckptlab.recipe.known)."""
    if data is None:
        return {}
    if not isinstance(data, dict) or not all(isinstance(k, str) for k in data):
        raise RecipeError(f"recipe: 'params' must be a mapping name: value, got {_type_name(data)}")
    for name, value in data.items():
        if not isinstance(value, (int, float, str)) or isinstance(value, bool):
            raise RecipeError(f"params: {name!r} must be a number or a string, got {_type_name(value)}")
    return dict(data)


@dataclass
class Recipe:
    """Ordered rules, an explicit ``map`` (target_key: source_key, wins over the rules),
    per-target-key ``adapt`` specs, optionally the source ``container`` to use, ``convert``
    entries (key patterns through tensor ops; they claim their keys before the rules) and a
    ``dtype`` cast on write.

    Treat it as a value: the ``with_*`` methods return copies.
    """

    rules: list[Rule] = field(default_factory=list)
    map: dict[str, str] = field(default_factory=dict)
    adapt: dict[str, AdaptSpec] = field(default_factory=dict)
    container: str | None = None
    convert: list[Conversion] = field(default_factory=list)
    dtype: DtypeSpec | None = None
    params: dict[str, Any] = field(default_factory=dict)  # for known conversions: {heads: 32}
    # regex (searched): target keys that keep their own value on purpose, so a strict job accepts them
    keep_target: str | None = None

    # -- construction ------------------------------------------------------------------
    @classmethod
    def coerce(cls, recipe: "Recipe | dict | str | os.PathLike | None") -> "Recipe":
        """None, a Recipe, a dict (the YAML form) or a path to a YAML/JSON file."""
        if recipe is None:
            return cls()
        if isinstance(recipe, Recipe):
            return recipe
        if isinstance(recipe, dict):
            return cls.from_dict(recipe)
        if isinstance(recipe, (str, os.PathLike)):
            return cls.load(recipe)
        raise RecipeError(f"recipe: expected a Recipe, a dict or a path, got {_type_name(recipe)}")

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Recipe":
        """A ``.json`` file is read as JSON (its errors in JSON's words, line and column), any
        other as YAML (which JSON also is)."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise RecipeError(f"cannot read recipe: {reason}", path) from None
        try:
            return cls.from_text(text, syntax=text_syntax(path))
        except RecipeError as exc:
            raise RecipeError(exc.message, path) from None

    @classmethod
    def from_text(cls, text: str, syntax: str | None = None) -> "Recipe":
        """``syntax``: ``"json"``, ``"yaml"``, or None: JSON when the text starts with ``{``
        (then YAML flow style, should JSON fail), else YAML. A key given twice in one mapping
        is refused (the parsers would keep the last one silently)."""
        if syntax == "json" or (syntax is None and text.lstrip().startswith("{")):
            try:
                data = _json_load(text)
            except RecipeError:
                if syntax == "json":
                    raise
                try:  # maybe YAML flow style; when it is not that either, JSON's error is the one to show
                    data = _yaml_load(text)
                except RecipeError:
                    _json_load(text)
                    raise
            return cls.from_dict({} if data is None else data)
        data = _yaml_load(text)
        return cls.from_dict({} if data is None else data)

    @classmethod
    def from_dict(cls, data: Any) -> "Recipe":
        if not isinstance(data, dict):
            raise RecipeError(f"recipe: expected a mapping at the top level, got {_type_name(data)}")
        for key in data:
            if key not in TOP_LEVEL_KEYS:
                raise RecipeError(f"recipe: {unknown('key', key, TOP_LEVEL_KEYS)}")
        rules_in = data.get("rules") or []
        if not isinstance(rules_in, list):
            raise RecipeError(f"recipe: 'rules' must be a list, got {_type_name(rules_in)}")
        rules = [Rule.from_dict(item, index) for index, item in enumerate(rules_in, start=1)]
        map_in = data.get("map") or {}
        if not isinstance(map_in, dict):
            raise RecipeError(f"recipe: 'map' must be a mapping target_key: source_key, got {_type_name(map_in)}")
        for target, source in map_in.items():
            if not isinstance(target, str) or not isinstance(source, str):
                raise RecipeError(f"map: {target!r}: {source!r} is not str -> str")
        adapt_in = data.get("adapt") or {}
        if not isinstance(adapt_in, dict):
            raise RecipeError(f"recipe: 'adapt' must be a mapping target_key: spec, got {_type_name(adapt_in)}")
        adapt = {}
        for target, spec in adapt_in.items():
            if not isinstance(target, str):
                raise RecipeError(f"adapt: key {target!r} is not a string")
            adapt[target] = AdaptSpec.from_dict(spec, target)
        container = data.get("container")
        if container is not None and not isinstance(container, str):
            raise RecipeError(f"recipe: 'container' must be a string, got {_type_name(container)}")
        convert_in = data.get("convert") or []
        if not isinstance(convert_in, list):
            raise RecipeError(f"recipe: 'convert' must be a list, got {_type_name(convert_in)}")
        convert = [Conversion.from_dict(item, index) for index, item in enumerate(convert_in, start=1)]
        dtype = DtypeSpec.from_dict(data["dtype"]) if data.get("dtype") is not None else None
        keep_target = data.get("keep_target")
        if keep_target is not None:
            if not isinstance(keep_target, str):
                raise RecipeError(f"recipe: 'keep_target' must be a regex string, got {_type_name(keep_target)}")
            _compile(keep_target, "keep_target")
        return cls(rules, dict(map_in), adapt, container, convert, dtype, _params(data.get("params")), keep_target)

    # -- serialising -------------------------------------------------------------------
    def to_dict(self) -> dict:
        """The YAML/JSON form: ``rules`` always, the other sections when set."""
        out: dict[str, Any] = {"rules": [rule.to_dict() for rule in self.rules]}
        if self.keep_target is not None:
            out["keep_target"] = self.keep_target
        if self.map:
            out["map"] = dict(self.map)
        if self.adapt:
            out["adapt"] = {key: spec.to_dict() for key, spec in self.adapt.items()}
        if self.container is not None:
            out["container"] = self.container
        if self.convert:
            out["convert"] = [c.to_dict() for c in self.convert]
        if self.dtype is not None:
            out["dtype"] = self.dtype.to_dict()
        if self.params:
            out["params"] = dict(self.params)
        return out

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True, default_flow_style=False)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"

    def save(self, path: str | os.PathLike) -> Path:
        """Write YAML (or JSON for a ``.json`` path) atomically: temp file, then rename."""
        from ckptlab.io.writers.textfile import write_text_atomic

        path = Path(path)
        text = self.to_json() if path.suffix.lower() == ".json" else self.to_yaml()
        return write_text_atomic(path, text, "recipe")

    # -- copies with one more thing ----------------------------------------------------
    def with_rule(self, rule: "Rule | dict") -> "Recipe":
        new_rule = Rule.from_dict(rule, len(self.rules) + 1)
        return self._copy(rules=[*self.rules, new_rule])

    def with_map(self, target: str, source: str) -> "Recipe":
        if not isinstance(target, str) or not isinstance(source, str):
            raise RecipeError(f"map: {target!r}: {source!r} is not str -> str")
        return self._copy(map={**self.map, target: source})

    def with_adapt(self, target: str, spec: "AdaptSpec | dict") -> "Recipe":
        spec = AdaptSpec.from_dict(spec, target)
        return self._copy(adapt={**self.adapt, target: spec})

    def with_keep_target(self, pattern: str | None) -> "Recipe":
        """This recipe keeping the target keys ``pattern`` matches on purpose (joined with ``|`` to
        one already set)."""
        if pattern is not None:
            if not isinstance(pattern, str):
                raise RecipeError(f"keep_target: expected a regex string, got {_type_name(pattern)}")
            _compile(pattern, "keep_target")
            if self.keep_target and pattern != self.keep_target:
                pattern = f"{self.keep_target}|{pattern}"
        return self._copy(keep_target=pattern)

    def with_container(self, container: str | None) -> "Recipe":
        return self._copy(container=container)

    def with_convert(self, entry: "Conversion | dict") -> "Recipe":
        """This recipe with one more ``convert`` entry (validated as entry N+1)."""
        new = Conversion.from_dict(entry, len(self.convert) + 1)
        return self._copy(convert=[*self.convert, new])

    def with_dtype(self, dtype: "DtypeSpec | dict | str | None") -> "Recipe":
        return self._copy(dtype=None if dtype is None else DtypeSpec.from_dict(dtype))

    def _copy(self, **changes: Any) -> "Recipe":
        base = {"rules": list(self.rules), "map": dict(self.map), "adapt": dict(self.adapt),
                "convert": list(self.convert), "params": dict(self.params)}
        return replace(self, **{**base, **changes})

    def merged(self, fragment: dict) -> "Recipe":
        """This recipe plus one suggestion fragment (a rule dict, ``map``, ``adapt`` or
        ``container``): how an accepted suggestion joins the recipe."""
        if not isinstance(fragment, dict) or not fragment:
            raise RecipeError(f"fragment: expected a non-empty mapping, got {_type_name(fragment)}")
        recipe = self
        if any(k in fragment for k in FRAGMENT_KEYS):
            for key, value in fragment.items():
                if key == "map":
                    for target, source in (value or {}).items():
                        recipe = recipe.with_map(target, source)
                elif key == "adapt":
                    for target, spec in (value or {}).items():
                        recipe = recipe.with_adapt(target, spec)
                elif key == "container":
                    recipe = recipe.with_container(value)
                elif key == "convert":
                    for entry in value if isinstance(value, list) else [value]:
                        recipe = recipe.with_convert(entry)
                elif key == "dtype":
                    recipe = recipe.with_dtype(value)
                elif key == "keep_target":
                    recipe = recipe.with_keep_target(value)
                else:
                    raise RecipeError(f"fragment: unknown key {key!r} beside map/adapt/container/convert/dtype/keep_target")
            return recipe
        return recipe.with_rule(fragment)

    def inverted(self, partial: bool = False, shapes: Any = None) -> "Recipe":
        """The recipe that undoes this one (see ``ckptlab.recipe.invert``); what cannot be undone is
        named in a one-line ``RecipeError``, or left out (listed in ``.skipped``) with
        ``partial=True``. ``shapes``: the source's key -> shape, to undo a ``reshape``."""
        from ckptlab.recipe.invert import invert

        return invert(self, partial=partial, shapes=shapes)

    # -- applying ----------------------------------------------------------------------
    def keeps_target(self, target_key: str) -> bool:
        """True when ``keep_target`` says this target key keeps its own value on purpose."""
        return self.keep_target is not None and _compile(self.keep_target, "keep_target").search(target_key) is not None

    def rename(self, source_keys, labels: dict[int, str] | None = None) -> dict[str, tuple[str | None, str]]:
        """Apply the rules in order to each source key (``rules.rename_keys``): ``{source_key:
        (new_key or None when dropped, reason)}``; ``labels`` overrides "rule N" for some rule
        positions (0-based), e.g. with "suggested, high"."""
        return rename_keys(self.rules, source_keys, labels)
