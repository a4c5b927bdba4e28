"""The catalogue of known conversions: one YAML file each, shipped as package data.

Each file holds the conversion's ``name``, ``from``/``to`` (the two layouts), a
``description``, the ``params`` it needs (``heads`` for the rotary permute: shapes cannot
tell it), a key ``fingerprint`` (patterns both sides must have), the canonical key
``prefix`` of each side, and the ``recipe`` itself, whose op arguments may name a
parameter as ``$heads``. ``KnownConversion.instantiate`` fits the recipe to a real pair:
the prefixes found on each side (``module.``, ``vit.`` or none) replace the canonical ones,
entries that match nothing are left out, and parameters are filled in.
"""
from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any, Iterable, Mapping

import yaml

from ckptlab.errors import RecipeError

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class Param:
    """A parameter a conversion needs: ``read`` lists the config fields that hold it
    (``n_heads`` in Meta's params.json, ``num_attention_heads`` in HF's config.json);
    ``default`` names another parameter to fall back on; ``derive`` says how shapes determine
    it (``{rows: PART, per: WHOLE, times: PARAM}``: PARAM x rows(PART) / rows(WHOLE), e.g. the
    key/value heads of grouped-query attention from the k and q projections), so a value the
    shapes hold is read from them, never defaulted."""

    name: str
    description: str
    read: tuple[str, ...] = ()
    default: str | None = None
    derive: Mapping[str, str] | None = field(default=None, hash=False, compare=False)


