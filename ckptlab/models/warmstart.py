"""``load_into``: warm-start a model in place with a recipe designed in the app.

The one call a training script makes. It follows exactly the rules of ``remap`` (the same
alignment and merge plan), but instead of writing a file it copies each planned tensor
into the model's own parameter or buffer, one at a time, so the model keeps its device,
dtype, identity (optimizers built earlier still hold the same tensors) and tied weights.

An empty or near-empty load is the failure that cost the story-5 user a week (every key
gained ``attention_map.``; ``strict=False`` said nothing): it always raises a
``CkptlabWarning``, however the caller configured logging.

``incompatible_keys`` says what plain ``load_state_dict(strict=False)`` would report for the
same recipe, in torch's own categories (missing, unexpected, and the size mismatches it
raises on), so the app never calls a shape mismatch "missing".
"""
from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from ckptlab.vocab import Status
from ckptlab.errors import CheckpointError
from ckptlab.merge.report import Report

__all__ = ["CkptlabWarning", "IncompatibleKeys", "incompatible_keys", "load_into"]


class CkptlabWarning(UserWarning):
    """A load that fed few or no keys of the model (never silent)."""


def load_into(
    model: nn.Module,
    source: Any,
    recipe: Any = None,
    auto: str = "high",
    *,
    on_mismatch: str = "error",
    params: Mapping[str, Any] | None = None,
) -> Report:
    """Load ``source`` into ``model`` in place and return the ``Report``.

    ``source``: a path, Checkpoint, mapping of tensors, nn.Module or model spec.
    ``recipe``/``auto`` as for ``align``. Rows that stay ``missing`` (and mismatches kept
    under ``on_mismatch="keep-target"``) keep the model's current values. Raises
    ``MergeError`` (nothing copied) on a conflict or an unresolved shape mismatch.
    """
    from ckptlab.align.matcher import align
    from ckptlab.merge.planning import plan

    state = model.state_dict(keep_vars=True)
    on_meta = [key for key, value in state.items() if value.is_meta]
    if on_meta:
        raise CheckpointError(f"{type(model).__name__} holds {len(on_meta)} tensors on the meta device "
                              f"(first: {on_meta[0]!r}); call model.to_empty(device=...) before load_into")
    alignment = align(source, model, recipe=recipe, auto=auto, params=params)  # the model itself: its config names head counts
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
    message = _load_warning(report, alignment.fed_warning)  # an alarm for an empty load; the rest in report.warnings
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
    """Why this load deserves a Python warning: nothing fed, or few keys fed (the alignment's alarm);
    the quieter warnings (a module left at init on purpose, say) are in ``report.warnings``."""
    fed = len(report.pretrained)
    if fed == 0:
        return f"NOTHING was loaded: 0 of {len(report.rows)} keys fed" + (
            f" ({alignment_warning})" if alignment_warning else "")
    return alignment_warning


# -- what load_state_dict would say ---------------------------------------------------
@dataclass
class IncompatibleKeys:
    """``model.load_state_dict(renamed_source, strict=False)`` in torch's own categories.

    ``missing_keys`` and ``unexpected_keys`` are what torch returns; ``size_mismatch`` is
    what makes torch RAISE (``RuntimeError: size mismatch for ...``), even with
    strict=False, so those keys are neither missing nor unexpected. ``adapted`` keys load
    only because the recipe's adapters fit them (``load_into`` and the merged file do; a
    plain load of the renamed source would raise on them too). ``conflicts``: several source
    keys renamed onto one key, where a renamed dict would silently keep one. ``dropped``:
    source keys a rule removed, so torch never sees them.
    """

    loaded: list[str] = field(default_factory=list)
    adapted: list[str] = field(default_factory=list)
    missing_keys: list[str] = field(default_factory=list)
    unexpected_keys: list[str] = field(default_factory=list)
    size_mismatch: list[dict[str, Any]] = field(default_factory=list)   # {"key", "checkpoint_shape", "model_shape"}
    conflicts: list[dict[str, Any]] = field(default_factory=list)       # {"key", "sources"}
    dropped: list[str] = field(default_factory=list)

    @property
    def raises(self) -> bool:
        """Would ``load_state_dict`` raise (strict or not)?"""
        return bool(self.size_mismatch)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "raises": self.raises}


def incompatible_keys(alignment: Any) -> IncompatibleKeys:
    """The alignment's rows sorted into ``load_state_dict``'s categories (see the class)."""
    out = IncompatibleKeys()
    target_keys = set(alignment.target.keys())
    renamed = alignment.effective_recipe.rename([r.source for r in alignment.rows if r.status == Status.UNUSED])
    for row in alignment.rows:
        if row.status == Status.ADAPTED:
            out.adapted.append(row.target)
        elif row.fed:
            out.loaded.append(row.target)
        elif row.status == Status.MISSING:
            out.missing_keys.append(row.target)
        elif row.status == Status.MISMATCH:
            out.size_mismatch.append({"key": row.target, "checkpoint_shape": list(row.source_shape or ()),
                                      "model_shape": list(row.target_shape or ())})
        elif row.status == Status.CONFLICT:
            out.conflicts.append({"key": row.target, "sources": list(row.sources)})
        elif row.status == Status.UNUSED:
            new = renamed.get(row.source, (row.source, ""))[0]
            if new is None:
                out.dropped.append(row.source)
            else:
                out.unexpected_keys.append(new if new not in target_keys else row.source)
    return out
