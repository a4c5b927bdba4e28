"""Suggestions: ready recipe fragments that would feed more target keys, with a confidence.

Three stages, each working on the names the previous ones leave:

1. the container (where the tensors sit in a nested file) and prefixes added, stripped or
   swapped (``module.``, ``model.``, ``attention_map.``, ``a.b.`` -> ``c.``). High only
   when the prefix explains at least two keys and most keys under it, with identical
   shapes and no conflict.
2. module renames (``conv1`` -> ``backbone_conv``): a whole module's parameter set with the
   same shapes, under the same parent, with name or structural evidence. Modules that keep
   their name but changed content (an attention block rebuilt) are never paired child by
   child: shapes that happen to agree are not evidence.
3. shape adapters for tensors that are mapped but do not fit: a classifier head whose
   class count changed, a first conv whose input channels changed.

Everything is hashed (prefix/suffix components, shape signatures): no all-pairs compare.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ckptlab.align.suggest.adapters import adapter_suggestions
from ckptlab.align.suggest.container import _container_suggestion
from ckptlab.align.suggest.prefix import prefix_suggestions
from ckptlab.align.suggest.rename import rename_suggestions
from ckptlab.align.suggest.state import State
from ckptlab.align.types import Suggestion
from ckptlab.io.checkpoint import Checkpoint
from ckptlab.recipe.model import Recipe


# -- entry point --------------------------------------------------------------------------
def suggest(source: Checkpoint, target: Checkpoint, recipe: Recipe, params: Mapping[str, Any] | None = None,
            sides: Iterable[tuple[str, Any]] | None = None, notes: list[str] | None = None) -> list[Suggestion]:
    """All suggestions for this pair under ``recipe``, strongest stage first.

    Later stages are computed as if the high suggestions before them were accepted (and
    the structural conversions, which change what the adapters see), so accepting them
    in list order is consistent. ``params`` (e.g. ``{"heads": 32}``) and ``sides`` (the
    source and target as given: models carry configs) feed the known conversions; what
    they still lack is appended to ``notes`` as a one-line warning.
    """
    from ckptlab.align.suggest.known import known_suggestions
    from ckptlab.align.suggest.structure import order_suggestion, structure_suggestions

    out: list[Suggestion] = []
    container, source = _container_suggestion(source, target, recipe)
    if container is not None:
        out.append(container)
    sides = list(sides) if sides is not None else [("source", source), ("target", target)]
    known, state = known_suggestions(State.of(source, target, recipe), params, sides, notes)
    out.extend(known)
    prefixes, state = prefix_suggestions(state)
    out.extend(prefixes)
    for s in structure_suggestions(state):
        out.append(s)
        state = state.with_fragment(s.rule)
    for s in rename_suggestions(state):
        out.append(s)
        if s.confidence != "low":  # a guess is not assumed by the stages after it
            state = state.with_fragment(s.rule)
    adapters = adapter_suggestions(state, recipe)
    out.extend(adapters)
    for s in adapters:
        state = state.with_fragment(s.rule)
    order = order_suggestion(state)
    if order is not None:
        out.append(order)
    return out
