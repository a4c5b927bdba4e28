"""What a checkpoint pickle may name, and what ckptlab hands back for each name.

Three kinds of global:
- *values* that are safe to use as they are (dtypes, layouts, storage type markers);
- *callables* on the allowlist, each bound to a ckptlab function that builds the object
  without running anything from the file (tensor rebuilds produce ``LazyTensor``s);
- everything else: a placeholder class. A placeholder for a *function* (a lowercase name)
  or for anything from a module that can reach the system (os, subprocess, builtins, ...)
  refuses to be called, so ``os.system(...)`` in a pickle raises ``UnsafePickleError``.
"""
from __future__ import annotations

import dataclasses

import codecs
import collections
import datetime
from math import prod
from typing import Any

import torch

from ckptlab.errors import CheckpointError, UnsupportedFormatError
from ckptlab.formats.base import LazyTensor
from ckptlab.formats.storage import StorageRef, lazy_view
from ckptlab.info import TensorInfo

# Modules whose every global is refused when called: they reach the OS, the interpreter or
# other pickles. (Placeholders for their classes would be inert too, but no checkpoint has a
# reason to name them, so a call to one is treated as an attack.)
DANGEROUS_MODULES = frozenset({
    "os", "posix", "nt", "sys", "subprocess", "builtins", "__builtin__", "shutil", "socket",
    "importlib", "runpy", "ctypes", "pickle", "_pickle", "cPickle", "marshal", "io", "_io", "code",
    "codeop", "pty", "webbrowser", "multiprocessing", "signal", "types", "functools", "operator",
    "inspect", "pdb", "bdb", "platform", "threading", "_thread", "asyncio", "tempfile", "glob",
    "ssl", "http", "urllib", "ftplib", "smtplib", "telnetlib", "zipimport", "pkgutil", "site",
    "sysconfig", "gc", "weakref", "copy", "timeit", "trace", "cProfile", "profile", "shelve",
    "dbm", "sqlite3", "requests", "yaml", "dill", "cloudpickle", "joblib", "torch._C", "torch.hub",
    "torch.jit", "torch.ops", "torch.package", "torch.serialization", "numpy.testing",
    "numpy.distutils", "numpy.f2py",
})

# Python 2 names that protocol-2 pickles written by Python 3 still carry.
_PY2_MODULES = {"__builtin__": "builtins", "copy_reg": "copyreg"}

_LEGACY_STORAGES = {
    "DoubleStorage": torch.float64, "FloatStorage": torch.float32, "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16, "LongStorage": torch.int64, "IntStorage": torch.int32,
    "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool, "ComplexDoubleStorage": torch.complex128,
    "ComplexFloatStorage": torch.complex64, "QUInt8Storage": torch.quint8, "QInt8Storage": torch.qint8,
    "QInt32Storage": torch.qint32, "QUInt4x2Storage": torch.quint4x2, "QUInt2x4Storage": torch.quint2x4,
    "UntypedStorage": torch.uint8,
}


class StorageType:
    """The storage class a persistent id names; only its dtype matters to us."""

    def __init__(self, name: str, dtype: torch.dtype):
        self.name, self.dtype = name, dtype

    def __repr__(self) -> str:
        return f"StorageType({self.name})"


class TypeMarker:
    """A class named as a value only; not callable."""

    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return self.name


def _values() -> dict[tuple[str, str], Any]:
    out: dict[tuple[str, str], Any] = {}
    for name, dtype in _LEGACY_STORAGES.items():
        for module in ("torch", "torch.cuda", "torch.storage"):
            out[(module, name)] = StorageType(name, dtype)
    for name in dir(torch):
        value = getattr(torch, name, None)
        if isinstance(value, (torch.dtype, torch.layout, torch.memory_format)):
            out[("torch", name)] = value
    for name in ("per_tensor_affine", "per_tensor_symmetric", "per_channel_affine",
                 "per_channel_symmetric", "per_channel_affine_float_qparams"):
        out[("torch", name)] = getattr(torch, name)
    # Tensor classes appear as the ``new_type`` of a rebuild, never to be called (``torch.Tensor(n)``
    # would allocate n elements): inert markers.
    for name in ("Tensor", "FloatTensor", "DoubleTensor", "HalfTensor", "BFloat16Tensor", "LongTensor",
                 "IntTensor", "ShortTensor", "CharTensor", "ByteTensor", "BoolTensor"):
        out[("torch", name)] = TypeMarker(f"torch.{name}")
    out[("torch.nn.parameter", "Parameter")] = TypeMarker("torch.nn.Parameter")
    out[("builtins", "object")] = object
    return out


