"""Fine-tune plans from a load report: which parameters are pretrained, which are new.

Pretrained parameters (loaded or adapted) train at ``lr``; new ones (missing from the
source, e.g. a fresh head) at ``lr * new_lr_mult``. A tensor an adapter grew (a head padded
from 10 to 100 classes: rows 10..99 from the target's init or zeros) or re-initialised holds
new rows: by default it trains whole at the new rate too, since a base rate would leave the
new classes barely trained (``ckptlab.align.new_rows`` says which rows are new).

Freezing sets ``requires_grad=False`` AND leaves the parameter out of every group (the
story's "freeze, then filter the optimizer"): no optimizer state is kept for it, and a
gradient that still reaches it (a later unfreeze, a shared tensor) can never move it. Each
group carries a ``"name"``; torch optimizers keep extra keys, and LR schedulers scale every
group's ``lr`` by the same factor, so the pretrained/new ratio survives a schedule.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from torch import nn

from ckptlab.align.new_rows import new_rows
from ckptlab.recipe.patterns import BoundedRegex
from ckptlab.errors import CheckpointError, RecipeError

__all__ = ["FinetunePlan", "frozen_modules", "param_groups", "plan", "pretrained_keys"]


@dataclass(frozen=True, eq=False)
class _Param:
    """One parameter (a tied parameter appears once, with all its names)."""

    names: tuple[str, ...]
    param: nn.Parameter
    pretrained: bool
    frozen: bool

    @property
    def trains(self) -> bool:
        return not self.frozen and self.param.requires_grad


def pretrained_keys(alignment: Any, train_as_new: str | None = None, grown_as_new: bool = True) -> list[str]:
    """The fed target keys the param groups treat as pretrained: all but the tensors with
    new rows (unless ``grown_as_new`` is off) and those matching ``train_as_new`` (a regex,
    searched), which train at lr x mult like missing ones."""
    grown = {n.key for n in new_rows(alignment)} if grown_as_new else set()
    pattern = _compile(train_as_new, "train-as-new")
    return [key for key in alignment.fed if key not in grown and not (pattern and pattern.search(key))]


def _pretrained_keys(report: Any) -> set[str]:
    """``report.pretrained`` less ``report.new_rows`` (a Report or an Alignment), or an
    iterable of key names."""
    if hasattr(report, "fed") and hasattr(report, "by_status"):          # an Alignment
        return set(pretrained_keys(report))
    keys = getattr(report, "pretrained", report)
    if keys is None:
        return set()
    grown = set(getattr(report, "new_rows", ()) or ())
    return set(keys if isinstance(keys, Iterable) and not isinstance(keys, str) else [keys]) - grown


def _compile(pattern: str | None, what: str = "freeze") -> BoundedRegex | None:
    """A visitor may type it: matched under a time bound (``convert.BoundedRegex``)."""
    if pattern is None or not str(pattern).strip():
        return None
    try:
        checked = re.compile(str(pattern))
    except re.error as exc:
        raise RecipeError(f"{what} pattern {pattern!r} is not a valid regex: {exc}") from None
    return BoundedRegex(str(pattern), f"{what} pattern", checked)


def _classify(model: nn.Module, report: Any, freeze_loaded: bool, freeze: str | None) -> list[_Param]:
    pretrained = _pretrained_keys(report)
    pattern = _compile(freeze)
    by_id: dict[int, list[str]] = {}
    params: dict[int, nn.Parameter] = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        by_id.setdefault(id(param), []).append(name)
        params[id(param)] = param
    out = []
    for pid, names in by_id.items():
        is_pretrained = any(n in pretrained for n in names)
        frozen = (freeze_loaded and is_pretrained) or bool(pattern and any(pattern.search(n) for n in names))
        out.append(_Param(tuple(names), params[pid], is_pretrained, frozen))
    return out


def param_groups(
    model: nn.Module,
    report: Any,
    lr: float = 1e-3,
    new_lr_mult: float = 10.0,
    freeze_loaded: bool = False,
    freeze: str | None = None,
) -> list[dict[str, Any]]:
    """Optimizer param groups: ``{"name": "pretrained", "params", "lr": lr}`` and
    ``{"name": "new", "params", "lr": lr * new_lr_mult}`` (an empty group is left out).

    Frozen parameters (``freeze_loaded`` freezes the pretrained ones, ``freeze`` any whose
    name matches the regex, searched) get ``requires_grad=False`` and are in no group.
    Parameters the caller already froze stay frozen and out of the groups.
    """
    pretrained = _pretrained_keys(report)
    if pretrained and pretrained.isdisjoint(model.state_dict(keep_vars=True)):
        # a report made for another model (or a prefix apart) would train everything as new
        raise CheckpointError(f"param_groups: none of the {len(pretrained)} pretrained keys of the report "
                              f"(first: {min(pretrained)!r}) is a parameter or buffer of {type(model).__name__}; "
                              "was the report made for another model?")
    groups: dict[str, list[nn.Parameter]] = {"pretrained": [], "new": []}
    for p in _classify(model, report, freeze_loaded, freeze):
        if p.frozen:
            p.param.requires_grad_(False)
        if p.param.requires_grad:
            groups["pretrained" if p.pretrained else "new"].append(p.param)
    rates = {"pretrained": lr, "new": lr * new_lr_mult}
    return [{"name": name, "params": params, "lr": rates[name]} for name, params in groups.items() if params]


@dataclass
class FinetunePlan:
    """What ``param_groups`` would do, for display (nothing is changed by ``plan``)."""

    groups: list[dict[str, Any]]            # {"name", "lr", "tensors", "params"} (params = numel)
    frozen_tensors: int
    frozen_params: int
    frozen_modules: list[str]               # the largest modules whose parameters are all frozen
    new_names: list[str]
    tied: list[tuple[str, ...]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def plan(
    model: nn.Module,
    report: Any,
    lr: float = 1e-3,
    new_lr_mult: float = 10.0,
    freeze_loaded: bool = False,
    freeze: str | None = None,
) -> FinetunePlan:
    """A summary of the plan for the UI: counts per group, frozen modules, new params."""
    classified = _classify(model, report, freeze_loaded, freeze)
    frozen = [p for p in classified if not p.trains]
    groups = []
    for name, rate, pretrained in (("pretrained", lr, True), ("new", lr * new_lr_mult, False)):
        members = [p for p in classified if p.pretrained == pretrained and p.trains]
        if members:
            groups.append({"name": name, "lr": rate, "tensors": len(members),
                           "params": sum(p.param.numel() for p in members)})
    frozen_names = {n for p in frozen for n in p.names}
    return FinetunePlan(
        groups=groups,
        frozen_tensors=len(frozen),
        frozen_params=sum(p.param.numel() for p in frozen),
        frozen_modules=frozen_modules(model, frozen_names),
        new_names=[p.names[0] for p in classified if not p.pretrained],
        tied=[p.names for p in classified if len(p.names) > 1],
    )


def frozen_modules(model: nn.Module, frozen_names: set[str]) -> list[str]:
    """The outermost modules all of whose (directly or deeply held) parameters are frozen."""
    result: list[str] = []
    for name, module in model.named_modules():
        own = [f"{name}.{n}" if name else n for n, _ in module.named_parameters(remove_duplicate=False)]
        if not own or not all(n in frozen_names for n in own):
            continue
        if any(name == r or name.startswith(r + ".") for r in result if r) or "" in result:
            continue
        result.append(name)
    return result
