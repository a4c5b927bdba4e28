"""open_clip's vision tower (``open_clip.transformer.VisionTransformer``, the ``visual.`` half of
an open_clip / OpenAI CLIP checkpoint): ``conv1`` patch embedding, ``class_embedding``,
``positional_embedding``, ``ln_pre``, ``transformer.resblocks.{i}`` with torch's own
``nn.MultiheadAttention`` (fused ``in_proj_weight`` in q, k, v order), ``ln_post`` and a
``proj`` matrix stored (width, embed_dim).

Computes what transformers' ``CLIPVisionModelWithProjection`` computes as ``image_embeds``
(QuickGELU, as OpenAI's weights use and HF's config defaults to). HF keeps q/k/v apart and
declares them k_proj, v_proj, q_proj: an order guessed from module order would be wrong.
"""
from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn


class QuickGELU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class ResidualAttentionBlock(nn.Module):
    def __init__(self, width: int, heads: int, mlp_ratio: float, eps: float):
        super().__init__()
        self.ln_1 = nn.LayerNorm(width, eps=eps)
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.ln_2 = nn.LayerNorm(width, eps=eps)
        hidden = int(width * mlp_ratio)
        self.mlp = nn.Sequential(OrderedDict([("c_fc", nn.Linear(width, hidden)), ("gelu", QuickGELU()),
                                              ("c_proj", nn.Linear(hidden, width))]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.ln_1(x)
        x = x + self.attn(y, y, y, need_weights=False)[0]
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    def __init__(self, width: int, layers: int, heads: int, mlp_ratio: float, eps: float):
        super().__init__()
        self.resblocks = nn.ModuleList([ResidualAttentionBlock(width, heads, mlp_ratio, eps) for _ in range(layers)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.resblocks:
            x = block(x)
        return x


class VisionTransformer(nn.Module):
    def __init__(self, image_size: int = 8, patch_size: int = 4, width: int = 16, layers: int = 2, heads: int = 2,
                 mlp_ratio: float = 2.0, output_dim: int = 12, eps: float = 1e-5):
        super().__init__()
        scale = width ** -0.5
        self.conv1 = nn.Conv2d(3, width, kernel_size=patch_size, stride=patch_size, bias=False)
        self.class_embedding = nn.Parameter(scale * torch.randn(width))
        self.positional_embedding = nn.Parameter(scale * torch.randn((image_size // patch_size) ** 2 + 1, width))
        self.ln_pre = nn.LayerNorm(width, eps=eps)
        self.transformer = Transformer(width, layers, heads, mlp_ratio, eps)
        self.ln_post = nn.LayerNorm(width, eps=eps)
        self.proj = nn.Parameter(scale * torch.randn(width, output_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x).flatten(2).transpose(1, 2)
        cls = self.class_embedding.expand(x.shape[0], 1, -1)
        x = self.ln_pre(torch.cat([cls, x], dim=1) + self.positional_embedding)
        x = self.ln_post(self.transformer(x))
        return x[:, 0] @ self.proj


class CLIPVision(nn.Module):
    """The vision half of open_clip's ``CLIP`` (its keys start ``visual.``)."""

    def __init__(self, **kwargs):
        super().__init__()
        self.visual = VisionTransformer(**kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.visual(x)


def clip_vision(**kwargs) -> CLIPVision:
    """Model-definition entry point (``tests.zoo.openclip:clip_vision``)."""
    return CLIPVision(**kwargs)
