"""``torch.save`` zip archives (torch >= 1.6) and their TorchScript cousins, header-only.

An archive holds ``<name>/data.pkl`` (the object tree, tensors as persistent ids naming
storages) and one member ``<name>/data/<key>`` per storage, stored uncompressed. We parse
``data.pkl`` with the restricted unpickler and, for each storage, remember where its member
lies; ``LazyTensor.load`` later reads only the span of that member the tensor covers.
"""
from __future__ import annotations

import io
import struct
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ckptlab.errors import UnreadableFileError, UnsupportedFormatError, quote
from ckptlab.io import limits
from ckptlab.io.formats.allowlist import StorageType
from ckptlab.io.formats.base import Loaded
from ckptlab.io.formats.region import Region
from ckptlab.io.formats.storage import StorageRef
from ckptlab.io.formats.unpickler import restricted_load

__all__ = ["MAX_PICKLE_BYTES", "MAX_DEFLATE_RATIO", "ZipArchive", "read_torch_zip"]

MAX_PICKLE_BYTES = limits.MAX_PICKLE_BYTES  # (old names, kept for callers)
MAX_DEFLATE_RATIO = limits.MAX_DEFLATE_RATIO
_LOCAL_HEADER = struct.Struct("<4s22xHH")
_INFLATE_STEP = 2**20  # bytes inflated (and dropped) per step on the way to a tensor's span


@dataclass
class _Members:
    """Where each storage member's bytes start (found on first use from its local header)."""

    region: Region
    infos: dict[str, zipfile.ZipInfo]
    starts: dict[str, int] = field(default_factory=dict)
    inflated: int = 0  # bytes inflated so far by reads of this archive's compressed members

    def read(self, name: str, offset: int, nbytes: int) -> torch.Tensor:
        info = self.infos[name]
        if offset + nbytes > info.file_size:
            raise UnreadableFileError(f"truncated: {name} holds {info.file_size} bytes, a tensor needs "
                                      f"{offset + nbytes}", self.region.path)
        if info.compress_type != zipfile.ZIP_STORED:
            return self._read_compressed(info, offset, nbytes)
        return self.region.read_into_tensor(self.start(name) + offset, nbytes)

    def start(self, name: str) -> int:
        """Offset of a stored member's bytes in the region (read from its local header once)."""
        start = self.starts.get(name)
        if start is None:
            info = self.infos[name]
            sig, name_len, extra_len = _LOCAL_HEADER.unpack(self.region.read(info.header_offset, 30))
            if sig != b"PK\x03\x04":
                raise UnreadableFileError(f"corrupt zip: bad local header for {name}", self.region.path)
            start = self.starts[name] = info.header_offset + 30 + name_len + extra_len
        return start

    def locate(self, name: str) -> tuple[str, int, int, int] | None:
        """``(path, absolute offset, nbytes, CRC-32)`` of a stored member's bytes (size and CRC
        from the central directory); None when compressed."""
        info = self.infos[name]
        if info.compress_type != zipfile.ZIP_STORED:
            return None
        return str(self.region.path), self.region.start + self.start(name), info.file_size, info.CRC

    def _read_compressed(self, info: zipfile.ZipInfo, offset: int, nbytes: int) -> torch.Tensor:
        """Re-zipped archives deflate their members: inflate just up to the span we need,
        in bounded steps, within ``MAX_MEMBER_INFLATED_BYTES`` per member and
        ``MAX_TOTAL_INFLATED_BYTES`` for the archive."""
        if info.file_size > limits.MAX_MEMBER_INFLATED_BYTES:
            raise limits.exceeded(f"compressed member {quote(info.filename)} inflating to", f"{info.file_size:,} bytes",
                                  "MAX_MEMBER_INFLATED_BYTES", self.region.path)
        if self.inflated + offset + nbytes > limits.MAX_TOTAL_INFLATED_BYTES:
            raise limits.exceeded("bytes inflated from this archive's compressed members",
                                  f"{self.inflated + offset + nbytes:,}", "MAX_TOTAL_INFLATED_BYTES", self.region.path)
        self.inflated += offset + nbytes
        try:
            with self.region.open() as fp, zipfile.ZipFile(fp) as zf, zf.open(info) as member:
                left = offset
                while left > 0:
                    step = member.read(min(left, _INFLATE_STEP))
                    if not step:
                        break
                    left -= len(step)
                data = member.read(nbytes)
        except (zipfile.BadZipFile, EOFError, OSError, NotImplementedError, RuntimeError, ValueError) as exc:
            raise UnreadableFileError(f"cannot inflate {quote(info.filename)} ({str(exc)[:80]})", self.region.path) from None
        except zlib.error as exc:
            raise UnreadableFileError(f"corrupt compressed member {quote(info.filename)} ({exc})", self.region.path) from None
        if len(data) != nbytes:
            raise UnreadableFileError(f"truncated member {quote(info.filename)}", self.region.path)
        return torch.frombuffer(bytearray(data), dtype=torch.uint8) if nbytes else torch.empty(0, dtype=torch.uint8)


