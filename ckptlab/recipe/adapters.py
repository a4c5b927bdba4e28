"""Shape adapters: fit a source tensor to a target shape, as a recipe's ``adapt:`` says.

Pure functions of tensors and shapes: they never modify their input, keep its dtype,
work on any number of dims, and raise ``AdaptError`` (one line naming the key, both shapes
and the adapter) when an adapter cannot produce the target shape. ``preview_shape`` runs
the same checks on shapes alone, so the app can preview a fix without reading a tensor.

Ops: ``pad`` (grow one dim; fill ``zeros`` | ``mean`` | ``init`` | ``repeat``),
``truncate`` (keep the leading slices of one dim), ``resize`` (pad or truncate every dim
as needed), ``sum`` (collapse channels, e.g. RGB -> grey), ``reinit`` (the target's value).
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from ckptlab.errors import AdaptError

__all__ = ["OPS", "FILLS", "Shape", "describe", "preview_shape", "apply"]

OPS = ("pad", "truncate", "resize", "sum", "reinit")
FILLS = ("zeros", "mean", "init", "repeat")
Shape = tuple[int, ...]


def _field(spec: Any, name: str, default: Any = None) -> Any:
    """Read ``op``/``dim``/``fill`` from an ``AdaptSpec`` or a plain dict."""
    if isinstance(spec, Mapping):
        return spec.get(name, default)
    return getattr(spec, name, default)


def describe(spec: Any) -> str:
    """``pad(dim=1, fill=zeros)``: the adapter as the report and the errors spell it."""
    op, dim, fill = _field(spec, "op"), _field(spec, "dim"), _field(spec, "fill", "zeros")
    parts = [] if dim is None else [f"dim={dim}"]
    if op in ("pad", "resize"):
        parts.append(f"fill={fill or 'zeros'}")
    return f"{op}({', '.join(parts)})"


class _Check:
    """Shape rules of one adapter call; ``fail`` builds the one-line error."""

    def __init__(self, source: Sequence[int], target: Sequence[int], spec: Any, key: str):
        self.source, self.target = tuple(int(n) for n in source), tuple(int(n) for n in target)
        self.spec, self.key = spec, key
        self.op = _field(spec, "op")
        self.fill = _field(spec, "fill", "zeros") or "zeros"
        if self.op not in OPS:
            raise self.fail(f"unknown op {self.op!r} (one of {', '.join(OPS)})")
        if self.fill not in FILLS:
            raise self.fail(f"unknown fill {self.fill!r} (one of {', '.join(FILLS)})")

    def fail(self, why: str) -> AdaptError:
        where = f"{self.key!r}" if self.key else "tensor"
        return AdaptError(f"cannot adapt {where} from {self.source} to {self.target} "
                          f"with {describe(self.spec)}: {why}")

    def same_rank(self) -> None:
        if len(self.source) != len(self.target):
            raise self.fail(f"rank differs ({len(self.source)} vs {len(self.target)} dims)")

    def differing(self) -> list[int]:
        return [d for d, (s, t) in enumerate(zip(self.source, self.target)) if s != t]

    def dim(self, default: int | None = None) -> int:
        """The dim to work on: the spec's, else ``default``, else the one dim that differs."""
        dim = _field(self.spec, "dim")
        if dim is None and default is not None and len(self.source) > default:
            dim = default
        if dim is None:
            diff = self.differing()
            if len(diff) != 1:
                raise self.fail(f"{len(diff)} dims differ, so 'dim' must be given")
            return diff[0]
        rank = len(self.source)
        if not -rank <= int(dim) < rank:
            raise self.fail(f"dim {dim} is out of range for {rank} dims")
        dim = int(dim) % rank
        others = [d for d in self.differing() if d != dim]
        if others:
            raise self.fail(f"dims {others} differ too, but the adapter only changes dim {dim}")
        return dim


def preview_shape(source_shape: Sequence[int], target_shape: Sequence[int], spec: Any, key: str = "") -> Shape:
    """The shape ``apply`` would produce (always ``target_shape``), or ``AdaptError``."""
    check = _Check(source_shape, target_shape, spec, key)
    op = check.op
    if op == "reinit":
        return check.target
    check.same_rank()
    if op == "resize":
        _resize_dims(check)
    elif op == "pad":
        dim = check.dim()
        if check.target[dim] < check.source[dim]:
            raise check.fail(f"pad cannot shrink dim {dim} ({check.source[dim]} -> {check.target[dim]}); use truncate")
        if check.fill == "repeat" and check.source[dim] == 0:
            raise check.fail(f"repeat needs at least one slice along dim {dim}")
    elif op == "truncate":
        dim = check.dim()
        if check.target[dim] > check.source[dim]:
            raise check.fail(f"truncate cannot grow dim {dim} ({check.source[dim]} -> {check.target[dim]}); use pad")
    elif op == "sum":
        dim = check.dim(default=1 if len(check.source) > 1 else 0)
        s, t = check.source[dim], check.target[dim]
        if t == 0 or s % t:
            raise check.fail(f"sum needs dim {dim} of the source ({s}) to be a multiple of the target's ({t})")
    return check.target


