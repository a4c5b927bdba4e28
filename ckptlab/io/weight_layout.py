"""Which way a model stores each 2-D weight: ``(out, in)`` as ``nn.Linear`` does, or ``(in, out)`` as
transformers' ``Conv1D`` (GPT-2 and its kin) does.

A square weight looks the same either way, so shapes cannot tell whether it must be transposed;
the model classes can. Read only from a model at hand (a module given, or a model definition
built on the meta device): a file alone says nothing, and then nothing is claimed.
"""
from __future__ import annotations

from typing import Any

__all__ = ["OUT_IN", "IN_OUT", "weight_layouts"]

OUT_IN, IN_OUT = "(out, in)", "(in, out)"
STORES_IN_OUT = ("Conv1D",)  # transformers.pytorch_utils.Conv1D: y = x @ W + b, W of (in, out)


def weight_layouts(obj: Any) -> dict[str, str]:
    """``{weight key: OUT_IN | IN_OUT}`` for the linear layers of ``obj`` (an nn.Module or a
    model definition's Checkpoint); empty when ``obj`` is no model."""
    from torch import nn

    model = getattr(obj, "meta_model", None) or obj
    if not isinstance(model, nn.Module):
        return {}
    out = {}
    for name, module in model.named_modules():
        key = f"{name}.weight" if name else "weight"
        if type(module).__name__ in STORES_IN_OUT:
            out[key] = IN_OUT
        elif isinstance(module, nn.Linear):
            out[key] = OUT_IN
    return out
