"""What a checkpoint pickle may name, and what ckptlab hands back for each name.

Three kinds of global:
- *values* that are safe to use as they are: immutable (dtypes, layouts, frozen storage
  type and class markers), shared by every file and never given state;
- *callables* on the allowlist, each handed to the pickle as an immutable ``Allowed`` handle
  to a ckptlab function that builds a fresh object from its arguments without running
  anything from the file (tensor rebuilds produce ``LazyTensor``s);
- everything else: a placeholder class. A placeholder for a *function* (a lowercase name)
  or for anything from a module that can reach the system (os, subprocess, builtins, ...)
  refuses to be called, so ``os.system(...)`` in a pickle raises ``UnsafePickleError``.
"""
from __future__ import annotations

import codecs
import collections
import dataclasses
import datetime
from collections.abc import Callable
from dataclasses import dataclass
from math import prod
from typing import Any

import torch

from ckptlab.errors import CheckpointError, UnsupportedFormatError, quote
from ckptlab.io.formats.base import LazyTensor
from ckptlab.io.formats.numpy_values import NDARRAY
from ckptlab.io.formats.placeholder import Placeholder, TypeMarker, make_placeholder_class
from ckptlab.io.formats.storage import StorageRef, checked_shape, lazy_view
from ckptlab.io.tensor_info import TensorInfo

__all__ = ["DANGEROUS_MODULES", "StorageType", "Allowed", "OBJECT", "ALLOWED", "normalise", "refusal_reason"]

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


@dataclass(frozen=True, slots=True)
class StorageType:
    """The storage class a persistent id names; only its dtype matters to us.

    One instance per name is shared by every file, so it is immutable (frozen, no
    ``__dict__``) and the unpickler never sets state on it."""

    name: str
    dtype: torch.dtype

    def __repr__(self) -> str:
        return f"StorageType({self.name})"


@dataclass(frozen=True, slots=True)
class Allowed:
    """An allowlisted callable as the pickle sees it: an immutable handle, never the function.

    The unpickler calls ``fn`` (a pure function of its arguments that returns a fresh
    object); the file cannot reach ``fn`` itself, so it cannot change its defaults, code or
    attributes for a later call or a later file."""

    name: str
    fn: Callable[..., Any]

    def __repr__(self) -> str:
        return f"<allowed {self.name}>"


OBJECT = TypeMarker("builtins.object")


# torch's dtypes, layouts and memory formats by name (one pass over the module's namespace)
_TORCH_VALUES = {name: value for name, value in vars(torch).items()
                 if isinstance(value, (torch.dtype, torch.layout, torch.memory_format))}


def _values() -> dict[tuple[str, str], Any]:
    out: dict[tuple[str, str], Any] = {}
    for name, dtype in _LEGACY_STORAGES.items():
        marker = StorageType(name, dtype)
        for module in ("torch", "torch.cuda", "torch.storage"):
            out[(module, name)] = marker
    out.update({("torch", name): value for name, value in _TORCH_VALUES.items()})
    for name in ("per_tensor_affine", "per_tensor_symmetric", "per_channel_affine",
                 "per_channel_symmetric", "per_channel_affine_float_qparams"):
        out[("torch", name)] = getattr(torch, name)
    # Tensor classes appear as the ``new_type`` of a rebuild, never to be called (``torch.Tensor(n)``
    # would allocate n elements): inert markers.
    for name in ("Tensor", "FloatTensor", "DoubleTensor", "HalfTensor", "BFloat16Tensor", "LongTensor",
                 "IntTensor", "ShortTensor", "CharTensor", "ByteTensor", "BoolTensor"):
        out[("torch", name)] = TypeMarker(f"torch.{name}")
    out[("torch.nn.parameter", "Parameter")] = TypeMarker("torch.nn.Parameter")
    out[("builtins", "object")] = OBJECT
    out[("numpy", "ndarray")] = NDARRAY
    return out


_LAYOUTS = {name: value for name, value in _TORCH_VALUES.items() if isinstance(value, torch.layout)}


# -- pure stand-ins for the allowed callables ---------------------------------------------
def _rebuild_tensor(storage: StorageRef, offset, size, stride, *_ignored) -> LazyTensor:
    if not isinstance(storage, StorageRef):
        raise UnsupportedFormatError(f"tensor whose storage is a {type(storage).__name__}, not a file storage")
    return lazy_view(storage, offset, size, stride)


