"""Suggestions: ready recipe fragments that would feed more target keys (being built)."""
from __future__ import annotations

from ckptlab.align import Suggestion
from ckptlab.checkpoint import Checkpoint
from ckptlab.recipe import Recipe


def suggest(source: Checkpoint, target: Checkpoint, recipe: Recipe) -> list[Suggestion]:
    return []
