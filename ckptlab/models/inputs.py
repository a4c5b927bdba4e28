"""What a model takes and gives: its input shape, its example inputs, its output tensors.

Shared by the function and speed comparisons, which feed both models seeded inputs they
accept: images for a conv model, token ids for a GPT-like one, rows for a linear one.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils._pytree import tree_flatten

from ckptlab.errors import CheckpointError

__all__ = ["default_sizes", "example_input", "flat_tensors", "infer_input_shape", "input_shape_for",
           "token_vocab"]


def infer_input_shape(model: nn.Module, n: int = 4) -> tuple[int, ...]:
    """An input shape from the model's first conv (else its first linear layer).

    Convolutions are preferred because image models often hold small linear layers
    (embeddings, style projections) before their stem in module order.
    """
    modules = list(model.modules())
    for module in modules:
        if isinstance(module, nn.modules.conv._ConvNd):
            spatial = {1: (32,), 2: (32, 32), 3: (16, 16, 16)}[len(module.kernel_size)]
            return (n, module.in_channels, *spatial)
    for module in modules:
        if isinstance(module, nn.Linear):
            return (n, module.in_features)
    raise CheckpointError(f"cannot infer an input shape for {type(model).__name__} "
                          "(no conv or linear layer): pass input_shape or inputs")


def flat_tensors(value: Any) -> list[torch.Tensor]:
    """Every tensor in a nested value (a model's outputs, an op's arguments)."""
    return [t for t in tree_flatten(value)[0] if isinstance(t, torch.Tensor)]


def token_vocab(model: nn.Module) -> int | None:
    """The vocabulary of a model that takes token ids (no conv, and an Embedding before any
    linear layer: GPT, BERT), else None. An image model's embeddings (a style table) do
    not count: its convs come first."""
    modules = list(model.modules())
    if any(isinstance(m, nn.modules.conv._ConvNd) for m in modules):
        return None
    for module in modules:
        if isinstance(module, nn.Embedding):
            return module.num_embeddings
        if isinstance(module, nn.Linear):
            return None
    return None


def input_shape_for(model: nn.Module, size: int, batch: int = 2) -> tuple[int, ...]:
    """The input of ``model`` at ``size``: ``(batch, C, size, size)`` for a 2-D conv model
    (every spatial dim = size), ``(batch, size)`` token ids for a token model (size =
    sequence length), ``(size, in_features)`` for a linear one (size = batch)."""
    if token_vocab(model) is not None:
        return (batch, size)
    base = infer_input_shape(model, batch)
    if len(base) == 2:
        return (size, base[1])
    return (base[0], base[1], *([size] * (len(base) - 2)))


def default_sizes(model: nn.Module) -> list[int]:
    """Three input sizes around the inferred one: spatial sides for a conv model, sequence
    lengths for a token model, batch sizes for a model that starts with a linear layer."""
    if token_vocab(model) is not None:
        return [16, 64, 256]
    shape = infer_input_shape(model)
    if len(shape) == 2:
        return [1, 16, 64]
    side = shape[2]
    return [side // 2, side, side * 2]


def example_input(model: nn.Module, size: int, batch: int, seed: int) -> torch.Tensor:
    """Seeded random input at ``size``: floats, or token ids below the model's vocabulary."""
    gen = torch.Generator().manual_seed(seed)
    shape = input_shape_for(model, size, batch)
    vocab = token_vocab(model)
    if vocab is not None:
        return torch.randint(0, vocab, shape, generator=gen)
    return torch.randn(shape, generator=gen)