def _resize_dims(check: _Check) -> list[int]:
    """Dims a resize changes: all that differ, or only the spec's dim when one is given."""
    if _field(check.spec, "dim") is not None:
        return [check.dim()]
    return check.differing()


def apply(
    tensor: torch.Tensor,
    target_shape: Sequence[int],
    spec: Any,
    target_value: torch.Tensor | None = None,
    key: str = "",
) -> torch.Tensor:
    """Fit ``tensor`` to ``target_shape`` as ``spec`` says; a new tensor, same dtype."""
    check = _Check(tensor.shape, target_shape, spec, key)
    preview_shape(tensor.shape, target_shape, spec, key)
    if check.op in ("reinit",) or check.fill == "init":
        target_value = _checked_target(check, target_value)
    if check.op == "reinit":
        return target_value.to(tensor.dtype, copy=True)
    if check.op == "truncate":
        dim = check.dim()
        return tensor.narrow(dim, 0, check.target[dim]).clone()
    if check.op == "sum":
        return _sum(tensor, check.dim(default=1 if tensor.dim() > 1 else 0), check.target)
    if check.op == "pad":
        return _grow(tensor, check.dim(), check.target, check.fill, target_value)
    return _resize(tensor, check, target_value)


def _resize(tensor: torch.Tensor, check: _Check, target_value: torch.Tensor | None) -> torch.Tensor:
    """Truncate every shrinking dim first, then grow the others (so ``init`` slices fit)."""
    dims = _resize_dims(check)
    out = tensor
    for dim in (d for d in dims if check.target[d] < tensor.shape[d]):
        out = out.narrow(dim, 0, check.target[dim])
    for dim in (d for d in dims if check.target[d] > tensor.shape[d]):
        out = _grow(out, dim, check.target, check.fill, target_value)
    return out.clone() if out.untyped_storage().data_ptr() == tensor.untyped_storage().data_ptr() else out


def _checked_target(check: _Check, target_value: torch.Tensor | None) -> torch.Tensor:
    if target_value is None:
        raise check.fail("needs the target's own value, and none was given")
    if tuple(target_value.shape) != check.target:
        raise check.fail(f"the target value has shape {tuple(target_value.shape)}")
    return target_value


def _grow(tensor: torch.Tensor, dim: int, target: Shape, fill: str, target_value: torch.Tensor | None) -> torch.Tensor:
    """Grow ``dim`` to ``target[dim]``, the new slices made as ``fill`` says."""
    have, want = tensor.shape[dim], target[dim]
    if fill == "repeat":
        return _repeat(tensor, dim, want)
    extra = want - have
    if extra == 0:
        return tensor.clone()
    new_shape = list(tensor.shape)
    new_shape[dim] = extra
    if fill == "zeros" or (fill == "mean" and have == 0):
        new = torch.zeros(new_shape, dtype=tensor.dtype)
    elif fill == "mean":
        new = _mean(tensor, dim).expand(new_shape)
    else:  # init: the target's own values for the new part (its other dims may be wider yet)
        new = target_value.narrow(dim, have, extra)
        new = new[tuple(slice(0, n) for n in new_shape)].to(tensor.dtype)
    return torch.cat([tensor, new], dim=dim)


def _mean(tensor: torch.Tensor, dim: int) -> torch.Tensor:
    """Mean of the slices along ``dim`` (kept as a dim of 1), in the input's dtype."""
    if tensor.is_floating_point() or tensor.is_complex():
        wide = torch.complex128 if tensor.is_complex() else torch.float64
        return tensor.to(wide).mean(dim, keepdim=True).to(tensor.dtype)
    mean = tensor.to(torch.float64).mean(dim, keepdim=True)
    return (mean > 0.5 if tensor.dtype == torch.bool else mean.round()).to(tensor.dtype)


def _repeat(tensor: torch.Tensor, dim: int, want: int) -> torch.Tensor:
    """Tile the ``c`` existing slices to ``want`` and scale by ``c / want``.

    A layer fed the same signal on every channel then gives the same output as before
    when ``want`` is a multiple of ``c`` (the rule timm uses to adapt RGB stems).
    """
    have = tensor.shape[dim]
    reps = [1] * tensor.dim()
    reps[dim] = math.ceil(want / have)
    tiled = tensor.repeat(*reps).narrow(dim, 0, want)
    if tensor.dtype == torch.bool:
        return tiled.clone()
    scaled = tiled.to(torch.float64 if not tensor.is_complex() else torch.complex128) * (have / want)
    if not (tensor.is_floating_point() or tensor.is_complex()):
        scaled = scaled.round()
    return scaled.to(tensor.dtype)


def _sum(tensor: torch.Tensor, dim: int, target: Shape) -> torch.Tensor:
    """Sum each group of ``source/target`` consecutive slices along ``dim`` (RGB -> grey)."""
    have, want = tensor.shape[dim], target[dim]
    grouped = list(tensor.shape)
    grouped[dim:dim + 1] = [want, have // want]
    if tensor.is_floating_point():
        tensor_wide = tensor.to(torch.float64)
    elif tensor.is_complex():
        tensor_wide = tensor.to(torch.complex128)
    else:
        tensor_wide = tensor.to(torch.int64)
    return tensor_wide.reshape(grouped).sum(dim + 1).to(tensor.dtype)
