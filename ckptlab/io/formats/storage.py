"""Storages and tensor views as the pickles describe them, turned into ``LazyTensor``s.

A torch pickle names a *storage* (a flat run of elements of one dtype somewhere in the
file) and then rebuilds each tensor as a view into it (offset, shape, stride). We keep
that description and read, on ``load()``, only the bytes the view covers.
"""
from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from math import prod

import torch

from ckptlab.errors import UnreadableFileError
from ckptlab.io import limits
from ckptlab.io.formats.base import FileSpan, LazyTensor, guarded
from ckptlab.io.tensor_info import TensorInfo

__all__ = ["StorageRef", "view_span", "checked_shape", "lazy_view", "c_strides", "lazy_from_chunks",
    "check_tiling"]


@dataclass(frozen=True, slots=True)
class StorageRef:
    """A storage in a file: ``numel`` elements of ``dtype`` that ``read(offset, nbytes)`` fetches.

    ``read`` takes a byte offset relative to the storage and returns a fresh uint8 tensor.
    ``ident`` is unique per storage within one file (for tied-weight detection).
    ``locate`` (optional) gives ``(path, absolute offset)`` of the storage's first byte when
    its bytes lie uncompressed in a plain file, so contiguous views can offer a file span;
    or ``(path, offset, nbytes, crc)`` when the storage is a zip member whose size and CRC-32
    are known, passed on in the span of a view that covers the whole member.
    ``infos`` (optional) is one dict shared by every storage of a file: its views' ``TensorInfo``
    by (shape, dtype), made once each (a model repeats a few dozen).
    """

    ident: Hashable
    dtype: torch.dtype
    numel: int
    read: Callable[[int, int], torch.Tensor]
    where: str = ""
    locate: Callable[[], tuple[str, int] | tuple[str, int, int, int] | None] | None = None
    infos: dict | None = field(default=None, compare=False, repr=False)


def view_span(offset: int, shape: tuple[int, ...], stride: tuple[int, ...]) -> tuple[int, int]:
    """(first element, element count) of the storage that a strided view touches."""
    if any(s == 0 for s in shape):
        return offset, 0
    last = sum((s - 1) * st for s, st in zip(shape, stride))
    return offset, last + 1


_INT = frozenset({int})


def checked_shape(size, stride=None, where: str | None = None) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """``size`` and ``stride`` (default: C order) as int tuples, or a one-line error: plain
    non-negative ints, at most ``MAX_TENSOR_DIMS`` of them, none above ``MAX_TENSOR_DIM_SIZE``."""
    shape = _ints(size, "size", where)
    strides = c_strides(shape) if stride is None else _ints(stride, "stride", where)
    if len(strides) != len(shape):
        raise UnreadableFileError(f"invalid tensor view (shape {shape}, stride {strides})", where)
    return shape, strides


def _ints(values, what: str, where: str | None) -> tuple[int, ...]:
    """``values`` checked as a tensor size or stride (every test runs in C: one per tensor
    and per stride of a file of thousands)."""
    if not isinstance(values, (tuple, list)) or not _INT.issuperset(map(type, values)):
        raise UnreadableFileError(f"invalid tensor {what} (not a list of integers)", where)
    if len(values) > limits.MAX_TENSOR_DIMS:
        raise limits.exceeded(f"tensor {what} dimensions", len(values), "MAX_TENSOR_DIMS", where)
    if values and min(values) < 0:
        raise UnreadableFileError(f"invalid tensor {what} {tuple(values)} (negative)", where)
    if values and max(values) > limits.MAX_TENSOR_DIM_SIZE:
        raise limits.exceeded(f"a tensor {what} entry", max(values), "MAX_TENSOR_DIM_SIZE", where)
    return values if type(values) is tuple else tuple(values)


def lazy_view(storage: StorageRef, offset, shape, stride) -> LazyTensor:
    """A LazyTensor for ``storage[offset:]`` viewed with ``shape``/``stride``.

    The view must lie inside its storage and may hold at most ``MAX_VIEW_EXPANSION``
    elements per storage element (a stride-0 view cannot turn 4 bytes into 4 GB), or
    ``MAX_EXPANDED_VIEW_ELEMENTS`` if more (an ``expand()``-ed tensor as torch saves it)."""
    where = storage.where or None
    shape, stride = checked_shape(shape, stride, where)
    if type(offset) is not int or offset < 0 or offset > limits.MAX_TENSOR_DIM_SIZE:
        raise UnreadableFileError(f"invalid tensor view offset {offset!r}", where)
    dtype = storage.dtype
    first, count = view_span(offset, shape, stride)
    if count and first + count > storage.numel:
        raise UnreadableFileError(
            f"tensor view (shape {shape}, offset {offset}) reaches past its storage of {storage.numel} elements",
            where)
    numel = prod(shape)
    if numel > max(limits.MAX_VIEW_EXPANSION * storage.numel, limits.MAX_EXPANDED_VIEW_ELEMENTS):
        raise limits.exceeded(f"elements of a tensor view (shape {shape}, stride {stride}) of a storage of "
                              f"{storage.numel}", f"{numel:,}", "MAX_VIEW_EXPANSION", where)
    infos = storage.infos
    info = infos.get((shape, dtype)) if infos is not None else None
    if info is None:
        info = TensorInfo(shape, dtype, numel * dtype.itemsize)
        if infos is not None:
            infos[(shape, dtype)] = info
    view = _View(storage, first, count, shape, stride)
    return LazyTensor(info, view, storage.ident, (offset, shape, stride, dtype), view.span)


