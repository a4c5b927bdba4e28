"""ckptlab: open any PyTorch checkpoint, align it with a model, fix it, and save it.

The public API (see README.md)::

    ck = ckptlab.open(path, container=None)           # lazy, safe, read-only
    al = ckptlab.align(source, target, recipe=None, auto="high")
    rep = ckptlab.remap(source, target, out_path, recipe=None, auto="high")
    rep = ckptlab.load_into(model, source, recipe=None, auto="high")
    proof = ckptlab.prove(al)                         # both models run: outputs equal, or where they part
    groups = ckptlab.param_groups(model, rep, lr=1e-3, new_lr_mult=10.0)

Importing the package is cheap: every public name is imported on first use (PEP 562), so
``ckptlab --help`` never pays for torch. To add a public name, add one line to ``_LAZY``.

The package shows the pipeline (docs/architecture.md): ``io`` -> ``recipe`` -> ``align`` ->
``merge`` -> ``values`` -> ``models``, with the ``cli`` and ``ui`` faces on top; ``vocab`` and
``errors`` are the words and errors all of them share.

One name is both a stage and a function: ``ckptlab.align`` is the function (the contract's
entry point), even after the package ``ckptlab.align`` is imported (it is a property of this
module, which the import system cannot overwrite); ``from ckptlab.align import Alignment``
still reads the package.
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

from ckptlab.vocab import __version__  # noqa: E402  (one place: codegen stamps it into scripts)

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time ``_LAZY`` imports on first use
    from ckptlab.align.matcher import Alignment, align
    from ckptlab.io.checkpoint import Checkpoint, OtherEntry
    from ckptlab.io.opener import open
    from ckptlab.values.diff import diff
    from ckptlab.models.finetune import param_groups
    from ckptlab.io.tensor_info import TensorInfo
    from ckptlab.merge.planning import remap
    from ckptlab.recipe.adapt_spec import AdaptSpec
    from ckptlab.recipe.model import Recipe
    from ckptlab.recipe.rules import Rule
    from ckptlab.merge.report import Report
    from ckptlab.values.stats import stats
    from ckptlab.models.warmstart import CkptlabWarning, load_into
    from ckptlab.models.proof import Proof, prove

# public name -> the module it lives in (imported on first use)
_LAZY = {
    "open": "ckptlab.io.opener",
    "Checkpoint": "ckptlab.io.checkpoint",
    "OtherEntry": "ckptlab.io.checkpoint",
    "TensorInfo": "ckptlab.io.tensor_info",
    "Recipe": "ckptlab.recipe.model",
    "Rule": "ckptlab.recipe.rules",
    "AdaptSpec": "ckptlab.recipe.adapt_spec",
    "align": "ckptlab.align.matcher",
    "Alignment": "ckptlab.align.matcher",
    "Report": "ckptlab.merge.report",
    "remap": "ckptlab.merge.planning",
    "load_into": "ckptlab.models.warmstart",
    "CkptlabWarning": "ckptlab.models.warmstart",
    "param_groups": "ckptlab.models.finetune",
    "prove": "ckptlab.models.proof",
    "Proof": "ckptlab.models.proof",
    "stats": "ckptlab.values.stats",
    "diff": "ckptlab.values.diff",
}
# functions that share their name with the submodule they live in: the function wins
_FUNCTIONS = ("align",)

__all__ = [
    "open", "align", "remap", "load_into", "param_groups", "stats", "diff", "prove",
    "Checkpoint", "Proof", "TensorInfo", "OtherEntry", "Recipe", "Rule", "AdaptSpec", "Alignment", "Report",
    "CheckpointError", "UnreadableFileError", "UnsafePickleError", "ContainerError",
    "UnsupportedFormatError", "RecipeError", "AdaptError", "MergeError", "ModelSpecError",
    "PathNotAllowedError", "CkptlabWarning",
]


def _load(name: str):
    try:
        module = importlib.import_module(_LAZY[name])
    except ModuleNotFoundError as exc:
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
    """The package's module type: ``ckptlab.align`` is always the function."""


for _name in _FUNCTIONS:
    setattr(_Package, _name, _function_property(_name))
sys.modules[__name__].__class__ = _Package
del _name
