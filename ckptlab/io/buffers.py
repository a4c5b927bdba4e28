"""Per-thread scratch buffers for the value scans (stats, diff).

A scan widens each run of values into a float64 buffer before summing it. Allocating that
buffer per run (2 MB at 2**18 elements) costs an ``mmap``/``munmap`` and fresh page faults
every time, which profiling showed to be a large share of the scan: so each worker thread
keeps one buffer per dtype and reuses it (``parallel.py`` runs the scans on a few threads,
each with its own).
"""
from __future__ import annotations

import threading

import torch

__all__ = ["buffer"]

_local = threading.local()


def buffer(name: str, dtype: torch.dtype, n: int) -> torch.Tensor:
    """A 1-D tensor of ``n`` elements of ``dtype``, this thread's own, reused across calls
    with the same ``name`` (its contents are whatever was left in it)."""
    held = getattr(_local, "buffers", None)
    if held is None:
        held = _local.buffers = {}
    got = held.get(name)
    if got is None or got.dtype != dtype or got.numel() < n:
        got = held[name] = torch.empty(n, dtype=dtype)
    return got[:n]
