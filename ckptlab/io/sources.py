"""Turn whatever the user passed as a source or target into a Checkpoint.

Accepted: a Checkpoint, a mapping of tensors, an ``nn.Module``, a path to a checkpoint
file / shard index / DCP folder, or a model definition ``package.module:callable`` or
``path/to/file.py:callable`` (the latter runs code, so it needs ``allow_code``).
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ckptlab.io.checkpoint import Checkpoint
from ckptlab.io.opener import open as open_checkpoint

__all__ = ["is_model_spec", "as_checkpoint"]


def is_model_spec(text: str) -> bool:
    """``pkg.mod:fn`` or ``file.py:fn`` (and not an existing file, e.g. ``C:\\x.pt``)."""
    try:
        if Path(text).exists():
            return False
    except (OSError, ValueError):  # a name too long for the OS, a NUL byte: no file, and the reader says so
        return False
    head, sep, tail = text.rpartition(":")
    dotted = all(part.isidentifier() for part in tail.split("."))  # ``pkg:Class.build``
    return bool(sep and head and dotted and not head.endswith(("/", "\\")))


def as_checkpoint(
    obj: Any,
    *,
    container: str | None = None,
    allow_code: bool | None = None,
    kwargs: Mapping[str, Any] | None = None,
) -> Checkpoint:
    """Coerce ``obj`` to a Checkpoint (see the module docstring for what is accepted)."""
    if isinstance(obj, Checkpoint):
        return obj
    if isinstance(obj, torch.nn.Module):
        return Checkpoint.from_module(obj)
    if isinstance(obj, Mapping):
        return Checkpoint.from_mapping(obj)
    if isinstance(obj, (str, Path)):
        text = str(obj)
        if is_model_spec(text):
            from ckptlab.io.model_target import model_target

            return model_target(text, kwargs=kwargs, allow_code=allow_code)
        return open_checkpoint(text, container=container)
    raise TypeError(f"cannot use a {type(obj).__name__} as a checkpoint")
