"""What a writer is asked to write: output tensors, where their bytes may already lie, tied groups.

Every output's shape and dtype is known before any tensor is made, so headers can be
written first; ``produce`` makes the tensor only when its turn comes.
"""
from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

import torch

from ckptlab.errors import MergeError
from ckptlab.io.tensor_info import TensorInfo

__all__ = ["FileSpan", "OutTensor", "Group", "group_tensors", "raw_bytes"]


@dataclass(frozen=True)
class FileSpan:
    """``nbytes`` bytes at ``offset`` of ``path`` that are exactly a tensor's bytes (C order).

    ``crc`` is the CRC-32 of those bytes when the reader already knows it (a whole stored
    member of a zip archive): a ``.pt`` writer then copies them without reading them itself.
    """

    path: str
    offset: int
    nbytes: int
    crc: int | None = None


@dataclass(frozen=True)
class OutTensor:
    """One output tensor: its key, its final shape/dtype, and how to make it (on demand)."""

    key: str
    info: TensorInfo
    produce: Callable[[], torch.Tensor]
    share: Hashable | None = None  # entries with equal ``share`` are one tied tensor
    span: FileSpan | None = None  # the output bytes lie as they are in a file: copy them there
    produce_view: Callable[[], torch.Tensor] | None = None  # the same value, maybe a strided view
    # of a mapped file, for a writer that copies it at once (into its reused buffer, not fresh memory)


@dataclass(frozen=True)
class Group:
    """Keys that are one tensor in the output (a single key unless tied)."""

    keys: tuple[str, ...]
    info: TensorInfo
    produce: Callable[[], torch.Tensor]
    span: FileSpan | None = None
    produce_view: Callable[[], torch.Tensor] | None = None

    @property
    def copyable_span(self) -> FileSpan | None:
        """The span, if it holds exactly the bytes the header promised."""
        return self.span if self.span is not None and self.span.nbytes == self.info.nbytes else None

    def tensor(self, view: bool = False) -> torch.Tensor:
        """Make the group's tensor and check it is what the header promised (``view``: as
        ``produce_view`` gives it, where there is one, for a writer that copies it at once)."""
        t = self.produce_view() if view and self.produce_view is not None else self.produce()
        if tuple(t.shape) != self.info.shape or t.dtype != self.info.dtype:
            raise MergeError(f"{self.keys[0]!r} came out {tuple(t.shape)} {t.dtype}, "
                             f"but the plan said {self.info.shape} {self.info.dtype}")
        return t


def group_tensors(tensors: Sequence[OutTensor], by_itemsize: bool) -> list[Group]:
    """Tied entries become one group; ``by_itemsize`` orders groups by element size, largest
    first (safetensors wants every tensor aligned to its element size), stable otherwise."""
    by_share: dict[Hashable, list[OutTensor]] = {}
    order: list[list[OutTensor]] = []
    seen: set[str] = set()
    for t in tensors:
        if t.key in seen:
            raise MergeError(f"key {t.key!r} is written twice")
        seen.add(t.key)
        if t.share is not None and t.share in by_share:
            first = by_share[t.share][0]
            if (t.info.shape, t.info.dtype) != (first.info.shape, first.info.dtype):
                raise MergeError(f"tied keys {first.key!r} and {t.key!r} differ in shape or dtype")
            by_share[t.share].append(t)
            continue
        members = [t]
        if t.share is not None:
            by_share[t.share] = members
        order.append(members)
    groups = [Group(tuple(m.key for m in members), members[0].info, members[0].produce, members[0].span,
                    members[0].produce_view) for members in order]
    if by_itemsize:
        groups.sort(key=lambda g: -g.info.dtype.itemsize)
    return groups


def raw_bytes(t: torch.Tensor) -> memoryview:
    """The tensor's bytes, C-contiguous, without a copy when it already is."""
    flat = t.detach().cpu().contiguous().reshape(-1)
    if flat.numel() == 1 and flat.stride(0) != 1:  # one element of a strided view counts as contiguous
        flat = flat.clone(memory_format=torch.contiguous_format)
    if flat.dtype.is_complex:
        flat = torch.view_as_real(flat).reshape(-1)
    return memoryview(flat.view(torch.uint8).numpy()).cast("B")
