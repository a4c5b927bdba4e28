"""A tiny GPT two ways, in pure torch: GPT-2's layout (Conv1D: weight stored (in, out),
``y = x @ W + b``) and nanoGPT's (``nn.Linear``: weight (out, in)). Same key names, same
maths: only the four projection weights per block are stored transposed."""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


class Conv1D(nn.Module):
    """GPT-2's projection: a linear layer whose weight is stored transposed."""

    def __init__(self, n_out: int, n_in: int):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_in, n_out) * 0.2)
        self.bias = nn.Parameter(torch.randn(n_out) * 0.1)

    def forward(self, x):
        return x @ self.weight + self.bias


def _linear(n_in: int, n_out: int) -> nn.Linear:
    layer = nn.Linear(n_in, n_out)
    nn.init.normal_(layer.weight, std=0.2)
    nn.init.normal_(layer.bias, std=0.1)
    return layer


class Attention(nn.Module):
    def __init__(self, d: int, heads: int, proj):
        super().__init__()
        self.heads = heads
        self.c_attn = proj(d, 3 * d)
        self.c_proj = proj(d, d)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.c_attn(x).split(d, dim=2)
        q, k, v = (z.view(b, t, self.heads, d // self.heads).transpose(1, 2) for z in (q, k, v))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(d // self.heads)
        att = att.masked_fill(torch.ones(t, t, dtype=torch.bool).triu(1), float("-inf")).softmax(-1)
        return self.c_proj((att @ v).transpose(1, 2).reshape(b, t, d))


class MLP(nn.Module):
    def __init__(self, d: int, proj):
        super().__init__()
        self.c_fc = proj(d, 4 * d)
        self.c_proj = proj(4 * d, d)

    def forward(self, x):
        return self.c_proj(F.gelu(self.c_fc(x)))


class Block(nn.Module):
    def __init__(self, d: int, heads: int, proj):
        super().__init__()
        self.ln_1 = nn.LayerNorm(d)
        self.attn = Attention(d, heads, proj)
        self.ln_2 = nn.LayerNorm(d)
        self.mlp = MLP(d, proj)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    """``conv1d=True``: GPT-2's layout; ``False``: nanoGPT's."""

    def __init__(self, conv1d: bool, vocab: int = 32, d: int = 16, heads: int = 2, layers: int = 2, ctx: int = 8):
        super().__init__()
        proj = (lambda n_in, n_out: Conv1D(n_out, n_in)) if conv1d else _linear
        self.wte = nn.Embedding(vocab, d)
        self.wpe = nn.Embedding(ctx, d)
        self.h = nn.ModuleList(Block(d, heads, proj) for _ in range(layers))
        self.ln_f = nn.LayerNorm(d)

    def forward(self, idx):
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1]))
        for block in self.h:
            x = block(x)
        return self.ln_f(x) @ self.wte.weight.t()


def gpt2(**kwargs) -> GPT:
    return GPT(True, **kwargs)


def nanogpt(**kwargs) -> GPT:
    return GPT(False, **kwargs)


TRANSPOSE_RECIPE = {"convert": [{"from": "h.{i}.{m}.{p}.weight", "to": "h.{i}.{m}.{p}.weight", "ops": ["transpose"]}]}
