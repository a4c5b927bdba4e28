"""Format readers: sniff a path and parse its headers into a ``Loaded`` tree.

TEMPORARY: this bootstrap reads everything with ``torch.load(weights_only=True, mmap=True)``
so the rest of the package can be built; the lazy, restricted readers replace it.
"""
from __future__ import annotations

from pathlib import Path

import torch

from ckptlab.errors import UnreadableFileError
from ckptlab.formats.base import LazyTensor, Loaded
from ckptlab.info import TensorInfo


def _wrap(obj):
    if isinstance(obj, torch.Tensor):
        t = obj
        return LazyTensor(TensorInfo.of(t), lambda: t.clone())
    if isinstance(obj, dict):
        return type(obj)((k, _wrap(v)) for k, v in obj.items()) if not isinstance(obj, type(None)) else obj
    if isinstance(obj, (list, tuple)):
        return type(obj)(_wrap(v) for v in obj)
    return obj


def read(path: str | Path) -> Loaded:
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return Loaded("safetensors", _wrap(load_file(path)))
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # bootstrap only
        raise UnreadableFileError(str(exc).splitlines()[0], path) from None
    return Loaded("torch-zip", _wrap(obj))
