"""Tensors of every kind a checkpoint can hold, and a byte-exact comparison.

Values come from random bytes (seeded), so float formats include NaNs and infinities:
comparisons are on the raw bytes, never with ``==``.
"""
from __future__ import annotations

import io

import torch

_CANDIDATES = [
    "float32", "float16", "float64", "bfloat16", "float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz",
    "float8_e5m2fnuz", "float8_e8m0fnu", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32",
    "uint64", "bool", "complex64", "complex128", "complex32",
]


def _round_trips(dtype: torch.dtype, legacy: bool) -> bool:
    t = random_tensor(dtype, (4,), seed=0)
    buf = io.BytesIO()
    try:
        torch.save(t, buf, _use_new_zipfile_serialization=not legacy)
        buf.seek(0)
        return same_bytes(torch.load(buf, weights_only=True), t)
    except Exception:  # noqa: BLE001 - this torch cannot save that dtype in that format
        return False


def savable_dtypes(legacy: bool = False) -> list[torch.dtype]:
    """Every dtype this torch can save and load back in the zip (or legacy) format."""
    dtypes = [getattr(torch, n) for n in _CANDIDATES if hasattr(torch, n)]
    return [d for d in dtypes if _round_trips(d, legacy)]


def random_tensor(dtype: torch.dtype, shape: tuple[int, ...], seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    n = 1
    for s in shape:
        n *= s
    raw = torch.randint(0, 256, (n * dtype.itemsize,), dtype=torch.uint8, generator=g)
    if dtype == torch.bool:
        raw = raw % 2
    return raw.view(dtype).reshape(shape)


def dtype_cases(dtypes: list[torch.dtype]) -> dict[str, torch.Tensor]:
    return {f"dtype.{str(d).removeprefix('torch.')}": random_tensor(d, (3, 4), seed=i) for i, d in enumerate(dtypes)}


def layout_cases() -> dict[str, torch.Tensor]:
    """0-dim, empty, non-contiguous views and storage shared between keys."""
    base = torch.arange(60, dtype=torch.float32).reshape(6, 10)
    tied = torch.randn(4, 5, generator=torch.Generator().manual_seed(1))
    return {
        "scalar": torch.tensor(3.5, dtype=torch.float64),
        "scalar_int": torch.tensor(7),
        "empty": torch.empty(0, 3),
        "empty_2": torch.zeros(2, 0, 5, dtype=torch.int16),
        "transposed": base.t(),
        "sliced": base[1:5, ::3],
        "narrowed": base[4:, 2:7],
        "tied.a": tied,
        "tied.b": tied,
        "shared_row": base[2],
    }


def same_bytes(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Same dtype, shape and bytes (NaN-safe, float8-safe)."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    return torch.equal(a.contiguous().reshape(-1).view(torch.uint8), b.contiguous().reshape(-1).view(torch.uint8))


def assert_matches_torch_load(path, tensors: dict[str, torch.Tensor]) -> None:
    """ckptlab's values equal what was saved, byte for byte, with torch.load's strides."""
    import ckptlab

    ck = ckptlab.open(path)
    reference = torch.load(path, weights_only=True)
    for key, t in tensors.items():
        got = ck.tensor(key)
        assert same_bytes(got, t), key
        assert got.stride() == reference[key].stride(), key
        assert got.device.type == "cpu"
