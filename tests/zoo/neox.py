"""GPT-NeoX (Pythia) with split ``q_proj``/``k_proj``/``v_proj``: the network of transformers'
``GPTNeoXForCausalLM`` (parallel residual, LayerNorm with bias, exact GELU, rotary on the first
``partial_rotary_factor`` of each head, half-split), with the fused ``query_key_value`` of
GPT-NeoX/Pythia/BLOOM-style checkpoints split into three.

GPT-NeoX's fused rows are interleaved *per head*: (heads, [q, k, v], head_dim) — not
[all q, all k, all v] — so a plain 3-way chunk gives wrong weights with the right shapes.
Every other key is named as transformers names it (``gpt_neox.``, ``lm_head``).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class NeoXConfig:
    vocab_size: int = 64
    hidden_size: int = 32
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    intermediate_size: int = 64
    partial_rotary_factor: float = 0.25
    rope_theta: float = 10000.0
    layer_norm_eps: float = 1e-5
    use_parallel_residual: bool = True


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    a, b = x.chunk(2, dim=-1)
    return torch.cat((-b, a), dim=-1)


class Attention(nn.Module):
    def __init__(self, cfg: NeoXConfig):
        super().__init__()
        self.heads = cfg.num_attention_heads
        self.head_dim = cfg.hidden_size // cfg.num_attention_heads
        self.rotary = int(self.head_dim * cfg.partial_rotary_factor)
        self.theta = cfg.rope_theta
        self.q_proj = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.k_proj = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.v_proj = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.dense = nn.Linear(cfg.hidden_size, cfg.hidden_size)

    def rope(self, x: torch.Tensor) -> torch.Tensor:
        T = x.shape[2]
        inv = 1.0 / (self.theta ** (torch.arange(0, self.rotary, 2).float() / self.rotary))
        freqs = torch.outer(torch.arange(T).float(), inv)
        emb = torch.cat((freqs, freqs), dim=-1)
        rot, rest = x[..., :self.rotary], x[..., self.rotary:]
        return torch.cat((rot * emb.cos() + rotate_half(rot) * emb.sin(), rest), dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = (p(x).view(B, T, self.heads, self.head_dim).transpose(1, 2)
                   for p in (self.q_proj, self.k_proj, self.v_proj))
        y = F.scaled_dot_product_attention(self.rope(q), self.rope(k), v, is_causal=True)
        return self.dense(y.transpose(1, 2).reshape(B, T, C))


class MLP(nn.Module):
    def __init__(self, cfg: NeoXConfig):
        super().__init__()
        self.dense_h_to_4h = nn.Linear(cfg.hidden_size, cfg.intermediate_size)
        self.dense_4h_to_h = nn.Linear(cfg.intermediate_size, cfg.hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dense_4h_to_h(F.gelu(self.dense_h_to_4h(x)))


class Layer(nn.Module):
    def __init__(self, cfg: NeoXConfig):
        super().__init__()
        self.parallel = cfg.use_parallel_residual
        self.input_layernorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.post_attention_layernorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.attention = Attention(cfg)
        self.mlp = MLP(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.attention(self.input_layernorm(x))
        if self.parallel:
            return x + a + self.mlp(self.post_attention_layernorm(x))
        x = x + a
        return x + self.mlp(self.post_attention_layernorm(x))


class GPTNeoX(nn.Module):
    def __init__(self, cfg: NeoXConfig | None = None, **kwargs):
        super().__init__()
        cfg = cfg or NeoXConfig(**kwargs)
        self.config = cfg
        self.gpt_neox = nn.Module()
        self.gpt_neox.embed_in = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.gpt_neox.layers = nn.ModuleList([Layer(cfg) for _ in range(cfg.num_hidden_layers)])
        self.gpt_neox.final_layer_norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.lm_head = nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.gpt_neox.embed_in(ids)
        for layer in self.gpt_neox.layers:
            x = layer(x)
        return self.lm_head(self.gpt_neox.final_layer_norm(x))


def neox(**kwargs) -> GPTNeoX:
    """Model-definition entry point (``tests.zoo.neox:neox``)."""
    return GPTNeoX(NeoXConfig(**kwargs))
