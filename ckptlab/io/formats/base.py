"""What every format reader hands back: a tree of objects with lazy tensors as leaves.

A reader parses only headers (a pickle, a JSON header, an index); tensor bytes stay on
disk until ``LazyTensor.load()`` is called. ``containers`` then finds the tensor mapping
inside the tree and ``Checkpoint`` wraps it.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable

import torch

from ckptlab.errors import CheckpointError, UnreadableFileError
from ckptlab.io.tensor_info import TensorInfo

__all__ = ["FileSpan", "LazyTensor", "TensorTable", "guarded", "Loaded"]

# (path, offset, nbytes), plus the CRC-32 of those bytes when the reader knows it for free
FileSpan = tuple[str, int, int] | tuple[str, int, int, int]


class LazyTensor:
    """A tensor in a file: its metadata now, its bytes on demand.

    ``storage_id`` identifies the underlying storage (and ``view`` the offset, shape and
    stride into it) so that tied or shared tensors can be recognised without reading them.
    ``span`` (optional) says where the bytes lie on disk; see ``file_span``.
    """

    __slots__ = ("info", "_load", "storage_id", "view", "_span")

    def __init__(
        self,
        info: TensorInfo,
        load: Callable[[], torch.Tensor],
        storage_id: Hashable | None = None,
        view: tuple | None = None,
        span: Callable[[], FileSpan | None] | None = None,
    ):
        self.info = info
        self._load = load
        self.storage_id = storage_id
        self.view = view
        self._span = span

    @property
    def file_span(self) -> FileSpan | None:
        """``(path, offset, nbytes)`` when the tensor's bytes lie in one file contiguously,
        in C order and little-endian, exactly as ``load()`` would return them: a writer may
        then copy them file to file instead of loading the tensor. ``None`` otherwise.
        A fourth item, when present, is the bytes' CRC-32 (a whole stored zip member's, from
        the archive's directory), so a zip writer need not read them to hash them."""
        return self._span() if self._span is not None else None

    def load(self) -> torch.Tensor:
        """Read the bytes and return a CPU tensor that owns its memory."""
        return self._load()

    def __repr__(self) -> str:
        return f"LazyTensor(shape={self.info.shape}, dtype={self.info.dtype_name})"


class TensorTable(Mapping):
    """A flat file's tensors by key (a safetensors header), each ``LazyTensor`` made when first
    asked for and then kept, so it stays one object (ties, aliases). A header of thousands of
    tensors opens without an object per tensor, and ``info(key)`` answers from the table.

    ``infos`` maps every key, in file order, to its checked ``TensorInfo``; ``make(key, info)``
    builds the key's ``LazyTensor``. The reader has checked the keys against ``limits``."""

    __slots__ = ("infos", "_make", "_made")

    def __init__(self, infos: dict[str, TensorInfo], make: Callable[[str, TensorInfo], LazyTensor]):
        self.infos = infos
        self._make = make
        self._made: dict[str, LazyTensor] = {}

    def __getitem__(self, key: str) -> LazyTensor:
        made = self._made.get(key)
        if made is None:
            made = self._made[key] = self._make(key, self.infos[key])
        return made

    def __iter__(self) -> Iterator[str]:
        return iter(self.infos)

    def __len__(self) -> int:
        return len(self.infos)

    def __contains__(self, key: object) -> bool:
        return key in self.infos

    def __repr__(self) -> str:
        return f"TensorTable({len(self.infos)} tensors)"


def guarded(load: Callable[[], torch.Tensor], where: str | None) -> Callable[[], torch.Tensor]:
    """``load`` whose every failure is a one-line ``CheckpointError`` naming ``where``: reading
    tensor bytes of a hostile file may fail inside torch, zlib or the OS, never as a traceback."""
    def run() -> torch.Tensor:
        try:
            return load()
        except CheckpointError:
            raise
        except MemoryError:
            raise UnreadableFileError("tensor data asks for more memory than exists", where) from None
        except OSError as exc:
            raise UnreadableFileError(f"cannot read tensor data ({exc.strerror or type(exc).__name__})", where) from None
        except Exception as exc:  # noqa: BLE001 - hostile bytes: any other failure is "corrupt"
            raise UnreadableFileError(f"corrupt tensor data ({type(exc).__name__}: {str(exc)[:120]})", where) from None

    return run


@dataclass
class Loaded:
    """The parsed file: its format name, its object tree, and what was stood in for."""

    format: str
    root: Any
    placeholders: tuple[str, ...] = ()
    metadata: dict[str, str] = field(default_factory=dict)
