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

from ckptlab.formats.storage import c_strides
from ckptlab.info import TensorInfo

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


def dumps(tree: Any) -> memoryview:
    """The pickle of ``tree`` (protocol 2, as torch.save), ``TensorRef``s as storages."""
    buf = io.BytesIO()
    _RefPickler(buf, protocol=2).dump(tree)
    return buf.getbuffer()


def swap_tensors(obj: Any, extras: list[torch.Tensor], first: int) -> Any:
    """Tensors among the extras (e.g. optimizer state) become refs to extra storages."""
    if isinstance(obj, torch.Tensor):
        extras.append(obj.detach().cpu().contiguous())
        return TensorRef(str(first + len(extras) - 1), TensorInfo.of(extras[-1]))
    if isinstance(obj, dict):
        return type(obj)((k, swap_tensors(v, extras, first)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)) and not hasattr(obj, "_fields"):
        return type(obj)(swap_tensors(v, extras, first) for v in obj)
    return obj