# -- safe stand-ins for the allowed callables ---------------------------------------------
def _rebuild_tensor(storage: StorageRef, offset, size, stride, *_ignored) -> LazyTensor:
    if not isinstance(storage, StorageRef):
        raise UnsupportedFormatError(f"tensor whose storage is a {type(storage).__name__}, not a file storage")
    return lazy_view(storage, offset, tuple(size), tuple(stride))


def _rebuild_tensor_v3(storage: StorageRef, offset, size, stride, requires_grad, hooks, dtype,
                       *_ignored) -> LazyTensor:
    """v3 names the dtype itself; the storage may be untyped bytes."""
    if isinstance(storage, StorageRef) and isinstance(dtype, torch.dtype) and dtype != storage.dtype:
        numel = storage.numel * storage.dtype.itemsize // dtype.itemsize
        storage = dataclasses.replace(storage, dtype=dtype, numel=numel)
    return _rebuild_tensor(storage, offset, size, stride)


def _rebuild_parameter(data, *_ignored) -> Any:
    """Parameters (and CPU copies of device tensors) are plain tensors to us."""
    return data


def _rebuild_from_type(func, new_type, args, state=None) -> Any:
    return func(*args)


def _first_arg(value, *_ignored) -> Any:
    """TorchScript's list builders and type tags: the value itself is what we need."""
    return value


def _unsupported(what: str):
    def refuse(*_args, **_kwargs):
        raise UnsupportedFormatError(f"{what} are not supported")
    return refuse


def _meta_tensor(dtype, size, stride, *_ignored) -> LazyTensor:
    def load():
        raise CheckpointError("tensor was saved on the meta device and has no values")

    shape = tuple(int(s) for s in size)
    return LazyTensor(TensorInfo(shape, dtype, prod(shape) * dtype.itemsize), load)


def _ordered_dict(*args) -> collections.OrderedDict:
    return collections.OrderedDict(*args)


def _defaultdict(factory=None, *args) -> dict:
    return dict(*args)  # the factory is never called: a plain dict holds the same items


def _counter(*args) -> collections.Counter:
    return collections.Counter(*args)


def _no_size(kind: str, args: tuple) -> None:
    if args and not isinstance(args[0], (bytes, bytearray, str)):
        raise UnsupportedFormatError(f"{kind}({type(args[0]).__name__}) in a pickle is not allowed (only from bytes)")


def _bytearray(*args) -> bytearray:
    _no_size("bytearray", args)
    return bytearray(*args)


def _bytes(*args) -> bytes:
    _no_size("bytes", args)
    return bytes(*args)


def _codecs_encode(obj, encoding="utf-8", errors="strict") -> bytes:
    if not isinstance(obj, str):
        raise UnsupportedFormatError("_codecs.encode of a non-string in a pickle")
    return codecs.encode(obj, encoding, errors)


def _torch_size(*args) -> torch.Size:
    return torch.Size(*args)


def _torch_device(*args) -> torch.device:
    return torch.device(*args)


def _get_layout(name: str) -> torch.layout:
    layout = getattr(torch, str(name).removeprefix("torch."), None)
    if not isinstance(layout, torch.layout):
        raise UnsupportedFormatError(f"unknown tensor layout {name!r}")
    return layout


def _reconstructor(cls, base, state):
    """``copyreg._reconstructor`` for the classes we may build (placeholders or plain bases)."""
    from ckptlab.formats.placeholder import Placeholder

    if isinstance(cls, type) and issubclass(cls, Placeholder):
        obj = cls()
        if state is not None:
            obj.__setstate__(state)
        return obj
    if cls in (collections.OrderedDict, dict, list, set, object) and base in (object, dict, list, set):
        return cls() if state is None else cls(state)
    raise UnsupportedFormatError(f"copyreg._reconstructor of {cls!r}")


