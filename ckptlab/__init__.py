"""ckptlab: open any PyTorch checkpoint, align it with a model, fix it, and save it.

The public API (see README.md)::

    ck = ckptlab.open(path, container=None)           # lazy, safe, read-only
    al = ckptlab.align(source, target, recipe=None, auto="high")
    rep = ckptlab.remap(source, target, out_path, recipe=None, auto="high")
    rep = ckptlab.load_into(model, source, recipe=None, auto="high")
    groups = ckptlab.param_groups(model, rep, lr=1e-3, new_lr_mult=10.0)
"""
from ckptlab.checkpoint import Checkpoint, OtherEntry, open
from ckptlab.errors import (
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
from ckptlab.info import TensorInfo

# Imported eagerly: the submodule ``ckptlab.align`` would otherwise shadow the function
# ``ckptlab.align`` as soon as anything imports the submodule.
from ckptlab.align import Alignment, align  # noqa: E402

__version__ = "0.1.0"

_LAZY = {
    "Recipe": "ckptlab.recipe",
    "remap": "ckptlab.merge",
    "Report": "ckptlab.report",
    "load_into": "ckptlab.warmstart",
    "param_groups": "ckptlab.finetune",
}


def __getattr__(name: str):
    """Import the heavier parts on first use, so ``import ckptlab`` stays quick."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'ckptlab' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


__all__ = [
    "open", "align", "remap", "load_into", "param_groups",
    "Checkpoint", "TensorInfo", "OtherEntry", "Recipe", "Alignment", "Report",
    "CheckpointError", "UnreadableFileError", "UnsafePickleError", "ContainerError",
    "UnsupportedFormatError", "RecipeError", "AdaptError", "MergeError", "ModelSpecError",
    "PathNotAllowedError",
]
