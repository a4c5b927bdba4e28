"""A Meta-style LLaMA with q/k/v biases (Qwen2's attention in Meta's layout: ``wq``/``wk``/``wv``
with ``bias``, interleaved rotary pairs as Meta's ``llama/model.py`` rotates them).

Everything but the three biased projections is ``tests.zoo.llama``. The bias is added
before the rotary embedding, so converting from transformers' half-split ``Qwen2ForCausalLM``
permutes the q/k biases per head exactly as it permutes the q/k weight rows.
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from tests.zoo import llama as meta


@dataclass
class ModelArgs(meta.ModelArgs):
    qkv_bias: bool = True


class Transformer(meta.Transformer):
    def __init__(self, params: ModelArgs | None = None, **kwargs):
        params = params or ModelArgs(**kwargs)
        super().__init__(params)
        for layer in self.layers:
            attn = layer.attention
            for name in ("wq", "wk", "wv"):
                old = getattr(attn, name)
                setattr(attn, name, nn.Linear(old.in_features, old.out_features, bias=params.qkv_bias))


def qwen2(**kwargs) -> Transformer:
    """Model-definition entry point (``tests.zoo.meta_bias:qwen2``)."""
    return Transformer(ModelArgs(**kwargs))
