"""Reference statistics computed with numpy, independently of ckptlab's code path.

The tensors' raw bytes are decoded in numpy: float16/32/64 and integers natively, bfloat16
by shifting its bits into a float32, float8_e5m2 by shifting into a float16, float8_e4m3fn
with a small decoder written here from the format's definition. Only the rarer fp8 variants
(fnuz, e8m0) go through torch's exact conversion to float64 (numpy has no decoder for them).
"""
from __future__ import annotations

import numpy as np
import torch

_NATIVE = {
    torch.float16: np.float16, torch.float32: np.float32, torch.float64: np.float64, torch.int8: np.int8,
    torch.int16: np.int16, torch.int32: np.int32, torch.int64: np.int64, torch.uint8: np.uint8,
    torch.uint16: np.uint16, torch.uint32: np.uint32, torch.uint64: np.uint64, torch.bool: np.bool_,
    torch.complex64: np.complex64, torch.complex128: np.complex128,
}


def raw_bytes(t: torch.Tensor) -> np.ndarray:
    flat = t.detach().contiguous().reshape(-1)
    return flat.view(torch.uint8).numpy().copy() if flat.numel() else np.zeros(0, np.uint8)


def decode_e4m3fn(bits: np.ndarray) -> np.ndarray:
    """float8_e4m3fn: 1 sign, 4 exponent (bias 7), 3 mantissa bits; S.1111.111 is NaN, no Inf."""
    bits = bits.astype(np.int64)
    sign = np.where(bits & 0x80, -1.0, 1.0)
    exp = (bits >> 3) & 0xF
    man = bits & 0x7
    normal = sign * (1 + man / 8.0) * np.power(2.0, exp - 7)
    subnormal = sign * (man / 8.0) * 2.0 ** -6
    out = np.where(exp == 0, subnormal, normal)
    return np.where((exp == 0xF) & (man == 0x7), np.nan, out)


def as_float64(t: torch.Tensor) -> np.ndarray:
    """Every value of ``t`` as float64 (complex: real and imaginary parts), exactly."""
    raw = raw_bytes(t)
    dtype = t.dtype
    if dtype == torch.bfloat16:
        return (raw.view(np.uint16).astype(np.uint32) << 16).view(np.float32).astype(np.float64)
    if dtype == torch.float8_e5m2:
        return (raw.astype(np.uint16) << 8).view(np.float16).astype(np.float64)
    if dtype == torch.float8_e4m3fn:
        return decode_e4m3fn(raw)
    if dtype == torch.complex32:
        return raw.view(np.float16).astype(np.float64)
    if dtype in _NATIVE:
        values = raw.view(_NATIVE[dtype])
        if values.dtype.kind == "c":
            return values.view(values.real.dtype).astype(np.float64)
        return values.astype(np.float64)
    return t.detach().reshape(-1).to(torch.float64).numpy()  # rare fp8 variants: torch's exact cast


def reference(t: torch.Tensor) -> dict:
    a = as_float64(t)
    finite = a[np.isfinite(a)]
    out = {"zeros": int((a == 0).sum()), "nan": int(np.isnan(a).sum()), "inf": int(np.isinf(a).sum()),
           "numel": int(a.size)}
    if finite.size:
        out.update(min=float(finite.min()), max=float(finite.max()), mean=float(finite.mean()),
                   std=float(finite.std()), absmax=float(np.abs(finite).max()))
    else:
        out.update(min=None, max=None, mean=None, std=None, absmax=None)
    if not (t.is_floating_point() or t.is_complex()) and t.dtype != torch.bool and a.size:
        ints = raw_bytes(t).view(_NATIVE[t.dtype])  # exact integer range
        out.update(min=int(ints.min()), max=int(ints.max()), absmax=max(abs(int(ints.min())), abs(int(ints.max()))))
    return out


def assert_matches(got: dict, t: torch.Tensor, key: str = "") -> None:
    """Counts and range exact; mean and std within float64 round-off of numpy's."""
    want = reference(t)
    for name in ("zeros", "nan", "inf", "numel", "min", "max", "absmax"):
        assert got[name] == want[name], (key, name, got[name], want[name])
    for name in ("mean", "std"):
        if want[name] is None:
            assert got[name] is None, (key, name)
            continue
        if not np.isfinite(want[name]) or abs(want[name]) > 1e150:
            continue  # float64 random bytes: numpy's own sums overflow, nothing to compare with
        scale = max(abs(want["min"]), abs(want["max"]), 1e-300)
        assert abs(got[name] - want[name]) <= 1e-6 * abs(want[name]) + 1e-12 * scale, (key, name, got[name], want[name])
