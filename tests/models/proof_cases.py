"""The jobs the proof tests share: real tiny transformers models saved as a user has them
(``save_pretrained``: weights and config.json in one folder), and a wrong recipe that looks right."""
from __future__ import annotations

from pathlib import Path

import yaml

from ckptlab.recipe.known import __file__ as _known_init

KNOWN = Path(_known_init).parent


def saved(model, folder: Path) -> Path:
    """``model.save_pretrained(folder)``; the weights file (config.json beside it)."""
    model.save_pretrained(folder)
    return folder / "model.safetensors"


def gpt2_without_c_proj_transpose() -> dict:
    """The catalogue's GPT-2 -> nanoGPT conversion with the square ``attn.c_proj`` converted
    "as stored" (``ops: []``): every key fed on purpose, strict-clean, and wrong."""
    recipe = yaml.safe_load((KNOWN / "gpt2_to_nanogpt.yaml").read_text())["recipe"]
    for entry in recipe["convert"]:
        if entry["from"].endswith("attn.c_proj.weight"):
            entry["ops"] = []
    return recipe