def _rebuild_tensor_v3(storage: StorageRef, offset, size, stride, requires_grad, hooks, dtype,
                       *_ignored) -> LazyTensor:
    """v3 names the dtype itself; the storage may be untyped bytes (a fresh ref: the
    storage the reader made is never changed)."""
    if isinstance(storage, StorageRef) and isinstance(dtype, torch.dtype) and dtype != storage.dtype:
        numel = storage.numel * storage.dtype.itemsize // dtype.itemsize
        storage = dataclasses.replace(storage, dtype=dtype, numel=numel)
    return _rebuild_tensor(storage, offset, size, stride)


def _rebuild_parameter(data, *_ignored) -> Any:
    """Parameters (and CPU copies of device tensors) are plain tensors to us."""
    return data


def _rebuild_from_type(func, new_type, args, state=None) -> Any:
    """Only a tensor rebuild may be the inner call (never any other allowed callable)."""
    if not (isinstance(func, Allowed) and func.name.startswith("torch._utils._rebuild")) or type(args) is not tuple:
        raise UnsupportedFormatError("_rebuild_from_type of something that is not a tensor rebuild")
    return func.fn(*args)


def _first_arg(value, *_ignored) -> Any:
    """TorchScript's list builders and type tags: the value itself is what we need."""
    return value


def _unsupported(what: str):
    def refuse(*_args, **_kwargs):
        raise UnsupportedFormatError(f"{what} are not supported")
    return refuse


def _meta_tensor(dtype, size, stride, *_ignored) -> LazyTensor:
    if not isinstance(dtype, torch.dtype):
        raise UnsupportedFormatError("meta tensor without a dtype")
    shape, _ = checked_shape(size, stride)

    def load():
        raise CheckpointError("tensor was saved on the meta device and has no values")

    return LazyTensor(TensorInfo(shape, dtype, prod(shape) * dtype.itemsize), load)


def _ordered_dict(*args) -> collections.OrderedDict:
    if args:  # (torch's pickles call it once per tensor, with none: its backward hooks)
        _containers_only("collections.OrderedDict", args)
    return collections.OrderedDict(*args)


def _defaultdict(factory=None, *args) -> dict:
    _containers_only("collections.defaultdict", args)
    return dict(*args)  # the factory is never called


def _counter(*args) -> collections.Counter:
    _containers_only("collections.Counter", args)
    return collections.Counter(*args)


_SCALARS = (str, bytes, bytearray, int, float, complex, bool, type(None))


def _scalars_only(kind: str, args: tuple) -> None:
    """Conversions take plain values only: ``str(x)`` of a shared nested list would take
    time exponential in its depth, and of a placeholder would say nothing useful."""
    if not all(isinstance(a, _SCALARS) for a in args):
        raise UnsupportedFormatError(f"{kind}() of a {type(next(a for a in args if not isinstance(a, _SCALARS))).__name__} "
                                     "in a pickle is not allowed")