class _Member:
    """One storage's member: called, it reads ``nbytes`` at ``offset`` in it; ``locate()`` says
    where its bytes lie. One small object per storage, where closures made two and their cells."""

    __slots__ = ("members", "name")

    def __init__(self, members: _Members, name: str):
        self.members, self.name = members, name

    def __call__(self, offset: int, nbytes: int) -> torch.Tensor:
        return self.members.read(self.name, offset, nbytes)

    def locate(self) -> tuple[str, int, int, int] | None:
        return self.members.locate(self.name)


class ZipArchive:
    """The members of one torch archive, by name relative to its top folder."""

    def __init__(self, region: Region, path: Path):
        self.region, self.path = region, path
        self._fp = region.open()
        try:
            _check_member_count(self._fp, path)
            self._zip = zipfile.ZipFile(self._fp)
            infos = self._zip.infolist()
        except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError, OSError, struct.error,
                UnicodeDecodeError) as exc:
            self._fp.close()
            raise UnreadableFileError(f"truncated or corrupt zip archive ({str(exc)[:100]})", path) from None
        except BaseException:
            self._fp.close()
            raise
        try:
            self.prefix = _torch_prefix([i.filename for i in infos], path)
        except UnreadableFileError:
            self.close()
            raise
        self.infos = {i.filename[len(self.prefix):]: i for i in infos}
        self.members = _Members(region, {n: i for n, i in self.infos.items() if n.startswith("data/")})
        self._where, self._region_path = str(path), str(region.path)
        self._infos: dict = {}  # the TensorInfo of each (shape, dtype) of this file's tensors, made once

    def close(self) -> None:
        """Parsing is done: lazy tensors reopen the file themselves, one span at a time."""
        self._zip.close()
        self._fp.close()

    def __enter__(self) -> "ZipArchive":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def is_torchscript(self) -> bool:
        return "constants.pkl" in self.infos or any(n.startswith("code/") for n in self.infos)

    def read_small(self, name: str) -> bytes:
        """A metadata member (data.pkl, byteorder), refusing zip bombs."""
        info = self.infos[name]
        if info.file_size > limits.MAX_PICKLE_BYTES:
            raise limits.exceeded(f"{quote(name)} declaring", f"{info.file_size:,} bytes", "MAX_PICKLE_BYTES", self.path)
        if (info.compress_type != zipfile.ZIP_STORED
                and info.file_size > limits.MAX_DEFLATE_RATIO * max(info.compress_size, 1)):
            raise UnreadableFileError(f"{quote(name)} inflates {info.file_size // max(info.compress_size, 1)}x "
                                      "(a zip bomb?); refusing to inflate it (limit MAX_DEFLATE_RATIO = "
                                      f"{limits.MAX_DEFLATE_RATIO})", self.path)
        try:
            with self._zip.open(info) as member:
                data = member.read(info.file_size + 1)
        except (zipfile.BadZipFile, EOFError, OSError, NotImplementedError, RuntimeError, ValueError,
                zlib.error) as exc:
            raise UnreadableFileError(f"cannot read {quote(name)} ({str(exc)[:100]})", self.path) from None
        if len(data) > limits.MAX_PICKLE_BYTES:
            raise limits.exceeded(f"{quote(name)} inflating to", f"> {len(data):,} bytes", "MAX_PICKLE_BYTES", self.path)
        return data

    def check_byteorder(self) -> None:
        if "byteorder" in self.infos and self.read_small("byteorder").strip() == b"big":
            raise UnsupportedFormatError("big-endian checkpoints are not supported", self.path)

    def load_pickle(self, name: str = "data.pkl") -> tuple[Any, set[str]]:
        """Unpickle ``name`` with storages resolved to lazy references into ``data/``."""
        storages: dict[str, StorageRef] = {}

        def persistent_load(pid: Any) -> StorageRef:
            if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
                raise UnreadableFileError("unexpected persistent id", self.path)
            _, storage_type, key, _location, numel = pid[:5]
            if type(key) not in (str, int) or type(numel) is not int or not 0 <= numel <= limits.MAX_TENSOR_DIM_SIZE:
                raise UnreadableFileError("malformed storage id", self.path)
            key = str(key)
            if key not in storages:
                storages[key] = self._storage(key, storage_type, int(numel))
            return storages[key]

        return restricted_load(io.BytesIO(self.read_small(name)), self.path, name, persistent_load)

    def _storage(self, key: str, storage_type: Any, numel: int) -> StorageRef:
        dtype = storage_type.dtype if isinstance(storage_type, StorageType) else storage_type
        if not isinstance(dtype, torch.dtype):
            raise UnsupportedFormatError(f"storage {quote(key)} has an unknown storage type {quote(storage_type)}",
                                         self.path)
        member = f"data/{key}"
        info = self.members.infos.get(member)
        if info is None:
            raise UnreadableFileError(f"archive lacks {quote(member)}, which data.pkl refers to", self.path)
        if info.file_size < numel * dtype.itemsize:
            raise UnreadableFileError(f"truncated: {quote(member)} holds {info.file_size} bytes, needs "
                                      f"{numel * dtype.itemsize}", self.path)
        reader = _Member(self.members, member)
        ident = (self._region_path, self.region.start, key)
        return StorageRef(ident, dtype, numel, reader, self._where, reader.locate, self._infos)


