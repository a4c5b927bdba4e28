"""Matching: which source tensor feeds which target key, with a status and a reason.

- ``types``: the results (``Row``, ``Status``, ``Suggestion``, ``Alignment``), a leaf every stage imports;
- ``matcher``: ``align()``: rename by the recipe, apply suggestions, build the rows;
- ``suggest/``: one-way suggestion stages (container, known conversions, prefix, structure,
  renames, adapters, order); ``warnings``: results that look fine and are not;
- ``keyfold`` / ``module_tree``: keys folded for display, parameters grouped by module;
- ``rule_scope`` / ``gc_pause`` / ``group_memo``: speed without other results (a rule's regex
  skipped on keys its literal head rules out; the cyclic collector held off while an alignment is
  built; a conversion's groups found once per alignment for the keys it is offered).

``from ckptlab.align import Alignment`` (the old path) keeps working; ``ckptlab.align`` the
attribute of the package is the function.
"""
from __future__ import annotations

import importlib

# public name -> the module it lives in, imported on first use (importing a light submodule,
# e.g. ``ckptlab.align.keyfold`` for the CLI's parsers, must not pull torch through this file)
_LAZY = {'STATUSES': 'ckptlab.vocab', 'Status': 'ckptlab.vocab', 'Alignment': 'ckptlab.align.types', 'Row': 'ckptlab.align.types', 'Suggestion': 'ckptlab.align.types', 'align': 'ckptlab.align.matcher'}

__all__ = ['Alignment', 'Row', 'STATUSES', 'Status', 'Suggestion', 'align']


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
