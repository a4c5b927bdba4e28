"""A tensor's elements in bounded windows, read straight from the file where it can be.

Value scans (stats, diff) must hold memory bounded by their windows, never by the file nor
by a whole multi-GB tensor: a tensor whose bytes lie contiguously in the file
(``LazyTensor.file_span``: safetensors, stored torch zips, legacy pickles), however small, is
cut into windows of at most ``WINDOW_BYTES``, each one a private read-only ``mmap`` of just its
bytes (no copy out of the page cache; unmapped when the window's tensor is dropped; its pages
are the file's, not anonymous memory). Other tensors (compressed zip members, non-contiguous
views, DCP chunks, tensors in memory) are read whole by their reader, once, cut into views,
and let go once their last window has been read: memory is then bounded by the largest
tensors in flight. A scan that takes each element once reads a mapped window with ``runs()``
instead: ``preadv`` run by run into a reused buffer.
"""
from __future__ import annotations

import mmap
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from ckptlab.io import buffers as scratch
from ckptlab.errors import UnreadableFileError
from ckptlab.io.formats.base import LazyTensor

__all__ = ["WINDOW_BYTES", "Window", "windows", "tensor_windows", "per_window", "runs", "sample", "mapped"]

WINDOW_BYTES = 16 * 2**20


@dataclass(frozen=True)
class Window:
    """Elements ``[start, start + count)`` of a tensor (flat, C order); ``read()`` gives them
    as a 1-D tensor of the tensor's dtype (which may share memory with the file or the
    tensor: never write to it)."""

    start: int
    count: int
    read: Callable[[], torch.Tensor]


