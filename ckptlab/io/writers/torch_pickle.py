"""``data.pkl`` of a torch archive, written before any tensor is read.

torch's pickle only needs each storage's key, dtype and size; the tensors become rebuild
calls over persistent ids, exactly as ``torch.save`` writes them.

Whatever the tree holds, the pickler writes no global outside torch's ``weights_only``
allowlist and no object of a type it does not know (``_SafePickler``): a ckptlab output
loads with ``torch.load(weights_only=True)``, and runs nothing under ``weights_only=False``.
"""
from __future__ import annotations

import collections
import functools
import io
import pickle
import types
from collections import OrderedDict
from typing import Any

import torch
from torch._weights_only_unpickler import _get_allowed_globals

from ckptlab.errors import UnsafePickleError, quote
from ckptlab.io.formats.base import LazyTensor
from ckptlab.io.formats.storage import c_strides
from ckptlab.io.tensor_info import TensorInfo

__all__ = ["TensorRef", "dumps", "swap_tensors", "extra_tensor"]

# dtypes that torch pickles through a typed storage class; the rest use UntypedStorage.
_LEGACY_STORAGE = {
    torch.float64: "DoubleStorage", torch.float32: "FloatStorage", torch.float16: "HalfStorage",
    torch.bfloat16: "BFloat16Storage", torch.int64: "LongStorage", torch.int32: "IntStorage",
    torch.int16: "ShortStorage", torch.int8: "CharStorage", torch.uint8: "ByteStorage",
    torch.bool: "BoolStorage", torch.complex64: "ComplexFloatStorage",
    torch.complex128: "ComplexDoubleStorage",
}


# One shared empty backward-hooks dict: the pickler writes it once and memoises it (a fresh
# OrderedDict per tensor costs ~27 us to reduce); torch ignores empty hooks on load.
_NO_HOOKS: OrderedDict = OrderedDict()


class TensorRef:
    """Pickles as torch's tensor rebuild call over storage ``key`` (contiguous, offset 0)."""

    def __init__(self, key: str, info: TensorInfo):
        self.key, self.info = key, info

    def __reduce_ex__(self, protocol: int):
        shape = self.info.shape
        args = (_StorageRef(self.key, self.info), 0, shape, c_strides(shape), False, _NO_HOOKS)
        if self.info.dtype in _LEGACY_STORAGE:
            return torch._utils._rebuild_tensor_v2, args
        return torch._utils._rebuild_tensor_v3, args + (self.info.dtype,)


class _StorageRef:
    def __init__(self, key: str, info: TensorInfo):
        self.key, self.info = key, info

    def persistent_id(self) -> tuple:
        legacy = _LEGACY_STORAGE.get(self.info.dtype)
        if legacy:
            return ("storage", getattr(torch, legacy), self.key, "cpu", self.info.numel)
        return ("storage", torch.UntypedStorage, self.key, "cpu", self.info.nbytes)


# Instances the pickler may reduce (their classes, and the callables they reduce to, are
# checked against the allowlist as globals); exact dict/list/tuple/str/... never get here.
_INSTANCES = frozenset({TensorRef, OrderedDict, collections.Counter, torch.Size, torch.device, complex,
                        bytearray})


class _SafePickler(pickle.Pickler):
    """The C pickler, refusing any global a ``weights_only=True`` load would refuse."""

    def persistent_id(self, obj: Any) -> tuple | None:
        return obj.persistent_id() if type(obj) is _StorageRef else None  # called for every object

    def reducer_override(self, obj: Any) -> Any:
        """Called for every object but the plain ones, classes and functions included:
        globals are checked by name, instances by type (a dtype pickles as its name)."""
        kind = type(obj)
        if kind in _INSTANCES:
            return NotImplemented
        if kind is torch.dtype:
            _check_global("torch", obj.__reduce__())
        elif isinstance(obj, (type, types.FunctionType, types.BuiltinFunctionType)):
            _check_global(getattr(obj, "__module__", None), getattr(obj, "__qualname__", None))
        else:
            raise UnsafePickleError(f"refusing to write a {quote(kind.__qualname__)} into data.pkl: "
                                    "torch.load(weights_only=True) would not read it")
        return NotImplemented


def _check_global(module: Any, name: Any) -> None:
    """``module.name`` must be one torch's weights_only unpickler allows."""
    if f"{module}.{name}" not in _allowed():
        raise UnsafePickleError(f"refusing to write a reference to {quote(f'{module}.{name}')} into data.pkl: "
                                "torch.load(weights_only=True) would not read it")


@functools.cache
def _allowed() -> frozenset[str]:
    # _codecs.encode is how protocol 2 spells bytes; torch allows it (checked by the tests).
    return frozenset(_get_allowed_globals())


def dumps(tree: Any) -> memoryview:
    """The pickle of ``tree`` (protocol 2, as torch.save), ``TensorRef``s as storages."""
    buf = io.BytesIO()
    _SafePickler(buf, protocol=2).dump(tree)
    return buf.getbuffer()


def swap_tensors(obj: Any, extras: list[Any], first: int, memo: dict[int, Any] | None = None) -> Any:
    """Tensors among the extras (e.g. optimizer state; in memory or ``LazyTensor``s read when
    their turn comes) become refs to extra storages. Shared parts stay shared."""
    memo = {} if memo is None else memo
    if id(obj) in memo:
        return memo[id(obj)]
    if isinstance(obj, (torch.Tensor, LazyTensor)):
        info = TensorInfo.of(obj) if isinstance(obj, torch.Tensor) else obj.info
        extras.append(obj)
        out: Any = TensorRef(str(first + len(extras) - 1), info)
    elif isinstance(obj, dict):
        out = type(obj)()
        memo[id(obj)] = out
        for k, v in obj.items():
            out[k] = swap_tensors(v, extras, first, memo)
    elif type(obj) is list:
        out = []
        memo[id(obj)] = out
        out.extend(swap_tensors(v, extras, first, memo) for v in obj)
    elif isinstance(obj, (list, tuple)) and not hasattr(obj, "_fields"):
        out = type(obj)(swap_tensors(v, extras, first, memo) for v in obj)
    else:
        return obj
    memo[id(obj)] = out
    return out


def extra_tensor(obj: Any) -> torch.Tensor:
    """An extra's bytes to write: in memory as it is, or read now (one at a time)."""
    t = obj.load() if isinstance(obj, LazyTensor) else obj
    return t.detach().cpu().contiguous()
