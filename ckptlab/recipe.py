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
import re
import time
from dataclasses import dataclass, field, replace
from difflib import get_close_matches
from functools import cached_property
from pathlib import Path
from collections.abc import Callable, Iterable
from typing import Any

import yaml

from ckptlab.convert import BoundedRegex, Conversion, ConvertError, PatternTooSlow
from ckptlab.errors import RecipeError
from ckptlab.formats import limits

RULE_KINDS = ("strip_prefix", "add_prefix", "replace", "drop", "keep")
ADAPT_OPS = ("pad", "truncate", "resize", "sum", "reinit")
ADAPT_FILLS = ("zeros", "mean", "init", "repeat")
TOP_LEVEL_KEYS = ("rules", "map", "adapt", "container", "convert", "dtype", "params")
CAST_DTYPES = ("bfloat16", "float16", "float32", "float64", "float8_e4m3fn", "float8_e5m2")
DTYPE_FIELDS = ("to", "keep")
_REGEX_KINDS = ("replace", "drop", "keep")


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


def _compile(pattern: str, where: str) -> BoundedRegex:
    """A rule's regex: length-bounded, checked by ``re``, matched under a time bound."""
    return BoundedRegex(pattern, where)


def _check_template(replacement: str, regex: re.Pattern) -> None:
    """Parse a ``re.sub`` template against its pattern (bad escapes, unknown groups)."""
    parser = getattr(re, "_parser", None)
    if parser is not None and hasattr(parser, "parse_template"):
        parser.parse_template(replacement, regex)
    else:  # pragma: no cover - other Pythons: expanding on an empty match still checks escapes
        regex.sub(replacement, "")


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

def _bounded_key(key: str, rule: "Rule", tag: str = "") -> str:
    """A rule may not grow a key past ``MAX_KEY_CHARS`` (``\\g<0>\\g<0>`` rules double it each)."""
    if len(key) > limits.MAX_KEY_CHARS:
        where = f"{tag} ({rule.describe()})" if tag else rule.describe()
        raise RecipeError(f"{where}: makes a key of {len(key):,} characters, past the limit "
                          f"MAX_KEY_CHARS = {limits.MAX_KEY_CHARS:,}")
    return key


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


@dataclass(frozen=True)
class AdaptSpec:
    """How a source tensor of another shape is fitted to a target key (applied by merge)."""

    op: str
    dim: int | None = None
    fill: str = "zeros"

    def __post_init__(self) -> None:
        self.validate()

    def validate(self, key: str | None = None) -> None:
        where = f"adapt {key!r}" if key is not None else "adapt"
        if self.op not in ADAPT_OPS:
            raise RecipeError(f"{where}: {unknown('op', self.op, ADAPT_OPS)}")
        if self.fill not in ADAPT_FILLS:
            raise RecipeError(f"{where}: {unknown('fill', self.fill, ADAPT_FILLS)}")
        if self.dim is not None and (isinstance(self.dim, bool) or not isinstance(self.dim, int)):
            raise RecipeError(f"{where}: dim must be an integer, got {_type_name(self.dim)}")

    def describe(self) -> str:
        """``pad dim 1 (fill zeros)``, ``truncate``, ``reinit``."""
        text = self.op + (f" dim {self.dim}" if self.dim is not None else "")
        return text + (f" (fill {self.fill})" if self.op in ("pad", "resize") else "")

    def to_dict(self) -> dict:
        out: dict[str, Any] = {"op": self.op}
        if self.dim is not None:
            out["dim"] = self.dim
        if self.fill != "zeros":
            out["fill"] = self.fill
        return out

    @classmethod
    def from_dict(cls, data: Any, key: str | None = None) -> "AdaptSpec":
        if isinstance(data, AdaptSpec):
            return data
        where = f"adapt {key!r}" if key is not None else "adapt"
        if not isinstance(data, dict):
            raise RecipeError(f"{where}: expected {{op: ..., dim: ..., fill: ...}}, got {_type_name(data)}")
        extra = sorted(set(map(str, data)) - {"op", "dim", "fill"})
        if extra:
            raise RecipeError(f"{where}: {unknown('field', extra[0], ('op', 'dim', 'fill'))}")
        if "op" not in data:
            raise RecipeError(f"{where}: needs an 'op' ({', '.join(ADAPT_OPS)})")
        spec = object.__new__(cls)
        object.__setattr__(spec, "op", data["op"])
        object.__setattr__(spec, "dim", data.get("dim"))
        object.__setattr__(spec, "fill", data.get("fill", "zeros"))
        spec.validate(key)
        return spec


