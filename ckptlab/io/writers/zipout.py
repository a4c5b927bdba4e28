"""A zip archive of stored (uncompressed) members, each member's data on an aligned offset.

Written here rather than with ``zipfile`` so that a member whose CRC-32 is already known
(a whole member of a source archive) can be copied in the kernel without its bytes ever
passing through Python: the local header is written with the known CRC, then the data.
Members whose CRC is not known are hashed while they are written and their header patched.
Zip64 records are used where sizes, offsets or counts need them, as ``zipfile`` does.
"""
from __future__ import annotations

import struct
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from ckptlab.io.writers.entries import FileSpan
from ckptlab.io.writers.sink import Sink

__all__ = ["StoredZip"]

_LOCAL = struct.Struct("<IHHHHHIIIHH")  # signature ... name length, extra length
_CENTRAL = struct.Struct("<IHHHHHHIIIHHHHHII")
_END = struct.Struct("<IHHHHIIH")
_END64 = struct.Struct("<IQHHIIQQQQ")
_END64_LOCATOR = struct.Struct("<IIQI")
_DOS_DATE = (0 << 9) | (1 << 5) | 1  # 1980-01-01, time 00:00, as torch.save stamps members
_MAX16, _MAX32 = 0xFFFF, 0xFFFFFFFF
_CRC_AT = 14  # offset of the CRC field in a local header
_PAD_ID = 0x4246  # 'FB': the padding extra field torch.save uses


@dataclass(frozen=True)
class _Member:
    name: bytes
    offset: int  # of the local header
    nbytes: int
    crc: int
    zip64: bool
    utf8: bool


class StoredZip:
    """``add_bytes`` / ``add_span`` members in order, then ``close`` writes the central directory.

    ``zip64_limit``: sizes above it get zip64 fields (``zipfile``'s limit; tests lower it).
    """

    def __init__(self, sink: Sink, align: int = 64, zip64_limit: int = zipfile.ZIP64_LIMIT):
        self.sink, self.align, self.zip64_limit = sink, align, zip64_limit
        self.members: list[_Member] = []

    def add_bytes(self, name: str, data: bytes | memoryview) -> None:
        """A member from memory (its CRC computed first, so header and data go out together)."""
        data = memoryview(data).cast("B")
        self._add(name, len(data), zlib.crc32(data), lambda: self.sink.write(data))

    def add_span(self, name: str, span: FileSpan) -> None:
        """A member copied from a file: in the kernel when its CRC is known, else hashed on the way."""
        if span.crc is not None:
            self._add(name, span.nbytes, span.crc, lambda: self.sink.copy(span))
        else:
            self._add(name, span.nbytes, None, lambda: self.sink.copy_with_crc(span))

    def _add(self, name: str, nbytes: int, crc: int | None, write_data: Callable[[], int | None]) -> None:
        encoded, utf8 = _encode(name)
        zip64 = nbytes > self.zip64_limit
        offset = self.sink.pos
        extra = struct.pack("<HHQQ", 1, 16, nbytes, nbytes) if zip64 else b""
        fixed = _LOCAL.size + len(encoded) + len(extra) + 4
        pad = -(offset + fixed) % self.align
        extra += struct.pack("<HH", _PAD_ID, pad) + b"\0" * pad
        size32 = _MAX32 if zip64 else nbytes
        header = _LOCAL.pack(0x04034B50, 45 if zip64 else 20, 0x800 if utf8 else 0, zipfile.ZIP_STORED,
                             0, _DOS_DATE, crc or 0, size32, size32, len(encoded), len(extra))
        self.sink.write(header, encoded, extra)
        computed = write_data()
        if crc is None:
            crc = computed
            self.sink.patch(offset + _CRC_AT, struct.pack("<I", crc))
        self.members.append(_Member(encoded, offset, nbytes, crc, zip64, utf8))

    def close(self) -> None:
        """Central directory, then (when needed) the zip64 end records, then the end record."""
        start = self.sink.pos
        self.sink.write(b"".join(part for m in self.members for part in _central_entry(m, self.zip64_limit)))
        size, count = self.sink.pos - start, len(self.members)
        if count >= _MAX16 or size > self.zip64_limit or start > self.zip64_limit:
            end64 = self.sink.pos
            self.sink.write(_END64.pack(0x06064B50, _END64.size - 12, 45, 45, 0, 0, count, count, size, start),
                            _END64_LOCATOR.pack(0x07064B50, 0, end64, 1))
            count, size, start = min(count, _MAX16), _MAX32, _MAX32  # readers must take the zip64 record
        self.sink.write(_END.pack(0x06054B50, 0, 0, count, count, size, start, 0))
        self.sink.flush()


def _central_entry(m: _Member, zip64_limit: int) -> tuple[bytes, bytes, bytes]:
    """A central directory header; zip64 fields (in the spec's order) for sizes past the limit
    (as in the local header) and for an offset past it."""
    big_size = m.zip64
    big_offset = m.offset > zip64_limit
    fields = ([m.nbytes, m.nbytes] if big_size else []) + ([m.offset] if big_offset else [])
    extra = struct.pack(f"<HH{len(fields)}Q", 1, 8 * len(fields), *fields) if fields else b""
    version = 45 if fields else 20
    size32 = _MAX32 if big_size else m.nbytes
    header = _CENTRAL.pack(0x02014B50, version, version, 0x800 if m.utf8 else 0, zipfile.ZIP_STORED, 0,
                           _DOS_DATE, m.crc, size32, size32, len(m.name), len(extra), 0, 0, 0, 0,
                           _MAX32 if big_offset else m.offset)
    return header, m.name, extra


def _encode(name: str) -> tuple[bytes, bool]:
    try:
        return name.encode("ascii"), False
    except UnicodeEncodeError:
        return name.encode("utf-8"), True
