"""Strided tensors put in C order in one buffer that a whole write reuses.

A converted tensor usually comes as a view (a transposed view over the mapped source):
``.contiguous()`` would copy it into fresh memory for every tensor, and glibc sometimes
hands that back as new pages (a fault and a zeroed page per 4 KB, ~0.2 s more CPU for a
755 MB GPT-2 conversion in 1 of 6 runs). Copied into one buffer kept for the write instead,
the bytes are ready for ``pwrite`` from warm memory. Copying them straight into a shared map
of the output saves that copy but cost more (the kernel zeroes every page a map faults in;
README, "Conversions and degenerate pairs").
"""
from __future__ import annotations

import torch

from ckptlab.io.writers.entries import raw_bytes

__all__ = ["Staging"]


class Staging:
    """``bytes_of(t)``: ``t``'s bytes in C order, valid until the next call. The buffer grows
    to the largest strided tensor of the write and goes with this object."""

    def __init__(self) -> None:
        self._buffer: torch.Tensor | None = None

    def bytes_of(self, t: torch.Tensor) -> memoryview:
        if t.is_contiguous() or t.numel() == 0:
            return raw_bytes(t)  # no copy
        nbytes = t.numel() * t.element_size()
        if self._buffer is None or self._buffer.numel() < nbytes:
            self._buffer = None  # the old one goes before the new one is made
            self._buffer = torch.empty(nbytes, dtype=torch.uint8)
        raw = self._buffer[:nbytes]
        raw.view(t.dtype).view(t.shape).copy_(t.detach())
        return memoryview(raw.numpy()).cast("B")