def windows(lazy: LazyTensor, max_bytes: int | None = None, align: int = 1,
            per: int | None = None) -> list[Window]:
    """The windows covering ``lazy`` (at most ``max_bytes``, default ``WINDOW_BYTES``, each);
    window boundaries fall on multiples of ``align`` elements (e.g. whole 128-row blocks), a
    window holding at least ``align`` elements. ``per`` fixes the elements per window instead
    (two tensors of different dtypes cut alike)."""
    info = lazy.info
    n = info.numel
    if n == 0:
        return []
    per = per or per_window(info.dtype.itemsize, max_bytes, align)
    span = lazy.file_span  # small tensors too: a whole load per tensor is what made the scans' memory grow
    if span is None:
        whole = _Once(lambda: lazy.load().reshape(-1), -(-n // per))
        if n <= per:
            return [Window(0, n, whole)]
        return [Window(s, min(per, n - s), _Slice(whole, s, min(per, n - s))) for s in range(0, n, per)]
    path, offset = span[0], span[1]
    itemsize = info.dtype.itemsize
    return [Window(s, min(per, n - s), _Mapped(path, offset + s * itemsize, min(per, n - s), info.dtype))
            for s in range(0, n, per)]


def tensor_windows(tensor: torch.Tensor, max_bytes: int | None = None, align: int = 1,
                   per: int | None = None) -> list[Window]:
    """Windows over a tensor already in memory (views, no copies once flattened)."""
    flat = tensor.reshape(-1)
    n = flat.numel()
    per = per or per_window(tensor.element_size(), max_bytes, align)
    return [Window(s, min(per, n - s), (lambda s=s: flat[s:s + per])) for s in range(0, n, per)]


def per_window(itemsize: int, max_bytes: int | None = None, align: int = 1) -> int:
    """Elements per window: as many as fit ``max_bytes`` (default ``WINDOW_BYTES``), a multiple of ``align``."""
    max_bytes = max_bytes or WINDOW_BYTES
    align = max(1, align)
    return max(align, (max_bytes // max(1, itemsize)) // align * align)


class _Once:
    """A whole tensor read once (from any thread) and shared by its ``uses`` windows, then let
    go: held after its last window has taken it, a scan's plans (every window of every tensor,
    built up front) would keep the whole file in memory until the scan returns. A window read
    again after that reloads it."""

    def __init__(self, load: Callable[[], torch.Tensor], uses: int = 1):
        self._load, self._value, self._lock = load, None, threading.Lock()
        self._uses = self._left = max(1, uses)

    def __call__(self) -> torch.Tensor:
        with self._lock:
            value = self._value if self._value is not None else self._load()
            self._left -= 1
            if self._left <= 0:  # every window has it: the callers' references keep it alive, we do not
                self._value, self._left = None, self._uses
            else:
                self._value = value
            return value


class _Slice:
    def __init__(self, whole: _Once, start: int, count: int):
        self.whole, self.start, self.count = whole, start, count

    def __call__(self) -> torch.Tensor:
        return self.whole()[self.start:self.start + self.count]


class _Mapped:
    """``count`` elements of ``dtype`` at byte ``offset`` of ``path``, mapped on demand."""

    def __init__(self, path: str, offset: int, count: int, dtype: torch.dtype):
        self.path, self.offset, self.count, self.dtype = path, offset, count, dtype

    def __call__(self) -> torch.Tensor:
        nbytes = self.count * self.dtype.itemsize
        base = self.offset - self.offset % mmap.ALLOCATIONGRANULARITY
        try:
            with open(self.path, "rb") as f:
                if os.fstat(f.fileno()).st_size < self.offset + nbytes:
                    raise UnreadableFileError(f"truncated: tensor data at offset {self.offset} (+{nbytes} bytes) "
                                              "lies beyond the end of the file", self.path)
                # private + writable: torch wants a writable buffer; pages are only read, so none is copied
                mm = mmap.mmap(f.fileno(), nbytes + self.offset - base, flags=mmap.MAP_PRIVATE,
                               prot=mmap.PROT_READ | mmap.PROT_WRITE, offset=base)
        except OSError as exc:
            raise UnreadableFileError(f"cannot map tensor data ({exc.strerror or exc})", self.path) from None
        mm.madvise(mmap.MADV_SEQUENTIAL)
        raw = torch.frombuffer(mm, dtype=torch.uint8, count=nbytes, offset=self.offset - base)
        return raw if self.dtype == torch.uint8 else raw.view(self.dtype)


def runs(w: Window, n: int, buffer: str = "runs") -> Iterator[torch.Tensor]:
    """The window's elements as 1-D runs of at most ``n``, for a scan that takes each once.

    A window mapped from the file is read run by run with ``preadv`` into this thread's
    ``buffer`` (``scratch.py``): one copy out of the page cache, as ``cat`` does, instead of
    faulting in and unmapping 16 MB of pages per window. bench/bench_values.py against the
    mapped windows in one run: CPU 0.95-1.14x (no clear change), peak RSS 25-44 MB -> 10-27 MB
    (mapped pages count as resident). Each run is valid only until the next one is taken (the
    buffer is reused). Other windows are sliced from ``read()``."""
    source = w.read
    if not isinstance(source, _Mapped):
        values = source()
        for start in range(0, w.count, n):
            yield values[start:start + n]
        return
    itemsize = source.dtype.itemsize
    raw = scratch.buffer(buffer, torch.uint8, min(n, w.count) * itemsize)
    view = memoryview(raw.numpy())
    try:
        fd = os.open(source.path, os.O_RDONLY)
    except OSError as exc:
        raise UnreadableFileError(f"cannot read tensor data ({exc.strerror or exc})", source.path) from None
    try:
        for start in range(0, w.count, n):
            count = min(n, w.count - start)
            nbytes, offset = count * itemsize, source.offset + start * itemsize
            if os.preadv(fd, [view[:nbytes]], offset) != nbytes:
                raise UnreadableFileError(f"truncated: tensor data at offset {offset} (+{nbytes} bytes) "
                                          "lies beyond the end of the file", source.path)
            yield raw[:nbytes].view(source.dtype)
    finally:
        os.close(fd)


def sample(lazy: LazyTensor, count: int) -> torch.Tensor:
    """About ``count`` evenly spaced elements of ``lazy`` (all of them if fewer), read window
    by window so a huge tensor is never held whole (a histogram's data)."""
    n = lazy.info.numel
    step = max(1, -(-n // max(1, count)))
    parts = []
    for w in windows(lazy):
        first = (-w.start) % step  # the first multiple of ``step`` inside this window
        if first < w.count:
            parts.append(w.read()[first::step].clone())
    return torch.cat(parts) if parts else torch.empty(0, dtype=lazy.info.dtype)


def mapped(lazy: LazyTensor) -> torch.Tensor | None:
    """The whole tensor as a private map of its bytes in the file (read-only use, no copy out
    of the page cache), or None when its bytes are not one span of the file. A conversion
    then reads the page cache directly (a transpose copies once, not twice)."""
    span = getattr(lazy, "file_span", None)
    info = lazy.info
    if span is None or info.numel == 0 or span[2] != info.nbytes:
        return None
    return _Mapped(span[0], span[1], info.numel, info.dtype)().view(info.shape)