class _View:
    """A tensor as a strided view into a storage: called, it reads only the bytes the view
    covers (every failure a one-line error naming the file); ``span()`` says where they lie.
    One small object per tensor, where closures made three (and their cells)."""

    __slots__ = ("storage", "first", "count", "shape", "stride")

    def __init__(self, storage: StorageRef, first: int, count: int, shape: tuple[int, ...], stride: tuple[int, ...]):
        self.storage, self.first, self.count, self.shape, self.stride = storage, first, count, shape, stride

    def __call__(self) -> torch.Tensor:
        return guarded(self._read, self.storage.where or None)()

    def _read(self) -> torch.Tensor:
        dtype = self.storage.dtype
        if self.count == 0:
            return torch.empty_strided(self.shape, self.stride, dtype=dtype)
        itemsize = dtype.itemsize
        raw = self.storage.read(self.first * itemsize, self.count * itemsize)
        flat = raw.view(dtype) if dtype != torch.uint8 else raw
        return flat.as_strided(self.shape, self.stride, 0)

    def span(self) -> FileSpan | None:
        storage, first, count = self.storage, self.first, self.count
        where = storage.locate() if storage.locate is not None else None
        if where is None or count == 0 or self.stride != c_strides(self.shape):
            return None
        itemsize = storage.dtype.itemsize
        span = (where[0], where[1] + first * itemsize, count * itemsize)
        whole_member = len(where) == 4 and first == 0 and count * itemsize == where[2]
        return span + (where[3],) if whole_member else span


def c_strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    """The strides of a C-contiguous tensor of ``shape`` (dims of size 1 as torch sets them)."""
    strides, step = [], 1
    for size in reversed(shape):
        strides.append(step)
        step *= max(size, 1)
    return tuple(reversed(strides))


def lazy_from_chunks(info: TensorInfo, chunks: list[tuple[tuple[int, ...], LazyTensor]],
                     ident: Hashable, name: str = "tensor", where: str | None = None) -> LazyTensor:
    """A tensor assembled from pieces ``(offsets, piece)`` (a sharded distributed checkpoint).

    The pieces must tile the tensor exactly (inside it, no overlaps, no gaps): a gap would
    otherwise come back as whatever memory held before. The error names a missing region."""
    check_tiling(info.shape, [(offsets, piece.info.shape) for offsets, piece in chunks], name, where)
    if len(chunks) == 1 and chunks[0][1].info.shape == info.shape:
        piece = chunks[0][1]
        return LazyTensor(info, piece.load, ident, ("whole", info.shape, info.dtype))

    def load() -> torch.Tensor:
        out = torch.empty(info.shape, dtype=info.dtype)  # every element written below (tiling checked)
        for offsets, piece in chunks:
            index = tuple(slice(o, o + s) for o, s in zip(offsets, piece.info.shape))
            out[index] = piece.load()
        return out

    return LazyTensor(info, guarded(load, where), ident, ("whole", info.shape, info.dtype))


def check_tiling(shape: tuple[int, ...], boxes: list[tuple[tuple[int, ...], tuple[int, ...]]], name: str,
                 where: str | None = None) -> None:
    """Raise unless the boxes ``(offsets, sizes)`` cover ``shape`` exactly once."""
    from ckptlab.errors import quote

    total = prod(shape)
    for offsets, sizes in boxes:
        if len(offsets) != len(shape) or len(sizes) != len(shape) or any(
                o < 0 or s < 0 or o + s > d for o, s, d in zip(offsets, sizes, shape)):
            raise UnreadableFileError(f"a chunk of {quote(name)} (offsets {tuple(offsets)}, sizes {tuple(sizes)}) "
                                      f"lies outside its shape {shape}", where)
    boxes = [b for b in boxes if prod(b[1])]
    # sweep along the dimension the chunks split most (row or column sharding): once a box
    # starts past box a's end there, no later box can overlap a
    axis = max(range(len(shape)), key=lambda d: len({b[0][d] for b in boxes}), default=0)
    boxes.sort(key=lambda b: b[0][axis] if shape else 0)
    for i, (off_a, size_a) in enumerate(boxes):
        for off_b, size_b in boxes[i + 1:]:
            if shape and off_b[axis] >= off_a[axis] + size_a[axis]:
                break
            if all(ob < oa + sa and oa < ob + sb for oa, sa, ob, sb in zip(off_a, size_a, off_b, size_b)):
                raise UnreadableFileError(f"chunks of {quote(name)} overlap (at offsets {tuple(off_a)} and "
                                          f"{tuple(off_b)})", where)
    covered = sum(prod(sizes) for _, sizes in boxes)
    if covered != total:
        gap = _uncovered_point(shape, boxes)
        at = f"; index {gap} is in no chunk" if gap is not None else ""
        raise UnreadableFileError(f"the chunks of {quote(name)} (shape {shape}) cover {covered:,} of its "
                                  f"{total:,} elements{at}", where)


def _uncovered_point(shape, boxes, budget: int = 1_000) -> tuple[int, ...] | None:
    """One index no box covers, looked for among the boxes' corners (bounded search)."""
    import itertools

    axes = [sorted({0} | {o + s for o, s in zip((b[0][d] for b in boxes), (b[1][d] for b in boxes)) if o + s < size})
            for d, size in enumerate(shape)]
    for point in itertools.islice(itertools.product(*axes), budget):
        if not any(all(o <= p < o + s for p, o, s in zip(point, off, sizes)) for off, sizes in boxes):
            return point
    return None
