"""fp8 weights with block scales (the DeepSeek-V3 layout) and their dequantised values.

DeepSeek-V3 stores each quantised linear weight ``W`` (``out x in``, ``float8_e4m3fn``)
beside ``W_scale_inv`` (``ceil(out/128) x ceil(in/128)``, float32): each 128x128 block of
``W`` times its one scale is the real weight (its own ``fp8_cast_bf16.py`` does exactly
``W.float() * scale`` blockwise). The name says "inverse" because the scale maps fp8 back.
"""
from __future__ import annotations

import math

import torch

__all__ = ["BLOCK", "SCALE_SUFFIX", "FP8_DTYPES", "is_fp8", "scale_key", "dequantize"]

BLOCK = 128
SCALE_SUFFIX = "_scale_inv"
FP8_DTYPES = tuple(getattr(torch, name) for name in ("float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz",
                                                     "float8_e5m2fnuz") if hasattr(torch, name))


def is_fp8(dtype: torch.dtype) -> bool:
    return dtype in FP8_DTYPES


def scale_key(checkpoint, key: str) -> str | None:
    """``key + "_scale_inv"`` when ``key`` is a 2-D fp8 tensor and that sibling exists with
    the 128x128 block shape; else None."""
    info = checkpoint.info(key)
    if not is_fp8(info.dtype) or len(info.shape) != 2:
        return None
    sibling = key + SCALE_SUFFIX
    if sibling not in checkpoint:
        return None
    scale = checkpoint.info(sibling)
    rows, cols = info.shape
    if scale.shape != (math.ceil(rows / BLOCK), math.ceil(cols / BLOCK)) or not scale.dtype.is_floating_point:
        return None
    return sibling


def dequantize(weight: torch.Tensor, scale: torch.Tensor, first_row: int = 0) -> torch.Tensor:
    """float32 values of ``weight`` rows ``first_row ...`` (``first_row`` a multiple of 128)
    with ``scale`` the whole tensor's block scales."""
    rows, cols = weight.shape
    if first_row % BLOCK:
        raise ValueError("dequantize: first_row must start a 128-row block")
    blocks = scale[first_row // BLOCK: math.ceil((first_row + rows) / BLOCK)].float()
    values = weight.float()
    if rows % BLOCK == 0 and cols % BLOCK == 0:  # broadcast, no expanded scale tensor
        shaped = values.view(rows // BLOCK, BLOCK, cols // BLOCK, BLOCK)
        return (shaped * blocks[:, None, :, None]).view(rows, cols)
    expanded = blocks.repeat_interleave(BLOCK, 0)[:rows].repeat_interleave(BLOCK, 1)[:, :cols]
    return values * expanded