@dataclass(frozen=True)
class DtypeSpec:
    """``dtype: {to: bfloat16, keep: "norm|bias"}``: floating tensors are written in ``to``,
    except those whose target key matches the ``keep`` regex (they keep their own dtype)."""

    to: str
    keep: str | None = None

    def __post_init__(self) -> None:
        if self.to not in CAST_DTYPES:
            raise RecipeError(f"dtype: {unknown('dtype', self.to, CAST_DTYPES)}")
        if self.keep is not None:
            if not isinstance(self.keep, str):
                raise RecipeError(f"dtype: 'keep' must be a regex string, got {_type_name(self.keep)}")
            _compile(self.keep, "dtype (keep)")

    @cached_property
    def keep_regex(self) -> BoundedRegex | None:
        return None if self.keep is None else _compile(self.keep, "dtype (keep)")

    def casts(self, key: str) -> bool:
        """Whether ``key`` (a floating tensor) is written in ``to``."""
        return self.keep_regex is None or not self.keep_regex.search(key)

    def describe(self) -> str:
        return f"cast to {self.to}" + (f" (keeping {quote(self.keep)})" if self.keep else "")

    def to_dict(self) -> dict:
        return {"to": self.to} if self.keep is None else {"to": self.to, "keep": self.keep}

    @classmethod
    def from_dict(cls, data: Any) -> "DtypeSpec":
        if isinstance(data, DtypeSpec):
            return data
        if isinstance(data, str):
            return cls(data)
        if not isinstance(data, dict):
            raise RecipeError(f"dtype: expected {{to: ..., keep: ...}}, got {_type_name(data)}")
        extra = sorted(set(map(str, data)) - set(DTYPE_FIELDS))
        if extra:
            raise RecipeError(f"dtype: {unknown('field', extra[0], DTYPE_FIELDS)}")
        if "to" not in data:
            raise RecipeError(f"dtype: needs 'to' ({', '.join(CAST_DTYPES)})")
        return cls(data["to"], data.get("keep"))


def _params(data: Any) -> dict[str, Any]:
    """``params: {heads: 32}``: values a known conversion needs (ckptlab.known)."""
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
        return cls(rules, dict(map_in), adapt, container, convert, dtype, _params(data.get("params")))

    # -- serialising -------------------------------------------------------------------
    def to_dict(self) -> dict:
        """The YAML/JSON form: ``rules`` always, the other sections when set."""
        out: dict[str, Any] = {"rules": [rule.to_dict() for rule in self.rules]}
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
        from ckptlab.textfile import write_text_atomic

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
        if any(k in fragment for k in ("map", "adapt", "container", "convert", "dtype")):
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
                else:
                    raise RecipeError(f"fragment: unknown key {key!r} beside map/adapt/container/convert/dtype")
            return recipe
        return recipe.with_rule(fragment)

    def inverted(self, partial: bool = False, shapes: Any = None) -> "Recipe":
        """The recipe that undoes this one (see ``ckptlab.invert``); what cannot be undone is
        named in a one-line ``RecipeError``, or left out (listed in ``.skipped``) with
        ``partial=True``. ``shapes``: the source's key -> shape, to undo a ``reshape``."""
        from ckptlab.invert import invert

        return invert(self, partial=partial, shapes=shapes)

    # -- applying ----------------------------------------------------------------------
    def rename(self, source_keys, labels: dict[int, str] | None = None) -> dict[str, tuple[str | None, str]]:
        """Apply the rules in order to each source key.

        Returns ``{source_key: (new_key or None when dropped, reason)}``; the reason lists
        the rules that changed the key ("add_prefix 'x.' (rule 1)") and is ``""`` when none
        did. ``labels`` overrides "rule N" for some rule positions (0-based), e.g. with
        "suggested, high".
        """
        labels = labels or {}
        tags = [labels.get(i, f"rule {i + 1}") for i in range(len(self.rules))]
        compiled = [(rule, rule.regex) for rule in self.rules]
        deadline = time.monotonic() + limits.MAX_RENAME_SECONDS
        out: dict[str, tuple[str | None, str]] = {}
        for key in source_keys:
            try:
                out[key] = self._rename_one(key, compiled, tags, deadline)
            except PatternTooSlow as exc:
                index = next(i for i, (_, regex) in enumerate(compiled) if regex is exc.source)
                raise RecipeError(f"{tags[index]} ({compiled[index][0].describe()}): {exc.detail}") from None
        return out

    @staticmethod
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
