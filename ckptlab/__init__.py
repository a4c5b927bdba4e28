"""ckptlab: open any PyTorch checkpoint, align it with a model, fix it, and save it.

The public API (see README.md)::

    ck = ckptlab.open(path, container=None)           # lazy, safe, read-only
    al = ckptlab.align(source, target, recipe=None, auto="high")
    rep = ckptlab.remap(source, target, out_path, recipe=None, auto="high")
    rep = ckptlab.load_into(model, source, recipe=None, auto="high")
    groups = ckptlab.param_groups(model, rep, lr=1e-3, new_lr_mult=10.0)

Note: ``ckptlab.align`` is the function; the module it lives in is imported as
``from ckptlab.align import ...`` (``import ckptlab.align as m`` gives the function).
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
from ckptlab.recipe import AdaptSpec, Recipe, Rule

# Bound after the submodule ``ckptlab.align`` is imported, so the function wins the name.
from ckptlab.align import Alignment, align  # noqa: E402
from ckptlab.report import Report  # noqa: E402
from ckptlab.merge import remap  # noqa: E402
from ckptlab.warmstart import CkptlabWarning, load_into  # noqa: E402
from ckptlab.finetune import param_groups  # noqa: E402
from ckptlab.stats import stats  # noqa: E402  (the function wins the name, as with align)

__version__ = "0.1.0"

__all__ = [
    "open", "align", "remap", "load_into", "param_groups", "stats",
    "Checkpoint", "TensorInfo", "OtherEntry", "Recipe", "Rule", "AdaptSpec", "Alignment", "Report",
    "CheckpointError", "UnreadableFileError", "UnsafePickleError", "ContainerError",
    "UnsupportedFormatError", "RecipeError", "AdaptError", "MergeError", "ModelSpecError",
    "PathNotAllowedError", "CkptlabWarning",
]