def _scalar_call(kind: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def call(*args):
        _scalars_only(kind, args)
        return fn(*args)
    return call


def _no_size(kind: str, args: tuple) -> None:
    if args and not isinstance(args[0], (bytes, bytearray, str)):
        raise UnsupportedFormatError(f"{kind}({type(args[0]).__name__}) in a pickle is not allowed (only from bytes)")


def _bytearray(*args) -> bytearray:
    _no_size("bytearray", args)
    _scalars_only("bytearray", args)
    return bytearray(*args)


def _bytes(*args) -> bytes:
    _no_size("bytes", args)
    _scalars_only("bytes", args)
    return bytes(*args)


_TEXT_CODECS = frozenset({"latin1", "latin-1", "iso-8859-1", "utf-8", "utf8", "ascii"})


def _codecs_encode(obj, encoding="utf-8", errors="strict") -> bytes:
    """How protocol-2 pickles spell bytes; only text codecs (no zlib, base64, rot13 ...)."""
    if not isinstance(obj, str) or encoding not in _TEXT_CODECS or errors not in ("strict", "surrogatepass"):
        raise UnsupportedFormatError("_codecs.encode other than str to bytes with a text codec in a pickle")
    return codecs.encode(obj, encoding, errors)


_CONTAINER_ARGS = (list, tuple, dict, set, frozenset)


def _from_containers(kind: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """A container constructor that copies containers the pickle made (whose items it paid
    for), never iterates a string or bytes (``tuple(s)`` would turn each byte of the pickle
    into an 8-byte reference, and no checkpoint spells a tuple that way)."""
    def make(*args):
        _containers_only(kind, args)
        return fn(*args)
    return make


def _containers_only(kind: str, args: tuple) -> None:
    if not all(isinstance(a, _CONTAINER_ARGS) for a in args):
        raise UnsupportedFormatError(f"{kind}() of a {type(next(a for a in args if not isinstance(a, _CONTAINER_ARGS))).__name__} "
                                     "in a pickle is not allowed (only of a list, tuple, dict or set)")


def _torch_size(*args) -> torch.Size:
    _containers_only("torch.Size", args)
    return torch.Size(*args)


def _torch_device(*args) -> torch.device:
    _scalars_only("torch.device", args)
    return torch.device(*args)


def _get_layout(name: str) -> torch.layout:
    layout = _LAYOUTS.get(str(name).removeprefix("torch.")) if isinstance(name, str) else None
    if layout is None:
        raise UnsupportedFormatError(f"unknown tensor layout {quote(name)}")
    return layout


def _reconstructor(cls, base, state):
    """``copyreg._reconstructor`` for the classes we may build: placeholders, or a plain
    dict/list/set (then ``cls`` is its allowed constructor)."""
    if isinstance(cls, type) and issubclass(cls, Placeholder):
        obj = cls()
        if state is not None:
            obj.__setstate__(state)
        return obj
    plain = {"collections.OrderedDict", "builtins.dict", "builtins.list", "builtins.set"}
    bases = (OBJECT, ALLOWED.get(("builtins", "dict")), ALLOWED.get(("builtins", "list")),
             ALLOWED.get(("builtins", "set")))
    if isinstance(cls, Allowed) and cls.name in plain and base in bases:
        return cls.fn() if state is None else cls.fn(state)
    raise UnsupportedFormatError(f"copyreg._reconstructor of {quote(cls)}")


def _member_of(cls, name) -> Placeholder:
    """``getattr(SomeEnum, "MEMBER")``: how Python 3.11.0-3.11.3 pickle an enum member (DCP metadata
    holds such). Only a class the reader stood in for, only a plain name: the answer is a fresh
    inert placeholder named ``SomeEnum.MEMBER``; nothing real is ever looked up."""
    if not (isinstance(cls, type) and issubclass(cls, Placeholder) and not cls.refused) or not (isinstance(name, str)
                                                                           and name.isidentifier()):
        raise UnsupportedFormatError("getattr in a pickle other than a member of a class read as a placeholder")
    module, _, qualname = cls.qualname.rpartition(".")
    return make_placeholder_class(module or "?", f"{qualname}.{name}")()


def _numpy_callables() -> dict[tuple[str, str], Any]:
    from ckptlab.io.formats import numpy_values  # noqa: PLC0415

    out: dict[tuple[str, str], Any] = {}
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        out[(module, "_reconstruct")] = numpy_values.reconstruct
        out[(module, "scalar")] = numpy_values.scalar
    out[("numpy", "dtype")] = numpy_values.make_dtype
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
        ("builtins", "getattr"): _member_of,
        ("builtins", "set"): _from_containers("set", set),
        ("builtins", "frozenset"): _from_containers("frozenset", frozenset),
        ("builtins", "complex"): _scalar_call("complex", complex),
        ("builtins", "slice"): _scalar_call("slice", slice),
        ("builtins", "bytearray"): _bytearray,
        ("builtins", "bytes"): _bytes,
        ("builtins", "int"): _scalar_call("int", int),
        ("builtins", "float"): _scalar_call("float", float),
        ("builtins", "bool"): _scalar_call("bool", bool),
        ("builtins", "str"): _scalar_call("str", str),
        ("builtins", "tuple"): _from_containers("tuple", tuple),
        ("builtins", "list"): _from_containers("list", list),
        ("builtins", "dict"): _from_containers("dict", dict),
        ("datetime", "datetime"): datetime.datetime,
        ("datetime", "date"): datetime.date,
        ("datetime", "time"): datetime.time,
        ("datetime", "timedelta"): datetime.timedelta,
        ("datetime", "timezone"): datetime.timezone,
    }
    out.update(_numpy_callables())
    return {key: Allowed(f"{key[0]}.{key[1]}", fn) for key, fn in out.items()}


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
