"""Where a known conversion's parameters come from, in order: the user (``--param
heads=32``, ``params=`` in the API), the config of a side that is a model (an HF
``config``, Meta's ``params``), then a ``config.json`` / ``params.json`` beside a side's
file. The rotary head count cannot be read from shapes, so guessing is not an option:
what is missing is named, with where ckptlab looked.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from ckptlab.errors import RecipeError
from ckptlab.io.side_config import CONFIG_FILES, files_beside, read_json  # noqa: F401  (CONFIG_FILES: the names looked for)
from ckptlab.recipe.known import KnownConversion

__all__ = ["CONFIG_FILES", "parse_assignments", "find_params", "derive_params"]



def parse_assignments(items: Iterable[str] | None) -> dict[str, Any]:
    """``["heads=32", "kv_heads=8"]`` -> ``{"heads": 32, "kv_heads": 8}`` (ints when they look
    like ints); a one-line error for an item without ``=``."""
    out: dict[str, Any] = {}
    for item in items or ():
        name, sep, value = str(item).partition("=")
        name = name.strip()
        if not sep or not name:
            raise RecipeError(f"--param {item!r}: expected NAME=VALUE (e.g. heads=32)")
        value = value.strip()
        try:
            out[name] = int(value)
        except ValueError:
            out[name] = value
    return out


def _config_of(obj: Any) -> list[Mapping[str, Any]]:
    """Config mappings a model carries: HF's ``config`` (and its ``text_config``), Meta's
    ``params`` (ModelArgs), nanoGPT's ``config``; a ModelCheckpoint's model."""
    model = getattr(obj, "meta_model", None) or obj
    found = []
    for attr in ("config", "params", "args"):
        cfg = getattr(model, attr, None)
        if cfg is None or callable(cfg) and not hasattr(cfg, "__dict__"):
            continue
        data = cfg.to_dict() if hasattr(cfg, "to_dict") and callable(cfg.to_dict) else (
            dict(cfg) if isinstance(cfg, Mapping) else dict(getattr(cfg, "__dict__", {})))
        if data:
            found.append(data)
            text = data.get("text_config")
            if isinstance(text, Mapping):
                found.append(text)
    return found


def find_params(known: KnownConversion, sides: Iterable[tuple[str, Any]],
                given: Mapping[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, str], str]:
    """(values, where each came from, where ckptlab looked) for ``known``'s parameters.

    ``sides``: ``[("source", obj), ("target", obj)]``, each a model, a Checkpoint or a path.
    """
    given = dict(given or {})
    values = {p.name: given[p.name] for p in known.params if p.name in given}
    origin = {name: "given" for name in values}
    looked = []
    configs: list[tuple[str, Mapping[str, Any]]] = []
    for side, obj in sides:
        for cfg in _config_of(obj):
            configs.append((f"the {side} model's config", cfg))
        for path in files_beside(obj):
            configs.append((str(path), read_json(path)))
        looked.append(f"the {side}'s config and config.json/params.json beside it")
    for param in known.params:
        if param.name in values:
            continue
        for where, cfg in configs:
            hit = next((cfg[f] for f in param.read if isinstance(cfg.get(f), int) and not isinstance(cfg.get(f), bool)),
                       None)
            if hit is not None:
                values[param.name], origin[param.name] = hit, where
                break
    return values, origin, "; ".join(looked)


# -- parameters the shapes hold ------------------------------------------------------------
def derive_params(known: KnownConversion, shapes: Mapping[str, tuple[int, ...]], values: dict[str, Any],
                  origin: dict[str, str]) -> list[str]:
    """Fill the parameters ``known`` can read from the source's ``shapes`` (``Param.derive``)
    into ``values``; returns a note for each one the shapes contradict or cannot settle."""
    notes = []
    for param in known.params:
        if param.name in values or not param.derive or param.derive.get("times") not in values:
            continue
        times = values[param.derive["times"]]
        # PARAM = times x (rows(PART) - subtract x rows(WHOLE)) / (divide x rows(WHOLE)): k over q rows
        # for split projections; for a fused qkv beside o_proj, (qkv - o) / (2 o) of the heads
        subtract, divide = param.derive.get("subtract", 0), param.derive.get("divide", 1)
        ratios = [(times * (part - subtract * whole), divide * whole)
                  for part, whole in _row_ratios(shapes, param.derive["rows"], param.derive["per"])]
        found = {num // den for num, den in ratios if num > 0 and num % den == 0}
        if len(found) == 1 and len(ratios) and all(num > 0 and num % den == 0 for num, den in ratios):
            values[param.name] = found.pop()
            origin[param.name] = f"the shapes ({param.derive['rows']} rows / {param.derive['per']} rows x {times})"
        elif ratios:
            notes.append(f"known conversion {known.name!r}: {param.name} cannot be read from the shapes of "
                         f"{param.derive['rows']!r} and {param.derive['per']!r}; pass --param {param.name}=N")
    return notes


def _row_ratios(shapes: Mapping[str, tuple[int, ...]], part: str, whole: str) -> list[tuple[int, int]]:
    """(rows of PART, rows of WHOLE) for every layer where both patterns match a key (any prefix)."""
    def index(pattern: str) -> dict[tuple, int]:
        rx = re.compile("^(.*?)" + re.escape(pattern).replace(r"\{i\}", r"(\d+)") + "$")
        tail = pattern.rpartition("{i}")[2]  # a key the regex matches holds it: the others skip the regex
        out = {}
        for key, shape in shapes.items():
            if tail not in key:
                continue
            m = rx.match(key)
            if m and shape:
                out[m.groups()] = shape[0]
        return out
    parts, wholes = index(part), index(whole)
    return [(parts[k], wholes[k]) for k in parts if k in wholes and wholes[k]]
