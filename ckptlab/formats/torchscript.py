"""TorchScript archives (``torch.jit.save``): their parameters and buffers, no code run.

A TorchScript archive is a torch zip whose ``data.pkl`` pickles the module tree as objects
of compiled classes (``__torch__.MyNet``) whose state is their attribute dict. We stand
placeholders in for those classes, never look at ``code/``, and flatten every tensor
attribute to the dotted name ``torch.jit.load(...).state_dict()`` would give it.
"""
from __future__ import annotations

from typing import Any

from ckptlab.errors import UnsupportedFormatError
from ckptlab.formats.base import LazyTensor, Loaded
from ckptlab.formats.placeholder import Placeholder

SCRIPT_NAMESPACE = "__torch__"


def script_tensors(obj: Any, prefix: str = "", _seen: frozenset[int] = frozenset()) -> dict[str, LazyTensor]:
    """Tensor attributes of a scripted module tree, by dotted attribute path."""
    out: dict[str, LazyTensor] = {}
    if not isinstance(obj, Placeholder) or id(obj) in _seen:
        return out
    for name, value in obj.attributes().items():
        if isinstance(value, LazyTensor):
            out[f"{prefix}{name}"] = value
        elif isinstance(value, Placeholder) and value.qualname.startswith(SCRIPT_NAMESPACE):
            out.update(script_tensors(value, f"{prefix}{name}.", _seen | {id(obj)}))
    return out


def read_torchscript(archive) -> Loaded:
    root, placeholders = archive.load_pickle()
    if not isinstance(root, Placeholder):
        raise UnsupportedFormatError("TorchScript archive whose data.pkl is not a scripted module", archive.path)
    tensors = script_tensors(root)
    foreign = sorted(p for p in placeholders if not p.startswith(SCRIPT_NAMESPACE))
    return Loaded("torchscript", tensors, tuple(foreign), {"torchscript.class": root.qualname})
