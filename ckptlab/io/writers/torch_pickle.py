"""``data.pkl`` of a torch archive, written before any tensor is read.

torch's pickle only needs each storage's key, dtype and size; the tensors become rebuild
calls over persistent ids, exactly as ``torch.save`` writes them.
"""
from __future__ import annotations

import io
import pickle
from collections import OrderedDict
from typing import Any

import torch

from ckptlab.io.formats.base import LazyTensor
from ckptlab.io.formats.storage import c_strides
from ckptlab.io.tensor_info import TensorInfo

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


class _RefPickler(pickle.Pickler):
    def persistent_id(self, obj: Any) -> tuple | None:
        return obj.persistent_id() if type(obj) is _StorageRef else None  # called for every object


class Rebuild:
    """An object of a class ckptlab never imported, written back as the file had it: the class
    by name (GLOBAL), its recorded arguments (NEWOBJ, or REDUCE when there are arguments: a
    function or a class with its own ``__reduce__``), items, and state (BUILD)."""

    def __init__(self, module: str, name: str):
        self.module, self.name = module, name
        self.args: tuple = ()
        self.state: Any = None
        self.items: list[tuple[Any, Any]] = []
        self.list_items: list[Any] = []


class _RebuildPickler(pickle._Pickler):  # the Python pickler: only it lets us write a GLOBAL by name
    dispatch = pickle._Pickler.dispatch.copy()

    def persistent_id(self, obj: Any) -> tuple | None:
        return obj.persistent_id() if type(obj) is _StorageRef else None

    def save_rebuild(self, obj: Rebuild) -> None:
        self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode("utf-8"))
        self.save(obj.args)
        self.write(pickle.REDUCE if obj.args else pickle.NEWOBJ)
        self.memoize(obj)
        if obj.list_items:
            self._batch_appends(iter(obj.list_items))
        if obj.items:
            self._batch_setitems(iter(obj.items))
        if obj.state is not None:
            self.save(obj.state)
            self.write(pickle.BUILD)

    dispatch[Rebuild] = save_rebuild


def dumps(tree: Any, rebuilds: bool = False) -> memoryview:
    """The pickle of ``tree`` (protocol 2, as torch.save), ``TensorRef``s as storages;
    ``rebuilds``: the tree holds ``Rebuild`` objects (slower pickler)."""
    buf = io.BytesIO()
    (_RebuildPickler if rebuilds else _RefPickler)(buf, protocol=2).dump(tree)
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
    elif isinstance(obj, Rebuild):
        out = Rebuild(obj.module, obj.name)
        memo[id(obj)] = out
        out.args = swap_tensors(obj.args, extras, first, memo)
        out.state = swap_tensors(obj.state, extras, first, memo)
        out.items = [(k, swap_tensors(v, extras, first, memo)) for k, v in obj.items]
        out.list_items = [swap_tensors(v, extras, first, memo) for v in obj.list_items]
    else:
        return obj
    memo[id(obj)] = out
    return out


def has_rebuilds(obj: Any, seen: set[int] | None = None) -> bool:
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return False
    seen.add(id(obj))
    if isinstance(obj, Rebuild):
        return True
    if isinstance(obj, dict):
        return any(has_rebuilds(v, seen) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return any(has_rebuilds(v, seen) for v in obj)
    return False


def extra_tensor(obj: Any) -> torch.Tensor:
    """An extra's bytes to write: in memory as it is, or read now (one at a time)."""
    t = obj.load() if isinstance(obj, LazyTensor) else obj
    return t.detach().cpu().contiguous()
