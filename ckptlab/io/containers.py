"""Find the tensor mapping inside a checkpoint's object tree, and what lies beside it.

A checkpoint is rarely a bare state_dict: Lightning nests it under ``state_dict``, others
under ``model``, ``net``, ``module`` or an EMA copy, next to optimizer state whose single
entries can outweigh the model. We look where the tensors actually are: every dict, list,
placeholder object or pickled ``nn.Module`` holding tensors is a *candidate*, and the
ranking prefers model weights (not optimizer state), then the most tensors, then known
names. ``container=`` picks any candidate by its dotted path.
"""
from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass
from functools import cached_property
from operator import attrgetter
from pathlib import Path
from typing import Any

from ckptlab.io.checkpoint import Candidate, Checkpoint, OtherEntry
from ckptlab.errors import ContainerError
from ckptlab.io import limits
from ckptlab.io.formats import paused_gc
from ckptlab.io.formats.base import LazyTensor, Loaded, TensorTable
from ckptlab.io.formats.placeholder import Placeholder, is_module, module_state_dict, submodules, type_name

__all__ = ["KNOWN_NAMES", "OPTIMIZER_NAMES", "OPTIMIZER_SLOTS", "MAX_DEPTH", "MAX_PLAIN_NODES", "Candidate",
    "find", "is_plain", "to_checkpoint", "OptimizerState", "split_optimizer"]

# Names that usually hold the weights; they break ties in this order.
KNOWN_NAMES = ("state_dict", "model", "net", "model_state", "model_state_dict", "module", "network",
               "weights", "params", "state_dict_ema", "model_ema", "ema")
# Where optimizer/scheduler state lives; its tensors are never the default container.
OPTIMIZER_NAMES = frozenset({"optimizer", "optimizers", "optimizer_states", "optimizer_state", "optim", "opt",
                             "opt_state", "scheduler", "lr_scheduler", "lr_schedulers", "scaler", "grad_scaler"})
OPTIMIZER_SLOTS = frozenset({"step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq", "momentum_buffer", "sum",
                             "square_avg", "acc_delta", "mu", "eta", "ax", "prev", "step_size", "exp_inf",
                             "grad_avg", "state"})
MAX_DEPTH = limits.MAX_TREE_DEPTH
MAX_PLAIN_NODES = limits.MAX_PLAIN_NODES
_PLAIN = (type(None), bool, int, float, complex, str, bytes)


@dataclass
class _Found:
    """One candidate as the search found it: where, how it was reached, what it holds."""

    path: str
    chain: tuple[tuple[Any, Any], ...]  # (key, node) steps from the root down to the container
    mapping: dict[str, LazyTensor]
    consumed: frozenset  # keys of the container node whose values went into ``mapping``

    @property
    def node(self) -> Any:
        return self.chain[-1][1] if self.chain else None

    @cached_property
    def nbytes(self) -> int:
        """Bytes of the tensors (asked by the ranking and by the candidate: summed once)."""
        return sum(t.info.nbytes for t in self.mapping.values())

    def candidate(self) -> Candidate:
        return Candidate(self.path, len(self.mapping), self.nbytes)

    def rank(self) -> tuple:
        parts = self.path.split(".") if self.path else []
        optimizer = any(p.lower() in OPTIMIZER_NAMES or "optim" in p.lower() for p in parts) or all(
            key.rsplit(".", 1)[-1] in OPTIMIZER_SLOTS for key in self.mapping)
        name = KNOWN_NAMES.index(parts[-1]) if parts and parts[-1] in KNOWN_NAMES else len(KNOWN_NAMES)
        return (optimizer, -len(self.mapping), name, -self.nbytes, len(parts), self.path)


def _join(prefix: str, key: Any) -> str:
    return f"{prefix}.{key}" if prefix else str(key)


def _children(node: Any) -> list[tuple[Any, Any]]:
    if isinstance(node, dict):
        return list(node.items())
    if isinstance(node, (list, tuple)):
        return list(enumerate(node))
    if is_module(node):
        return list(submodules(node))
    if isinstance(node, Placeholder):
        return node.children()
    return []


def _tensor_tree(node: Any, depth: int = 0, seen: set[int] | None = None) -> dict[str, LazyTensor] | None:
    """A dict of only tensors and such dicts, with string keys, flattened to dotted keys.

    A dict reached twice (a shared sub-dict: the file is a DAG, not a tree) makes the whole
    thing not a tensor tree, so a file of shared references costs its size, not its paths."""
    if depth > MAX_DEPTH or not isinstance(node, dict) or not node or not all(isinstance(k, str) for k in node):
        return None
    seen = set() if seen is None else seen
    if id(node) in seen:
        return None
    seen.add(id(node))
    out: dict[str, LazyTensor] = {}
    for key, value in node.items():
        if isinstance(value, LazyTensor):
            out[key] = value
            continue
        sub = _tensor_tree(value, depth + 1, seen)
        if sub is None:
            return None
        out.update({f"{key}.{k}": v for k, v in sub.items()})
    return out


