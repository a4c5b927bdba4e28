"""An output file written by position: plain writes, kernel copies from other files, patches.

Writers track where every byte goes (headers are sized before data), so the file's own
position and Python's buffering never matter; large tensors go out without a copy, in
``pwrite`` calls of at most ``WRITE_PIECE`` bytes each, and bytes that already lie in a file
(``FileSpan``) are copied by ``copy_file_range`` (in the kernel, as ``cp`` does) or, where
that is refused, through one reused buffer. A zip member's CRC, when not known, is taken
from the source's pages.

Why pieces: on ext4 (Linux 6.x) one ``pwrite`` of a whole 4-16 MB tensor often cost 2-5x
the CPU of the same bytes written 64 KB-1 MB at a time (``cp``'s in-kernel copy moves 64 KB
at a time), and otherwise about the same; on tmpfs they cost the same. Aligning the pieces to their size
gained nothing; writing through a shared ``mmap`` of the output instead cost more on both (also
with each range faulted in by one ``madvise``: the kernel zeroes every page it maps in).
Measured by ``bench/bench_write_paths.py`` and ``bench/bench_convert.py --old-write``
(README, "Conversions and degenerate pairs").
"""
from __future__ import annotations

import errno
import mmap
import os
import zlib
from typing import BinaryIO

from ckptlab.errors import MergeError
from ckptlab.io.writers.entries import FileSpan

__all__ = ["CHUNK", "WRITE_PIECE", "Sink", "span_crc"]

CHUNK = 64 << 20  # large enough to amortise syscalls, small enough to keep memory flat
WRITE_PIECE = 128 << 10  # bytes per pwrite: see the module docstring
_IOV_MAX = 64
_SMALL = 64 << 10  # writes up to this size are combined ...
_PENDING_MAX = 1 << 20  # ... into writes of about this size
_NO_KERNEL_COPY = (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EBADF)


class Sink:
    """Appends to ``f`` through its descriptor at ``pos`` (every write names its offset, as
    ``copy_file_range`` with an offset leaves the descriptor's own position behind)."""

    def __init__(self, f: BinaryIO):
        f.flush()
        self.fd = f.fileno()
        self.pos = f.tell()  # where the next byte goes (pending bytes included)
        self._pending = bytearray()  # small writes, combined into one syscall
        self._buffer: bytearray | None = None

    def write(self, *parts: bytes | memoryview) -> None:
        """Append ``parts`` in order; small ones are combined, large ones written without a copy."""
        if sum(len(p) for p in parts) <= _SMALL:
            for p in parts:
                self._pending += p
            self.pos += sum(len(p) for p in parts)
            if len(self._pending) >= _PENDING_MAX:
                self.flush()
            return
        self.flush()
        self._write_now([memoryview(p).cast("B") for p in parts if len(p)])

    def flush(self) -> None:
        """Write out the combined small writes (before any copy, patch, or the end)."""
        if self._pending:
            pending, self._pending = self._pending, bytearray()
            self._write_now([memoryview(pending)], at=self.pos - len(pending))

    def _write_now(self, views: list[memoryview], at: int | None = None) -> None:
        """Write ``views`` in order at ``at`` (default: the end), ``WRITE_PIECE`` bytes per call."""
        pos = self.pos if at is None else at
        views = [v for v in views if len(v)]
        while views:
            batch, room = [], WRITE_PIECE
            for v in views[:_IOV_MAX]:
                batch.append(v[:room])
                room -= len(batch[-1])
                if not room:
                    break
            n = os.pwritev(self.fd, batch, pos) if len(batch) > 1 else os.pwrite(self.fd, batch[0], pos)
            if n <= 0:
                raise OSError(errno.EIO, "the output took no bytes")
            pos += n
            while views and n >= len(views[0]):
                n -= len(views.pop(0))
            if views and n:
                views[0] = views[0][n:]
        if at is None:
            self.pos = pos

    def patch(self, at: int, data: bytes) -> None:
        """Overwrite bytes already written (a header field known only after the data)."""
        self.flush()
        if os.pwrite(self.fd, data, at) != len(data):
            raise OSError(errno.EIO, "short write while patching the output")

    def copy(self, span: FileSpan) -> None:
        """Append a file span, in the kernel when it can be."""
        self.flush()
        with open(span.path, "rb", buffering=0) as src:
            done = 0
            try:
                while done < span.nbytes:
                    n = os.copy_file_range(src.fileno(), self.fd, span.nbytes - done,
                                           span.offset + done, self.pos)
                    if n == 0:
                        raise _ends_early(span, span.offset + done)
                    done += n
                    self.pos += n
            except (AttributeError, OSError) as exc:
                if isinstance(exc, OSError) and exc.errno not in _NO_KERNEL_COPY:
                    raise
                self._copy_through_buffer(src, span, done)

    def copy_with_crc(self, span: FileSpan) -> int:
        """Append a file span and return its CRC-32: hashed where it lies, then copied in the
        kernel (measured faster than hashing a buffer on its way through, see bench_remap)."""
        crc = span_crc(span)
        self.copy(span)
        return crc

    def _copy_through_buffer(self, src, span: FileSpan, done: int) -> None:
        if self._buffer is None or len(self._buffer) < min(CHUNK, span.nbytes - done):
            self._buffer = bytearray(min(CHUNK, max(span.nbytes - done, 1)))  # grows to CHUNK at most
        view = memoryview(self._buffer)
        src.seek(span.offset + done)
        while done < span.nbytes:
            n = src.readinto(view[:min(span.nbytes - done, len(view))])
            if not n:
                raise _ends_early(span, span.offset + done)
            self.write(view[:n])
            done += n


def span_crc(span: FileSpan) -> int:
    """CRC-32 of a file span, read through mapped windows of ``CHUNK`` bytes (memory stays flat:
    each window is unmapped before the next; nothing is copied into Python)."""
    crc = 0
    with open(span.path, "rb", buffering=0) as src:
        size = os.fstat(src.fileno()).st_size
        if span.offset + span.nbytes > size:
            raise _ends_early(span, size)
        start, end = span.offset, span.offset + span.nbytes
        while start < end:
            base = start - start % mmap.ALLOCATIONGRANULARITY
            length = min(end, base + CHUNK) - base
            with mmap.mmap(src.fileno(), length, access=mmap.ACCESS_READ, offset=base) as window:
                with memoryview(window) as view:
                    crc = zlib.crc32(view[start - base:], crc)
            start = base + length
    return crc

def _ends_early(span: FileSpan, offset: int) -> MergeError:
    return MergeError(f"file ends inside tensor data at offset {offset}", span.path)
