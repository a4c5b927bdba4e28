"""TorchScript archives (``torch.jit.save``): their parameters and buffers, no code run.

A TorchScript archive is a torch zip whose ``data.pkl`` pickles the module tree as objects
of compiled classes (``__torch__.MyNet``) whose state is their attribute dict. We stand
placeholders in for those classes, never look at ``code/``, and flatten every tensor
attribute to the dotted name ``torch.jit.load(...).state_dict()`` would give it. Which
attributes are parameters or buffers (rather than plain tensor attributes, which a
state_dict leaves out) we learn by *reading* the ``__parameters__``/``__buffers__`` lines of
the class declarations in ``code/``, as text; that code is never compiled or run.
"""
from __future__ import annotations

import re
from typing import Any

from ckptlab.errors import UnsupportedFormatError
from ckptlab.io.formats.base import LazyTensor, Loaded
from ckptlab.io.formats.placeholder import MAX_MODULE_DEPTH, Placeholder

__all__ = ["SCRIPT_NAMESPACE", "declared_state", "script_tensors", "read_torchscript"]

SCRIPT_NAMESPACE = "__torch__"
_CLASS = re.compile(r"^class (\w+)\(")
_DECLARED = re.compile(r"^\s+__(parameters|buffers)__ = \[(.*)\]")
_NAME = re.compile(r'"([^"]+)"')


def declared_state(archive) -> dict[str, set[str]]:
    """qualified class name -> its parameter and buffer names, from the code's declarations."""
    out: dict[str, set[str]] = {}
    for name in archive.infos:
        if not (name.startswith("code/") and name.endswith(".py")):
            continue
        module = name[len("code/"):-len(".py")].replace("/", ".")
        current = None
        for line in archive.read_small(name).decode("utf-8", "replace").splitlines():
            if m := _CLASS.match(line):
                current = out.setdefault(f"{module}.{m.group(1)}", set())
            elif current is not None and (m := _DECLARED.match(line)):
                current.update(_NAME.findall(m.group(2)))
    return out


def script_tensors(obj: Any, declared: dict[str, set[str]], prefix: str = "",
                   _seen: set[int] | None = None, _depth: int = 0) -> dict[str, LazyTensor]:
    """Parameters and buffers of a scripted module tree, by dotted attribute path.

    A class without a declaration we could read keeps all its tensor attributes. Each
    object is visited once, so shared submodules cost their size, not their paths.
    """
    out: dict[str, LazyTensor] = {}
    seen = set() if _seen is None else _seen
    if not isinstance(obj, Placeholder) or id(obj) in seen or _depth > MAX_MODULE_DEPTH:
        return out
    seen.add(id(obj))
    keep = declared.get(obj.qualname)
    for name, value in obj.attributes().items():
        if isinstance(value, LazyTensor):
            if keep is None or name in keep:
                out[f"{prefix}{name}"] = value
        elif isinstance(value, Placeholder) and value.qualname.startswith(SCRIPT_NAMESPACE):
            out.update(script_tensors(value, declared, f"{prefix}{name}.", seen, _depth + 1))
    return out


def read_torchscript(archive) -> Loaded:
    root, placeholders = archive.load_pickle()
    if not isinstance(root, Placeholder):
        raise UnsupportedFormatError("TorchScript archive whose data.pkl is not a scripted module", archive.path)
    tensors = script_tensors(root, declared_state(archive))
    foreign = sorted(p for p in placeholders if not p.startswith(SCRIPT_NAMESPACE))
    return Loaded("torchscript", tensors, tuple(foreign), {"torchscript.class": root.qualname})