def _mapping_of(node: Any) -> tuple[dict[str, LazyTensor], frozenset]:
    """The tensors ``node`` holds as one mapping, and which of its keys they came from."""
    if is_module(node):
        return module_state_dict(node), frozenset(k for k, _ in _children(node))
    children = _children(node)
    direct = {k: v for k, v in children if isinstance(v, LazyTensor)}
    # (str keys, the usual case, are kept as they are: str(k) would give the same keys)
    mapping = dict(direct) if all(type(k) is str for k in direct) else {str(k): v for k, v in direct.items()}
    consumed = set(direct)
    if isinstance(node, dict):  # (only a dict can be a tensor tree: _tensor_tree of anything else is None)
        trees = {k: t for k, v in children if isinstance(v, dict) and (t := _tensor_tree(v)) is not None}
        # Nested parts ({"backbone": {...}, "head": {...}}) read as one dotted state_dict, but
        # alternatives (model vs model_ema: known names, or the same keys twice) do not.
        alternatives = any(k in KNOWN_NAMES for k in trees) or len({frozenset(t) for t in trees.values()}) < len(trees)
        if trees and (len(trees) > 1 or direct) and not alternatives:
            for key, tree in trees.items():
                mapping.update({f"{key}.{k}": v for k, v in tree.items()})
                consumed.add(key)
    return mapping, frozenset(consumed)


def find(root: Any) -> list[_Found]:
    """Every candidate in the tree, best first."""
    found: list[_Found] = []
    seen: set[int] = set()

    def visit(node: Any, path: str, chain: tuple, depth: int) -> None:
        if id(node) in seen or depth > MAX_DEPTH:
            return
        seen.add(id(node))
        mapping, consumed = _mapping_of(node)
        if mapping:
            found.append(_Found(path, chain, mapping, consumed))
        for key, child in _children(node):
            if type(child) is not LazyTensor and isinstance(child, (dict, list, tuple, Placeholder)):
                visit(child, _join(path, key), chain + ((key, child),), depth + 1)

    visit(root, "", (), 0)
    found.sort(key=_Found.rank)
    return found


def _other(root: Any, chosen: _Found) -> tuple[OtherEntry, ...]:
    """Everything in the file that is not the chosen tensors, one entry per sibling."""
    entries: list[OtherEntry] = []
    node, prefix = root, ""
    for key, child in chosen.chain:
        entries += [OtherEntry(_join(prefix, k), type_name(v)) for k, v in _children(node)
                    if not (k == key and v is child)]
        node, prefix = child, _join(prefix, key)
    entries += [OtherEntry(_join(prefix, k), type_name(v)) for k, v in _children(node) if k not in chosen.consumed]
    return tuple(entries)


def _beside(root: Any, chosen: _Found) -> tuple[tuple[tuple, Any], ...]:
    """Every entry beside the chosen tensors as read (tensors lazy, other classes as placeholders),
    with its key path from the root: what ``keep_extras`` writes back. Mirrors ``_other``."""
    entries: list[tuple[tuple, Any]] = []
    node, path = root, ()
    for key, child in chosen.chain:
        entries += [(path + (k,), v) for k, v in _children(node) if not (k == key and v is child)]
        node, path = child, path + (key,)
    entries += [(path + (k,), v) for k, v in _children(node) if k not in chosen.consumed]
    return tuple(entries)


def is_plain(value: Any, depth: int = 0) -> bool:
    """Numbers, strings, and containers of them: safe to write back into a new file.

    Only a *tree* of at most ``MAX_PLAIN_NODES`` values is plain: a container reached twice
    (shared references, which JSON or ``str()`` would expand once per path) is not."""
    budget = [MAX_PLAIN_NODES]
    return _plain(value, depth, set(), budget)


def _plain(value: Any, depth: int, seen: set[int], budget: list[int]) -> bool:
    budget[0] -= 1
    if depth > MAX_DEPTH or budget[0] < 0:
        return False
    if isinstance(value, _PLAIN) and not isinstance(value, Placeholder):
        return True
    if id(value) in seen:
        return False
    if type(value) in (list, tuple, set, frozenset):
        seen.add(id(value))
        return all(_plain(v, depth + 1, seen, budget) for v in value)
    if isinstance(value, dict) and type(value).__module__ in ("builtins", "collections"):
        seen.add(id(value))
        return all(_plain(k, depth + 1, seen, budget) and _plain(v, depth + 1, seen, budget)
                   for k, v in value.items())
    return False