def _torch_prefix(names: list[str], path: Path) -> str:
    """The archive's folder as ``torch.load`` finds it, refusing what it refuses or reads
    ambiguously: the folder is the first member's top folder, every member must lie in it
    and ``data.pkl`` directly in it, and no name may repeat (torch may read either copy).
    So the bytes ckptlab vouches for are the bytes a training script loads."""
    if not any(n == "data.pkl" or n.endswith("/data.pkl") for n in names):
        raise UnreadableFileError("zip archive is not a PyTorch checkpoint (it has no data.pkl)", path)
    folder, slash, _ = names[0].partition("/")
    if not slash or not folder:
        raise UnreadableFileError(f"zip member {quote(names[0])} is not inside a folder (torch.load refuses the "
                                  "archive)", path)
    prefix = folder + "/"
    seen: set[str] = set()
    for name in names:
        if not name.startswith(prefix):
            raise UnreadableFileError(f"zip member {quote(name)} lies outside the archive's folder {quote(prefix)}: "
                                      "members under two prefixes (torch.load refuses the archive)", path)
        if name in seen:
            raise UnreadableFileError(f"zip member {quote(name)} is listed twice (torch.load may read either copy)",
                                      path)
        seen.add(name)
    if prefix + "data.pkl" not in seen:
        raise UnreadableFileError(f"zip archive has no {quote(prefix + 'data.pkl')} (torch.load reads data.pkl "
                                  "from the first member's folder only)", path)
    return prefix


def _check_member_count(fp, path: Path) -> None:
    """Refuse an archive whose directory lists more than ``MAX_ZIP_MEMBERS`` members before
    ``zipfile`` builds an object for each one."""
    end = zipfile._EndRecData(fp)  # noqa: SLF001 - the end record: the count, before the directory is read
    if end is None:
        raise zipfile.BadZipFile("no end of central directory record")
    count = end[zipfile._ECD_ENTRIES_TOTAL]  # noqa: SLF001
    if count > limits.MAX_ZIP_MEMBERS:
        raise limits.exceeded("zip members", f"{count:,}", "MAX_ZIP_MEMBERS", path)
    fp.seek(0)


def read_torch_zip(region: Region, path: Path) -> Loaded:
    """A ``torch.save`` archive (or TorchScript, see ``torchscript.py``) as a Loaded tree."""
    with ZipArchive(region, path) as archive:
        archive.check_byteorder()
        if archive.is_torchscript:
            from ckptlab.io.formats.torchscript import read_torchscript

            return read_torchscript(archive)
        root, placeholders = archive.load_pickle()
    return Loaded("torch-zip", root, tuple(sorted(placeholders)))

