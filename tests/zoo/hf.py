"""Tiny real ``transformers`` models (random init from a config, never the hub), sized to
match the pure-torch models' defaults in this package."""
from __future__ import annotations

import torch

GPT2 = dict(n_layer=2, n_head=2, n_embd=16, vocab_size=64, n_positions=32)
VIT = dict(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
           image_size=8, patch_size=4, num_labels=5)
LLAMA = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
             intermediate_size=64, vocab_size=64, rms_norm_eps=1e-5, max_position_embeddings=32)
BERT = dict(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32, vocab_size=64,
            max_position_embeddings=32)


def _seeded(build, seed: int):
    torch.manual_seed(seed)
    return build().eval()


def gpt2(seed: int = 0, **overrides):
    from transformers import GPT2Config, GPT2LMHeadModel

    cfg = GPT2Config(**{**GPT2, "bos_token_id": 0, "eos_token_id": 0, **overrides})
    return _seeded(lambda: GPT2LMHeadModel(cfg), seed)


def vit_classifier(seed: int = 0, **overrides):
    from transformers import ViTConfig, ViTForImageClassification

    return _seeded(lambda: ViTForImageClassification(ViTConfig(**{**VIT, **overrides})), seed)


def vit_model(seed: int = 0, **overrides):
    from transformers import ViTConfig, ViTModel

    return _seeded(lambda: ViTModel(ViTConfig(**{**VIT, **overrides}), add_pooling_layer=False), seed)


def llama(seed: int = 0, **overrides):
    from transformers import LlamaConfig, LlamaForCausalLM

    return _seeded(lambda: LlamaForCausalLM(LlamaConfig(**{**LLAMA, "bos_token_id": 0, "eos_token_id": 0,
                                                           **overrides})), seed)


def bert(seed: int = 0, **overrides):
    from transformers import BertConfig, BertModel

    return _seeded(lambda: BertModel(BertConfig(**{**BERT, **overrides}), add_pooling_layer=False), seed)
