"""Ties a source declares but its file does not hold: ``save_pretrained`` writes one tensor of a
tied pair (safetensors refuses shared storage), so an HF causal LM with
``tie_word_embeddings`` arrives without ``lm_head.weight``. The model's config says the head
*is* the input embedding; read so, the head is fed through the tie instead of staying at its
random init in a target that keeps the two apart (Meta's ``output.weight``).

Only what a config states is used: the model's own ``config`` when the source is a model, else a
``config.json`` beside the file (with transformers' default for its ``model_type`` when the file
leaves the field out: ``save_pretrained`` writes only values that differ from the defaults).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ckptlab.io.checkpoint import Checkpoint
from ckptlab.io.side_config import files_beside, read_json

__all__ = ["declared_ties", "with_declared_ties"]

HEADS = ("lm_head.weight",)  # the output embedding's name in transformers' causal LMs
INPUT_EMBEDDINGS = ("embed_tokens.weight", "wte.weight", "embed_in.weight", "word_embeddings.weight",
                    "shared.weight", "tok_embeddings.weight")


def declared_ties(obj: Any, ck: Checkpoint) -> dict[str, str]:
    """``{missing key: the key it is tied to}`` for the ties ``obj``'s config declares and ``ck`` lacks."""
    if not _ties_word_embeddings(obj, ck) or any(h in ck for h in HEADS):
        return {}
    inputs = sorted((k for k in ck.keys() if k.endswith(INPUT_EMBEDDINGS) and k.count(".") <= 2), key=len)
    return {HEADS[0]: inputs[0]} if inputs else {}


def with_declared_ties(obj: Any, ck: Checkpoint) -> Checkpoint:
    """``ck`` with every declared tie's missing key standing for its partner (same tensor)."""
    ties = declared_ties(obj, ck)
    return ck.with_aliases(ties, why="tie_word_embeddings in its config") if ties else ck


def _ties_word_embeddings(obj: Any, ck: Checkpoint) -> bool:
    config = _config(obj, ck)
    if not config:
        return False
    tie = config.get("tie_word_embeddings")
    if tie is None and isinstance(config.get("model_type"), str):
        tie = _default_tie(config["model_type"])
    return tie is True


def _config(obj: Any, ck: Checkpoint) -> Mapping[str, Any]:
    model_config = getattr(obj, "config", None)
    if model_config is not None and hasattr(model_config, "to_dict"):
        return model_config.to_dict()
    found = files_beside(ck, ("config.json",))
    return read_json(found[0]) if found else {}


def _default_tie(model_type: str) -> bool | None:
    """transformers' default for this model type's config class (data only: no model code runs)."""
    try:
        from transformers import CONFIG_MAPPING
    except ImportError:  # transformers is optional: then only what the file states counts
        return None
    try:
        return bool(CONFIG_MAPPING[model_type]().tie_word_embeddings)
    except Exception:  # noqa: BLE001 - an unknown model type, a config that needs arguments
        return None
