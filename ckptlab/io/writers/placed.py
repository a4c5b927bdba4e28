"""Strided tensors copied straight into the output's pages: one copy instead of two.

A converted tensor usually comes as a view (a transposed view over the mapped source):
making it contiguous copies it into a buffer that ``pwrite`` then copies into the page
cache. Here it is copied once, by torch, from the source's pages into a shared map of the
output's range (``Sink.place``). Contiguous tensors are written as they are (that is one
copy already) and small ones too (a map costs more than a buffer there). Where the output
cannot be mapped, the bytes are written the old way.
"""
from __future__ import annotations

import zlib

import torch

from ckptlab.io.writers.entries import raw_bytes
from ckptlab.io.writers.sink import Sink, Unmappable

__all__ = ["PLACE_MIN", "pays", "write_tensor"]

PLACE_MIN = 1 << 20  # bytes: below this a copy to a buffer and a write cost less than a map


def pays(t: torch.Tensor) -> bool:
    """Whether placing ``t`` saves a copy: a large CPU tensor whose bytes are not in C order."""
    return t.device.type == "cpu" and not t.is_contiguous() and t.numel() * t.element_size() >= PLACE_MIN


def write_tensor(sink: Sink, t: torch.Tensor, crc: bool = False) -> int | None:
    """Append ``t``'s bytes in C order (placed when that ``pays``); their CRC-32 if ``crc``."""
    if pays(t):
        try:
            return _place(sink, t, crc)
        except Unmappable:
            pass
    data = raw_bytes(t)
    sink.write(data)
    return zlib.crc32(data) if crc else None


def _place(sink: Sink, t: torch.Tensor, crc: bool) -> int | None:
    """The CRC, if asked, is taken from the written pages (still in cache, as the buffer was)."""
    nbytes = t.numel() * t.element_size()
    with sink.place(nbytes) as (mm, offset):
        dest = torch.frombuffer(mm, dtype=torch.uint8, count=nbytes, offset=offset)
        try:
            dest.view(t.dtype).view(t.shape).copy_(t.detach())
        finally:
            del dest  # the map closes at the end of the block: no view of it may outlive it
        if not crc:
            return None
        with memoryview(mm) as view:
            return zlib.crc32(view[offset:offset + nbytes])
