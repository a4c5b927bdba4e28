"""The merge: a plan of what each target key gets, the streaming write, and its report.

``planning``: ``plan()`` -> ``MergePlan`` and ``remap()``; ``report``: ``Report`` (what was done to
every target key); ``merged_view``: the merge result as a lazy Checkpoint (for the value views).
"""
from __future__ import annotations

import importlib

# public name -> the module it lives in, imported on first use (importing a light submodule,
# e.g. ``ckptlab.align.keyfold`` for the CLI's parsers, must not pull torch through this file)
_LAZY = {'MergePlan': 'ckptlab.merge.planning', 'merged_tensor': 'ckptlab.merge.planning', 'plan': 'ckptlab.merge.planning', 'remap': 'ckptlab.merge.planning'}

__all__ = ['MergePlan', 'merged_tensor', 'plan', 'remap']


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
