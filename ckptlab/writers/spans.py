"""Copying a tensor's bytes straight from the file they lie in (``FileSpan``), never loading it."""
from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from typing import BinaryIO

from ckptlab.errors import MergeError
from ckptlab.writers.entries import FileSpan

CHUNK = 64 << 20  # large enough to amortise syscalls, small enough to keep memory flat
_NO_KERNEL_COPY = (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EBADF)


def copy_span(span: FileSpan, f: BinaryIO) -> None:
    """Append a file span to ``f`` in the kernel (as ``cp`` does), else through a buffer."""
    f.flush()
    out = f.fileno()
    with open(span.path, "rb", buffering=0) as src:
        offset, left = span.offset, span.nbytes
        try:
            while left:
                n = os.copy_file_range(src.fileno(), out, left, offset)
                if n == 0:
                    raise _ends_early(span, offset)
                offset, left = offset + n, left - n
        except (AttributeError, OSError) as exc:
            if isinstance(exc, OSError) and exc.errno not in _NO_KERNEL_COPY:
                raise
            src.seek(offset)
            while left:
                chunk = src.read(min(left, CHUNK))
                if not chunk:
                    raise _ends_early(span, offset) from None
                os.write(out, chunk)
                offset, left = offset + len(chunk), left - len(chunk)
    f.seek(0, os.SEEK_END)


def span_chunks(span: FileSpan, buffer: bytearray) -> Iterator[memoryview]:
    """A file span in chunks, read into one reused buffer (no fresh memory per tensor)."""
    view = memoryview(buffer)
    with open(span.path, "rb", buffering=0) as src:
        src.seek(span.offset)
        left = span.nbytes
        while left:
            n = src.readinto(view[:min(left, len(view))])
            if not n:
                raise _ends_early(span, span.offset)
            left -= n
            yield view[:n]


def _ends_early(span: FileSpan, offset: int) -> MergeError:
    return MergeError(f"file ends inside tensor data at offset {offset}", span.path)