def _extras(root: Any, chosen: _Found) -> dict[str, Any]:
    """Plain top-level entries of the file beside the tensors (epoch, config, ...)."""
    if not isinstance(root, dict):
        return {}
    skip = {chosen.chain[0][0]} if chosen.chain else set(chosen.consumed)
    return {str(k): v for k, v in root.items() if k not in skip and is_plain(v)}


def to_checkpoint(loaded: Loaded, path: str | Path | None, container: str | None) -> Checkpoint:
    """Wrap the chosen container of ``loaded`` (``None``: the best candidate) as a Checkpoint."""
    if _flat(loaded.root):
        return _top_level(loaded, path, container)
    with paused_gc():
        found = find(loaded.root)
    if not found:
        raise ContainerError(f"no tensors found (the file holds a {type_name(loaded.root)})", path)
    if container is None:
        chosen = found[0]
    else:
        chosen = next((f for f in found if f.path == container), None)
        if chosen is None:
            weights, states = split_optimizer([f.candidate() for f in found])  # Adam state: one entry
            named = [repr(c.path) if c.path else "(top level)" for c in weights[:12]] + (
                ["..."] if len(weights) > 12 else []) + [
                f"{s.path!r} (optimizer state, {s.entries} per-parameter entries)" for s in states[:2]]
            listed = ", ".join(named)
            raise ContainerError(f"no tensor mapping at {container!r}; candidates: {listed}", path)
    limits.check_keys(chosen.mapping, path)  # dotted keys made by flattening nested dicts, too
    return Checkpoint(
        chosen.mapping, path=path, format=loaded.format, container=chosen.path,
        candidates=tuple(f.candidate() for f in found), other=_other(loaded.root, chosen),
        placeholders=loaded.placeholders, metadata=loaded.metadata, extras=_extras(loaded.root, chosen),
        beside=_beside(loaded.root, chosen),
    )


_NBYTES = attrgetter("nbytes")


def _flat(root: Any) -> bool:
    """A flat mapping of tensors (a safetensors table, a bare state_dict): its one candidate
    is the top level, found without the tree search (``map``/``set`` run in C)."""
    if type(root) is TensorTable:
        return len(root) > 0
    return type(root) in (dict, OrderedDict) and len(root) > 0 and set(map(type, root.values())) == {LazyTensor} \
        and set(map(type, root)) == {str}


def _top_level(loaded: Loaded, path: str | Path | None, container: str | None) -> Checkpoint:
    """What ``find`` gives a flat mapping: one candidate, the top level, nothing beside it."""
    root = loaded.root
    if container not in (None, ""):
        raise ContainerError(f"no tensor mapping at {container!r}; candidates: (top level)", path)
    if type(root) is TensorTable:  # (its reader checked its keys: the same keys, none made by flattening)
        nbytes = sum(map(_NBYTES, root.infos.values()))
    else:
        limits.check_keys(root, path)
        nbytes = sum(t.info.nbytes for t in root.values())
    return Checkpoint(root, path=path, format=loaded.format, container="", candidates=(Candidate("", len(root), nbytes),),
                      placeholders=loaded.placeholders, metadata=loaded.metadata, beside=())


# -- optimizer state: many small candidates, one thing ------------------------------------
_STATE_ENTRY = re.compile(r"^(?P<owner>.*?)\.?state\.\d+$")  # optimizer.state.<param id>


@dataclass(frozen=True)
class OptimizerState:
    """One optimizer's per-parameter state, found as many small candidates."""

    path: str  # where the optimizer state sits, e.g. "optimizer_state" or "optimizer_states.0"
    entries: int  # per-parameter entries
    tensors: int
    nbytes: int


def split_optimizer(candidates: "tuple[Candidate, ...] | list[Candidate]"
                    ) -> "tuple[list[Candidate], list[OptimizerState]]":
    """The candidates that could hold weights, and the optimizer states grouped one each."""
    weights: list = []
    groups: dict[str, list] = {}
    for c in candidates:
        owner = _optimizer_owner(c.path)
        if owner is None:
            weights.append(c)
        else:
            groups.setdefault(owner, []).append(c)
    states = [OptimizerState(path, len(members), sum(m.tensors for m in members), sum(m.nbytes for m in members))
              for path, members in groups.items()]
    return weights, states


def _optimizer_owner(path: str) -> str | None:
    """Where the optimizer sits for a candidate inside one (``None``: not optimizer state)."""
    parts = path.split(".") if path else []
    for i, part in enumerate(parts):
        if part.lower() in OPTIMIZER_NAMES or "optim" in part.lower():
            m = _STATE_ENTRY.match(".".join(parts[i:]))
            owner = parts[: i + 1]
            if m and m.group("owner"):  # optimizer_states.0.state.3 -> optimizer_states.0
                owner = parts[:i] + m.group("owner").split(".")
            return ".".join(owner)
    m = _STATE_ENTRY.match(path)
    return (m.group("owner") or "(top level)") if m else None