def _numpy_callables() -> dict[tuple[str, str], Any]:
    try:
        import numpy as np
    except ImportError:  # pragma: no cover - numpy ships with torch installs
        return {}
    def reconstruct(subtype, shape, dtype_code):
        if subtype is not np.ndarray:
            raise UnsupportedFormatError("numpy array subclass in a pickle")
        return np.ndarray.__new__(np.ndarray, shape, dtype_code)

    def scalar(dtype, data=None):
        if not isinstance(dtype, np.dtype) or (data is not None and not isinstance(data, bytes)):
            raise UnsupportedFormatError("malformed numpy scalar in a pickle")
        if dtype.hasobject:
            raise UnsupportedFormatError("numpy object scalar in a pickle")
        return np.frombuffer(data or b"", dtype=dtype, count=1)[0]

    def make_dtype(spec, align=False, copy=False):
        if not isinstance(spec, str):
            raise UnsupportedFormatError("malformed numpy dtype in a pickle")
        return np.dtype(spec, align, copy)

    out: dict[tuple[str, str], Any] = {}
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        out[(module, "_reconstruct")] = reconstruct
        out[(module, "scalar")] = scalar
    out[("numpy", "dtype")] = make_dtype
    out[("numpy", "ndarray")] = np.ndarray
    for name in dir(np.dtypes):
        if name.endswith("DType"):
            out[("numpy.dtypes", name)] = getattr(np.dtypes, name)
    return out


def _callables() -> dict[tuple[str, str], Any]:
    out: dict[tuple[str, str], Any] = {
        ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
        ("torch._utils", "_rebuild_tensor_v3"): _rebuild_tensor_v3,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
        ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
        ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type,
        ("torch._tensor", "_rebuild_from_type"): _rebuild_from_type,
        ("torch._utils", "_rebuild_device_tensor_from_cpu_tensor"): _rebuild_parameter,
        ("torch._utils", "_rebuild_meta_tensor_no_storage"): _meta_tensor,
        ("torch._utils", "_rebuild_qtensor"): _unsupported("quantized tensors"),
        ("torch._utils", "_rebuild_sparse_tensor"): _unsupported("sparse tensors"),
        ("torch._utils", "_rebuild_sparse_csr_tensor"): _unsupported("sparse tensors"),
        ("torch._utils", "_rebuild_nested_tensor"): _unsupported("nested tensors"),
        ("torch._utils", "_rebuild_wrapper_subclass"): _unsupported("tensor wrapper subclasses (e.g. DTensor)"),
        ("torch._utils", "_rebuild_device_tensor_from_numpy"): _unsupported("XLA/MPS tensors saved from numpy"),
        ("torch.serialization", "_get_layout"): _get_layout,
        **{("torch.jit._pickle", name): _first_arg for name in (
            "build_intlist", "build_floatlist", "build_doublelist", "build_boollist", "build_tensorlist",
            "build_complexlist", "restore_type_tag")},
        ("torch", "Size"): _torch_size,
        ("torch", "device"): _torch_device,
        ("collections", "OrderedDict"): _ordered_dict,
        ("collections", "defaultdict"): _defaultdict,
        ("collections", "Counter"): _counter,
        ("copyreg", "_reconstructor"): _reconstructor,
        ("_codecs", "encode"): _codecs_encode,
        ("builtins", "set"): set,
        ("builtins", "frozenset"): frozenset,
        ("builtins", "complex"): complex,
        ("builtins", "slice"): slice,
        ("builtins", "bytearray"): _bytearray,
        ("builtins", "bytes"): _bytes,
        ("builtins", "int"): int,
        ("builtins", "float"): float,
        ("builtins", "bool"): bool,
        ("builtins", "str"): str,
        ("builtins", "tuple"): tuple,
        ("builtins", "list"): list,
        ("builtins", "dict"): dict,
        ("datetime", "datetime"): datetime.datetime,
        ("datetime", "date"): datetime.date,
        ("datetime", "time"): datetime.time,
        ("datetime", "timedelta"): datetime.timedelta,
        ("datetime", "timezone"): datetime.timezone,
    }
    out.update(_numpy_callables())
    return out


ALLOWED: dict[tuple[str, str], Any] = {**_values(), **_callables()}


def normalise(module: str, name: str) -> tuple[str, str]:
    return _PY2_MODULES.get(module, module), name


def refusal_reason(module: str, name: str) -> str:
    """Why calling ``module.name`` is unsafe ("" when a placeholder may stand in for it)."""
    root = module.split(".")[0]
    if root == "__torch__":  # TorchScript's compiled classes: only ever placeholders
        return ""
    if module in DANGEROUS_MODULES or root in DANGEROUS_MODULES or any(
            module.startswith(m + ".") for m in DANGEROUS_MODULES):
        return f"nothing from {root} is ever called"
    bare = name.lstrip("_")
    if not bare or not bare[0].isupper() or "." in name:
        return "a function outside the allowlist"
    return ""
