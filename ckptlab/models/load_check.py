"""Would a checkpoint load into a model? Answered without trusting the merge that wrote it.

``load_report`` says which keys ``load_state_dict(strict=True)`` would call missing,
unexpected or mismatched, from keys and shapes only (no tensor bytes; a model spec is built
on the meta device). ``loaded_model`` builds the real model holding a checkpoint (strictly),
the start of every function and speed comparison.
"""
from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from ckptlab.errors import CheckpointError
from ckptlab.io.model_target import ModelCheckpoint, build_model
from ckptlab.io.sources import as_checkpoint

__all__ = ["ModelLike", "describe_misfit", "load_report", "loaded_model"]

ModelLike = nn.Module | str | ModelCheckpoint


def load_report(ckpt: Any, model: ModelLike, allow_code: bool | None = None) -> dict[str, list]:
    """What ``model.load_state_dict(ckpt, strict=True)`` would complain about.

    ``{"missing": [model keys], "unexpected": [checkpoint keys], "mismatched":
    [{"key", "checkpoint_shape", "model_shape"}]}``; all empty means a strict load works.
    """
    source = as_checkpoint(ckpt, allow_code=allow_code)
    expected = _meta_state(model, allow_code)
    missing = [key for key in expected if key not in source]
    unexpected = [key for key in source.keys() if key not in expected]
    mismatched = []
    for key, shape in expected.items():
        if key in source and tuple(source.info(key).shape) != shape:
            mismatched.append({"key": key, "checkpoint_shape": list(source.info(key).shape),
                               "model_shape": list(shape)})
    return {"missing": missing, "unexpected": unexpected, "mismatched": mismatched}


def _meta_state(model: ModelLike, allow_code: bool | None) -> dict[str, tuple[int, ...]]:
    """Key -> shape of a model's state_dict, without building it for real."""
    if isinstance(model, ModelCheckpoint):
        return {k: tuple(model.info(k).shape) for k in model.keys()}
    if isinstance(model, str):
        model = build_model(model, allow_code=allow_code, device="meta")
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def describe_misfit(report: Mapping[str, list]) -> str:
    """One line summing up a load report (for errors and the CLI's text output)."""
    parts = [f"{len(report[k])} {k}" for k in ("missing", "unexpected", "mismatched") if report[k]]
    if not parts:
        return "loads strictly: no missing, unexpected or mismatched keys"
    m = report["mismatched"][0] if report["mismatched"] else None  # shapes as tuples, as everywhere else
    first = (m and f"first mismatched: {m['key']} checkpoint {tuple(m['checkpoint_shape'])} vs model "
             f"{tuple(m['model_shape'])}") or (
        report["missing"][:1] and f"first missing: {report['missing'][0]}") or (
        f"first unexpected: {report['unexpected'][0]}")
    return ", ".join(parts) + f" ({first})"


def loaded_model(model: ModelLike, ckpt: Any = None, allow_code: bool | None = None,
                 device: str | torch.device | None = None) -> nn.Module:
    """A real model in eval mode holding ``ckpt``'s tensors (strictly), never the caller's
    own module: a given module is copied first, so verification changes nothing."""
    if isinstance(model, ModelCheckpoint):
        module = model.build("cpu")
    elif isinstance(model, str):
        module = build_model(model, allow_code=allow_code, device="cpu")
    else:
        module = copy.deepcopy(model)
    if ckpt is not None:
        source = as_checkpoint(ckpt, allow_code=allow_code)
        report = load_report(source, module)
        if any(report.values()):
            raise CheckpointError(f"checkpoint does not fit {type(module).__name__}: {describe_misfit(report)}",
                                  source.path)
        module.load_state_dict({key: source.tensor(key) for key in source.keys()}, strict=True)
    if device is not None:
        module = module.to(device)
    return module.eval()
