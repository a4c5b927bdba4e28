"""Template (ckptlab.models.codegen): the remap script's shape adapters, the same values as
``ckptlab.recipe.adapters`` computes.

codegen copies only the adapter functions the recipe uses, then ``PAD`` (its value: the fills
used) and ``adapt`` without the branches no ADAPT entry takes.
"""
import torch

from ckptlab.models.templates.script import ADAPT


def truncate(t, dim, size):
    return t.narrow(dim, 0, size).clone()


def pad_zeros(t, dim, size, target_value=None):
    shape = list(t.shape)
    shape[dim] = size - t.shape[dim]
    return torch.cat([t, torch.zeros(shape, dtype=t.dtype)], dim=dim)


def pad_mean(t, dim, size, target_value=None):
    """New slices = the mean of the existing ones (computed in float64)."""
    if t.shape[dim] == 0:
        return pad_zeros(t, dim, size)
    shape = list(t.shape)
    shape[dim] = size - t.shape[dim]
    if t.is_floating_point() or t.is_complex():
        wide = torch.complex128 if t.is_complex() else torch.float64
        mean = t.to(wide).mean(dim, keepdim=True).to(t.dtype)
    else:
        mean = t.to(torch.float64).mean(dim, keepdim=True)
        mean = (mean > 0.5 if t.dtype == torch.bool else mean.round()).to(t.dtype)
    return torch.cat([t, mean.expand(shape)], dim=dim)


def pad_init(t, dim, size, target_value):
    """New slices = the target's own values there."""
    have = t.shape[dim]
    shape = list(t.shape)
    shape[dim] = size - have
    new = target_value.narrow(dim, have, size - have)
    new = new[tuple(slice(0, n) for n in shape)].to(t.dtype)
    return torch.cat([t, new], dim=dim)


def pad_repeat(t, dim, size, target_value=None):
    """Tile the existing slices to `size` and scale by have/size (keeps the output's magnitude)."""
    have = t.shape[dim]
    reps = [1] * t.dim()
    reps[dim] = -(-size // have)
    tiled = t.repeat(*reps).narrow(dim, 0, size)
    if t.dtype == torch.bool:
        return tiled.clone()
    scaled = tiled.to(torch.complex128 if t.is_complex() else torch.float64) * (have / size)
    if not (t.is_floating_point() or t.is_complex()):
        scaled = scaled.round()
    return scaled.to(t.dtype)


def sum_groups(t, dim, size):
    """Sum each group of consecutive slices along dim (e.g. RGB -> grey), in wide precision."""
    grouped = list(t.shape)
    grouped[dim:dim + 1] = [size, t.shape[dim] // size]
    wide = torch.float64 if t.is_floating_point() else torch.complex128 if t.is_complex() else torch.int64
    return t.to(wide).reshape(grouped).sum(dim + 1).to(t.dtype)


def resize(t, shape, dim, fill, target_value=None):
    """Truncate every shrinking dim, then grow the others with `fill`."""
    dims = [dim] if dim is not None else [d for d, (a, b) in enumerate(zip(t.shape, shape)) if a != b]
    out = t
    for d in dims:
        if shape[d] < t.shape[d]:
            out = out.narrow(d, 0, shape[d])
    for d in dims:
        if shape[d] > t.shape[d]:
            out = PAD[fill](out, d, shape[d], target_value)
    return out.clone()


PAD = {"zeros": pad_zeros, "mean": pad_mean, "init": pad_init, "repeat": pad_repeat}


def adapt(key, value, target_value):
    """Fit `value` to ADAPT[key]["shape"] as the recipe says."""
    spec = ADAPT[key]
    op, dim = spec["op"], spec["dim"]
    shape = spec["shape"] or list(target_value.shape)
    if dim is None and op in ("pad", "truncate", "sum"):  # the one dim that differs (sum: channels)
        differ = [d for d, (a, b) in enumerate(zip(value.shape, shape)) if a != b]
        dim = (1 if value.dim() > 1 else 0) if op == "sum" else differ[0]
    if op == "reinit":
        return target_value.to(value.dtype, copy=True)
    if op == "resize":
        return resize(value, shape, dim, spec["fill"], target_value)
    if op == "truncate":
        return truncate(value, dim, shape[dim])
    if op == "sum":
        return sum_groups(value, dim, shape[dim])
    if op == "pad":
        return PAD[spec["fill"]](value, dim, shape[dim], target_value)
    raise ValueError(f"unknown adapter {op!r} for {key!r}")
