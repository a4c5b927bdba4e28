"""numpy scalars and arrays inside checkpoint pickles (``best_acc = np.float64(...)``).

numpy pickles a dtype and an array as a call followed by BUILD (``__setstate__``) on the
real object. ckptlab never hands a file a real numpy object to set state on: the calls
return inert stand-ins (placeholders) that record what the pickle said, and a value is made
from that record only after it is checked: a dtype of an allowed kind (``NUMPY_DTYPE_KINDS``:
no object, structured or sub-array dtypes), little-endian, and array data whose length
matches its shape.
"""
from __future__ import annotations

import re
from math import prod
from typing import Any

from ckptlab.errors import UnsupportedFormatError, quote
from ckptlab.io import limits
from ckptlab.io.formats.placeholder import Placeholder, TypeMarker, make_placeholder_class

NDARRAY = TypeMarker("numpy.ndarray")  # the only array class a pickle may rebuild

_SPEC = re.compile(r"[<>|=]?([a-z])(\d{1,2})")


class NumpyDType(make_placeholder_class("numpy", "dtype")):
    """``numpy.dtype(spec, align, copy)`` as the pickle gave it, plus its BUILD state
    (checked as it arrives: an object or structured dtype is refused right there)."""

    def __setstate__(self, state: Any) -> None:
        super().__setstate__(state)
        self.resolve()

    def resolve(self):
        import numpy as np

        args = self.__dict__["args"]
        spec = args[0] if args else None
        match = _SPEC.fullmatch(spec) if isinstance(spec, str) else None
        if match is None or match.group(1) not in limits.NUMPY_DTYPE_KINDS:
            raise UnsupportedFormatError(f"numpy dtype {quote(spec)} in a pickle (allowed kinds: "
                                         f"{''.join(sorted(limits.NUMPY_DTYPE_KINDS))}, see NUMPY_DTYPE_KINDS)")
        dtype = np.dtype(spec)
        state = self.__dict__["state"]
        if state is not None:
            if not (isinstance(state, tuple) and len(state) >= 5 and all(s is None for s in state[2:5])):
                raise UnsupportedFormatError("structured or sub-array numpy dtype in a pickle")
            if state[1] == ">" and dtype.itemsize > 1:
                raise UnsupportedFormatError("big-endian numpy values are not supported")
        if dtype.kind not in limits.NUMPY_DTYPE_KINDS or dtype.hasobject or dtype.fields or dtype.subdtype:
            raise UnsupportedFormatError(f"numpy dtype {quote(spec)} in a pickle is not allowed")
        return dtype


class NumpyArray(make_placeholder_class("numpy", "ndarray")):
    """``numpy.ndarray`` rebuilt from a pickle: kept as the record until ``to_numpy()``."""

    display_name = "ndarray"

    def __setstate__(self, state: Any) -> None:
        """The array's state is checked as it arrives (dtype allowed, shape and data agree);
        the record is kept, and an array made from it only on ``to_numpy()``."""
        super().__setstate__(state)
        self._checked()

    def to_numpy(self):
        """A fresh array made from the (checked) record."""
        import numpy as np

        dtype, shape, fortran, data = self._checked()
        flat = np.frombuffer(bytes(data), dtype=dtype).copy()
        return flat.reshape(shape, order="F" if fortran else "C")

    def _checked(self):
        state = self.__dict__["state"]
        if not (isinstance(state, tuple) and len(state) == 5):
            raise UnsupportedFormatError("malformed numpy array in a pickle")
        _version, shape, dtype, fortran, data = state
        if not isinstance(dtype, NumpyDType):
            raise UnsupportedFormatError("numpy array without a dtype in a pickle")
        dtype = dtype.resolve()
        if not (isinstance(shape, tuple) and all(type(s) is int and 0 <= s <= limits.MAX_TENSOR_DIM_SIZE
                                                 for s in shape) and len(shape) <= limits.MAX_TENSOR_DIMS):
            raise UnsupportedFormatError("malformed numpy array shape in a pickle")
        if isinstance(data, str):
            data = data.encode("latin1")
        nbytes = prod(shape) * dtype.itemsize
        if not isinstance(data, (bytes, bytearray)) or len(data) != nbytes:
            raise UnsupportedFormatError("numpy array whose data does not match its shape in a pickle")
        if nbytes > limits.MAX_NUMPY_BYTES:
            raise limits.exceeded("numpy array bytes", f"{nbytes:,}", "MAX_NUMPY_BYTES")
        return dtype, shape, fortran, data


def reconstruct(subtype: Any, shape: Any, dtype_code: Any) -> NumpyArray:
    if subtype is not NDARRAY:
        raise UnsupportedFormatError("numpy array subclass in a pickle")
    return NumpyArray()


def make_dtype(spec: Any, align: Any = False, copy: Any = False) -> NumpyDType:
    if not isinstance(spec, str):
        raise UnsupportedFormatError("malformed numpy dtype in a pickle")
    return NumpyDType(spec)


def scalar(dtype: Any, data: Any = None) -> Any:
    """A numpy scalar (immutable, fresh) from its dtype record and bytes."""
    import numpy as np

    if not isinstance(dtype, NumpyDType) or (data is not None and not isinstance(data, (bytes, str))):
        raise UnsupportedFormatError("malformed numpy scalar in a pickle")
    resolved = dtype.resolve()
    raw = data.encode("latin1") if isinstance(data, str) else (data or b"")
    if len(raw) != resolved.itemsize:
        raise UnsupportedFormatError("numpy scalar whose data does not match its dtype in a pickle")
    return np.frombuffer(raw, dtype=resolved, count=1)[0]


__all__ = ["NumpyArray", "NumpyDType", "Placeholder", "make_dtype", "reconstruct", "scalar"]