@dataclass(frozen=True)
class KnownConversion:
    name: str
    from_: str
    to: str
    description: str
    params: tuple[Param, ...]
    fingerprint_source: tuple[str, ...]
    fingerprint_target: tuple[str, ...]
    prefix_source: str | None
    prefix_target: str | None
    orient_source: Mapping[str, str] = field(default_factory=dict, hash=False, compare=False)
    orient_target: Mapping[str, str] = field(default_factory=dict, hash=False, compare=False)
    recipe_data: Mapping[str, Any] = field(repr=False, hash=False, compare=False, default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The ``ckptlab recipes --json`` entry."""
        return {"name": self.name, "from": self.from_, "to": self.to, "description": self.description,
                "params": {p.name: p.description for p in self.params}}

    # -- parameters ---------------------------------------------------------------------
    def missing_params(self, values: Mapping[str, Any]) -> list[Param]:
        return [p for p in self.params if p.name not in values and p.default is None]

    def resolve_params(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Every parameter's value (defaults filled); a one-line error names the missing."""
        missing = self.missing_params(values)
        if missing:
            raise RecipeError(self.missing_message(missing))
        out = {p.name: values[p.name] if p.name in values else values[p.default] for p in self.params}
        for name, value in out.items():
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise RecipeError(f"known conversion {self.name!r}: parameter {name} must be a positive integer, "
                                  f"got {value!r}")
        return out

    def missing_message(self, missing: Iterable[Param], looked: str = "") -> str:
        missing = list(missing)
        names = "; ".join(f"{p.name}, {p.description}" for p in missing)
        flags = " ".join(f"--param {p.name}=N" for p in missing)
        where = f"; looked in {looked}" if looked else ""
        return f"known conversion {self.name!r} needs {names}{where}; pass {flags}"

    # -- the recipe -----------------------------------------------------------------------
    def recipe_dict(self, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The recipe as written in the catalogue, with ``$param`` values filled in."""
        values = self.resolve_params(params or {}) if self.params else {}
        return _fill(self.recipe_data, values, self.name)

    def recipe(self, params: Mapping[str, Any] | None = None):
        """The recipe as written (canonical prefixes) as a ``Recipe``."""
        from ckptlab.recipe.model import Recipe

        return Recipe.from_dict(self.recipe_dict(params))

    def matches(self, source_keys: "KeyIndex", target_keys: "KeyIndex") -> bool:
        """Whether both sides carry every fingerprint pattern (under any prefix)."""
        return (all(source_keys.has(_relative(p, self.prefix_source)) for p in self.fingerprint_source)
                and all(target_keys.has(_relative(p, self.prefix_target)) for p in self.fingerprint_target)
                and all(source_keys.oriented(_relative(p, self.prefix_source), o) for p, o in self.orient_source.items())
                and all(target_keys.oriented(_relative(p, self.prefix_target), o) for p, o in self.orient_target.items()))

    def instantiate(self, source_keys: "KeyIndex", target_keys: "KeyIndex",
                    params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The recipe fitted to this pair: canonical prefixes swapped for the ones found."""
        data = self.recipe_dict(params)
        src = _found_prefix(source_keys, self.fingerprint_source, self.prefix_source)
        tgt = _found_prefix(target_keys, self.fingerprint_target, self.prefix_target)
        if "convert" in data:
            data["convert"] = [{**entry, "from": _swap(entry["from"], self.prefix_source, src),
                                "to": _swap(entry["to"], self.prefix_target, tgt)} for entry in data["convert"]]
        return data


class KeyIndex:
    """Keys indexed by their last two components, so a fingerprint is checked without a
    scan of every key per pattern (20,000 keys x every catalogue entry). Given a mapping
    key -> shape, it also answers which way 2-D tensors lie (``oriented``)."""

    def __init__(self, keys: Iterable[str] | Mapping[str, tuple]):
        self.shapes = dict(keys) if isinstance(keys, Mapping) else {}
        self.keys = list(keys)
        by_tail: defaultdict[str, list[str]] = defaultdict(list)  # (no call per key: 80,000 at 20,000 keys)
        for key in self.keys:  # (its last component, then its last two: ``_tail``, inline)
            cut = key.rfind(".")
            if cut == -1:
                by_tail[key].append(key)
                continue
            by_tail[key[cut + 1:]].append(key)
            by_tail[key[key.rfind(".", 0, cut) + 1:]].append(key)
        self.by_tail: dict[str, list[str]] = dict(by_tail)

    def candidates(self, pattern: str) -> list[str]:
        tail = _tail(pattern)
        if _PLACEHOLDER.search(tail):
            return self.keys
        return self.by_tail.get(tail, [])

    def has(self, pattern: str) -> bool:
        regex = _suffix_regex(pattern)
        return any(regex.match(k) for k in self.candidates(pattern))

    def oriented(self, pattern: str, orientation: str) -> bool:
        """Every 2-D tensor matching ``pattern`` is ``wide`` (more columns than rows, as
        GPT-2's Conv1D stores (in, out) for an expanding layer) or ``tall``."""
        regex = _suffix_regex(pattern)
        shapes = [tuple(self.shapes.get(k, ())) for k in self.candidates(pattern) if regex.match(k)]
        shapes = [s for s in shapes if len(s) == 2]
        if not shapes:
            return False
        return all(s[1] > s[0] if orientation == "wide" else s[0] > s[1] for s in shapes)

    def prefixes(self, pattern: str) -> dict[str, int]:
        regex = _suffix_regex(pattern)
        counts: dict[str, int] = {}
        for key in self.candidates(pattern):
            m = regex.match(key)
            if m:
                counts[m.group(1)] = counts.get(m.group(1), 0) + 1
        return counts


def _tail(key: str) -> str:
    parts = key.rsplit(".", 2)
    return ".".join(parts[-2:])


@lru_cache(maxsize=512)
def _suffix_regex(pattern: str) -> re.Pattern:
    """``h.{i}.attn.c_attn.weight`` -> matches ``<prefix>h.3.attn.c_attn.weight`` with the
    prefix (empty or ending in a dot) as group 1."""
    body, pos = [], 0
    for m in _PLACEHOLDER.finditer(pattern):
        body.append(re.escape(pattern[pos:m.start()]))
        body.append(r"[^.]+")
        pos = m.end()
    body.append(re.escape(pattern[pos:]))
    return re.compile(r"^((?:[^.]+\.)*?)" + "".join(body) + "$")


def _relative(pattern: str, prefix: str | None) -> str:
    if prefix and pattern.startswith(prefix):
        return pattern[len(prefix):]
    return pattern


def _found_prefix(index: KeyIndex, patterns: Iterable[str], canonical: str | None) -> str | None:
    """The prefix the side's keys carry where the canonical layout has ``canonical``:
    the most common one in front of the fingerprint patterns written under it."""
    if canonical is None:
        return None
    counts: dict[str, int] = {}
    for p in patterns:
        if canonical and not p.startswith(canonical):
            continue
        for prefix, n in index.prefixes(_relative(p, canonical)).items():
            counts[prefix] = counts.get(prefix, 0) + n
    if not counts:
        return canonical
    return max(counts.items(), key=lambda item: (item[1], item[0] == canonical))[0]


def _swap(pattern: Any, canonical: str | None, found: str | None) -> Any:
    if isinstance(pattern, list):
        return [_swap(p, canonical, found) for p in pattern]
    if canonical is None or found is None or found == canonical:
        return pattern
    if canonical and not pattern.startswith(canonical):
        return pattern  # outside the prefixed part (``classifier.weight`` beside ``vit.``)
    return found + pattern[len(canonical):]


def _fill(value: Any, params: Mapping[str, Any], name: str) -> Any:
    if isinstance(value, str) and value.startswith("$"):
        if value[1:] not in params:
            raise RecipeError(f"known conversion {name!r}: unknown parameter {value!r}")
        return params[value[1:]]
    if isinstance(value, dict):
        return {k: _fill(v, params, name) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, params, name) for v in value]
    return value


# -- the catalogue -------------------------------------------------------------------------
def _load(text: str, where: str) -> KnownConversion:
    data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # libyaml: ~10x faster
    params = tuple(Param(name, spec.get("description", ""), tuple(spec.get("read", ())), spec.get("default"),
                         spec.get("derive"))
                   for name, spec in (data.get("params") or {}).items())
    prefix = data.get("prefix") or {}
    fp = data.get("fingerprint") or {}
    orient = fp.get("orient") or {}
    if not data.get("name") or "recipe" not in data:
        raise RecipeError(f"known conversion {where}: needs 'name' and 'recipe'")
    return KnownConversion(data["name"], data["from"], data["to"], " ".join(str(data["description"]).split()), params,
                           tuple(fp.get("source", ())), tuple(fp.get("target", ())),
                           prefix.get("source"), prefix.get("target"), dict(orient.get("source") or {}),
                           dict(orient.get("target") or {}), data["recipe"])


@lru_cache(maxsize=1)
def catalogue() -> tuple[KnownConversion, ...]:
    """Every known conversion shipped with ckptlab, in file-name order."""
    files = sorted((f for f in resources.files(__name__).iterdir() if f.name.endswith(".yaml")), key=lambda f: f.name)
    return tuple(_load(f.read_text(encoding="utf-8"), f.name) for f in files)


_MODEL_CLASS = re.compile(r"\b[A-Z][A-Za-z0-9]*(?:LMHeadModel|ForCausalLM|ForImageClassification|Model)\b")


def model_classes() -> list[str]:
    """The transformers model classes the catalogue's conversions name (``GPT2LMHeadModel``,
    ``LlamaForCausalLM``, ...), in catalogue order: the app offers them as a picker where a
    config.json names no class."""
    found: dict[str, None] = {}
    for known in catalogue():
        for text in (known.from_, known.to):
            if "transformers" in text:
                found.update(dict.fromkeys(_MODEL_CLASS.findall(text)))
    return list(found)


def names() -> list[str]:
    return [k.name for k in catalogue()]


def get(name: str) -> KnownConversion:
    for known in catalogue():
        if known.name == name:
            return known
    from ckptlab.recipe.parsing import unknown

    raise RecipeError(f"known conversions: {unknown('name', name, tuple(names()))}")
