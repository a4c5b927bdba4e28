"""``load_into``: warm-start a model in place with a recipe designed in the app.

The one call a training script makes. It follows exactly the rules of ``remap`` (the same
alignment and merge plan), but instead of writing a file it copies each planned tensor
into the model's own parameter or buffer, one at a time, so the model keeps its device,
dtype, identity (optimizers built earlier still hold the same tensors) and tied weights.

An empty or near-empty load is the failure that cost the story-5 user a week (every key
gained ``attention_map.``; ``strict=False`` said nothing): it always raises a
``CkptlabWarning``, however the caller configured logging.
"""
from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import nn

from ckptlab.checkpoint import Checkpoint
from ckptlab.errors import CheckpointError
from ckptlab.report import Report


class CkptlabWarning(UserWarning):
    """A load that fed few or no keys of the model (never silent)."""


def load_into(
    model: nn.Module,
    source: Any,
    recipe: Any = None,
    auto: str = "high",
    *,
    on_mismatch: str = "error",
) -> Report:
    """Load ``source`` into ``model`` in place and return the ``Report``.

    ``source``: a path, Checkpoint, mapping of tensors, nn.Module or model spec.
    ``recipe``/``auto`` as for ``align``. Rows that stay ``missing`` (and mismatches kept
    under ``on_mismatch="keep-target"``) keep the model's current values. Raises
    ``MergeError`` (nothing copied) on a conflict or an unresolved shape mismatch.
    """
    from ckptlab.align import align
    from ckptlab.merge import plan

    state = model.state_dict(keep_vars=True)
    on_meta = [key for key, value in state.items() if value.is_meta]
    if on_meta:
        raise CheckpointError(f"{type(model).__name__} holds {len(on_meta)} tensors on the meta device "
                              f"(first: {on_meta[0]!r}); call model.to_empty(device=...) before load_into")
    alignment = align(source, Checkpoint.from_module(model), recipe=recipe, auto=auto)
    merge_plan = plan(alignment, on_mismatch)
    tied = _tied_keys(state)
    copied: dict[tuple, tuple[str, torch.Tensor]] = {}
    with torch.no_grad():
        for key, entry in merge_plan.entries.items():
            if entry.keeps_target:
                continue
            destination = state[key]
            value = merge_plan.produce(key)  # a conversion group is computed once
            if key in tied:
                _check_tied(copied, _where(destination), key, value)
            destination.copy_(value)  # converts dtype and device; the model's tensor stays the same object
    report = merge_plan.report()
    message = _load_warning(report, alignment.warning)
    if message:
        warnings.warn(CkptlabWarning(f"load_into {type(model).__name__}: {message}"), stacklevel=2)
    return report


def _where(t: torch.Tensor) -> tuple:
    return (t.device, t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape))


def _tied_keys(state: dict[str, torch.Tensor]) -> set[str]:
    """Keys whose tensor is also another key's (only these are remembered while copying)."""
    groups: dict[tuple, list[str]] = {}
    for key, value in state.items():
        groups.setdefault(_where(value), []).append(key)
    return {key for keys in groups.values() if len(keys) > 1 for key in keys}


def _check_tied(copied: dict[tuple, tuple[str, torch.Tensor]], where: tuple, key: str,
                value: torch.Tensor) -> None:
    """Two names of one tied tensor fed with different values: the later would win silently."""
    if where in copied:
        first_key, first_value = copied[where]
        if not torch.equal(first_value, value):
            warnings.warn(CkptlabWarning(f"load_into: {key!r} is tied to {first_key!r} but the source gives "
                                         f"them different values; {key!r}'s value is kept"), stacklevel=3)
    copied[where] = (key, value)


def _load_warning(report: Report, alignment_warning: str | None) -> str | None:
    """Why this load deserves a warning: nothing fed, or the alignment's few-keys warning."""
    fed = len(report.pretrained)
    if fed == 0:
        return f"NOTHING was loaded: 0 of {len(report.rows)} keys fed" + (
            f" ({alignment_warning})" if alignment_warning else "")
    return alignment_warning
