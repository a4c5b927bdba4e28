"""What a user writes: the recipe and everything it is made of.

- ``model``: ``Recipe`` (rules, map, adapt, convert, dtype, params) and its YAML/JSON form, read
  by ``parsing``; its parts: ``rules`` (rename rules), ``adapt_spec`` (shape adapters),
  ``dtype_policy`` (casts on write), ``conversion`` (a ``convert`` entry), ``key_patterns``,
  ``ops/`` (one class per conversion op), ``groups`` (entries matched to keys);
- ``invert``: the recipe that undoes one; ``adapters``: the shape adapters' tensor functions;
- ``edits`` / ``conversion_edits``: what the app's editors do to a recipe (pure, no Streamlit);
- ``known/``: the catalogue of known conversions (one YAML recipe + fingerprint each).

``from ckptlab.recipe import Recipe`` (the old path) keeps working.
"""
from __future__ import annotations

import importlib

# public name -> the module it lives in, imported on first use (importing a light submodule,
# e.g. ``ckptlab.align.keyfold`` for the CLI's parsers, must not pull torch through this file)
_LAZY = {'ADAPT_FILLS': 'ckptlab.vocab', 'ADAPT_OPS': 'ckptlab.vocab', 'RULE_KINDS': 'ckptlab.vocab', 'AdaptSpec': 'ckptlab.recipe.adapt_spec', 'DtypeSpec': 'ckptlab.recipe.dtype_policy', 'Recipe': 'ckptlab.recipe.model', 'Rule': 'ckptlab.recipe.rules'}

__all__ = ['ADAPT_FILLS', 'ADAPT_OPS', 'AdaptSpec', 'DtypeSpec', 'RULE_KINDS', 'Recipe', 'Rule']


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
