"""ckptlab: open any PyTorch checkpoint, align it with a model, fix it, and save it.

The public API (see README.md)::

    ck = ckptlab.open(path, container=None)           # lazy, safe, read-only
    al = ckptlab.align(source, target, recipe=None, auto="high")
    rep = ckptlab.remap(source, target, out_path, recipe=None, auto="high")
    rep = ckptlab.load_into(model, source, recipe=None, auto="high")
    groups = ckptlab.param_groups(model, rep, lr=1e-3, new_lr_mult=10.0)

Importing the package is cheap: every public name is imported on first use (PEP 562), so
``ckptlab --help`` never pays for torch. To add a public name, add one line to ``_LAZY``.

Note: ``ckptlab.align`` is the function, even after the submodule ``ckptlab.align`` is
imported (the names in ``_FUNCTIONS`` are properties of the package, which the import
system cannot overwrite); import the module's other names with ``from ckptlab.align import ...``.
"""
from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING

from ckptlab.errors import (  # cheap (no torch): the CLI needs them before anything else
    AdaptError,
    CheckpointError,
    ContainerError,
    MergeError,
    ModelSpecError,
    PathNotAllowedError,
    RecipeError,
    UnreadableFileError,
    UnsafePickleError,
    UnsupportedFormatError,
)

__version__ = "0.1.0"

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time ``_LAZY`` imports on first use
    from ckptlab.align import Alignment, align
    from ckptlab.checkpoint import Checkpoint, OtherEntry, open
    from ckptlab.diff import diff
    from ckptlab.finetune import param_groups
    from ckptlab.info import TensorInfo
    from ckptlab.merge import remap
    from ckptlab.recipe import AdaptSpec, Recipe, Rule
    from ckptlab.report import Report
    from ckptlab.stats import stats
    from ckptlab.warmstart import CkptlabWarning, load_into

# public name -> the module it lives in (imported on first use)
_LAZY = {
    "open": "ckptlab.checkpoint",
    "Checkpoint": "ckptlab.checkpoint",
    "OtherEntry": "ckptlab.checkpoint",
    "TensorInfo": "ckptlab.info",
    "Recipe": "ckptlab.recipe",
    "Rule": "ckptlab.recipe",
    "AdaptSpec": "ckptlab.recipe",
    "align": "ckptlab.align",
    "Alignment": "ckptlab.align",
    "Report": "ckptlab.report",
    "remap": "ckptlab.merge",
    "load_into": "ckptlab.warmstart",
    "CkptlabWarning": "ckptlab.warmstart",
    "param_groups": "ckptlab.finetune",
    "stats": "ckptlab.stats",
    "diff": "ckptlab.diff",
}
# functions that share their name with the submodule they live in: the function wins
_FUNCTIONS = ("align", "stats", "diff")

__all__ = [
    "open", "align", "remap", "load_into", "param_groups", "stats", "diff",
    "Checkpoint", "TensorInfo", "OtherEntry", "Recipe", "Rule", "AdaptSpec", "Alignment", "Report",
    "CheckpointError", "UnreadableFileError", "UnsafePickleError", "ContainerError",
    "UnsupportedFormatError", "RecipeError", "AdaptError", "MergeError", "ModelSpecError",
    "PathNotAllowedError", "CkptlabWarning",
]


def _load(name: str):
    try:
        module = importlib.import_module(_LAZY[name])
    except ModuleNotFoundError as exc:  # a module still being written (stats, diff)
        if exc.name != _LAZY[name]:
            raise
        raise AttributeError(f"module 'ckptlab' has no attribute {name!r}") from None
    return getattr(module, name)


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'ckptlab' has no attribute {name!r}")
    value = _load(name)
    if name not in _FUNCTIONS:
        globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


def _function_property(name: str) -> property:
    def get(_module):
        return _load(name)

    def ignore(_module, _value):  # the import system binding the submodule: keep the function
        pass

    return property(get, ignore)


class _Package(types.ModuleType):
    """The package's module type: ``align``, ``stats`` and ``diff`` are always the functions."""


for _name in _FUNCTIONS:
    setattr(_Package, _name, _function_property(_name))
sys.modules[__name__].__class__ = _Package
del _name
