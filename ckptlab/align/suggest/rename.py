"""Stage 2: module renames (``conv1`` -> ``backbone_conv``).

A whole module's parameter set with the same shapes, under the same parent, with name or structural
evidence. Modules that keep their name but changed content (an attention block rebuilt) are never
paired child by child: shapes that happen to agree are not evidence.
"""
from __future__ import annotations

import re
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterable
from difflib import SequenceMatcher

from ckptlab.align.suggest.prefix import _literal
from ckptlab.align.suggest.state import State
from ckptlab.align.types import Suggestion
from ckptlab.recipe.parsing import quote


# -- stage 2: module renames --------------------------------------------------------------
def _parent(path: str) -> str:
    return path.rpartition(".")[0]


_TOP = "\U0010ffff"  # the highest code point: path + "." + _TOP sorts after the keys under path


def _maximal_modules(names: Iterable[str], all_names: Iterable[str]) -> dict[str, list[str]]:
    """Largest modules (never the root) whose every key is in ``names``: path -> keys."""
    names = list(names)
    all_names = list(all_names)
    if len(names) == len(all_names) and set(names) == set(all_names) and not any(_TOP in n for n in names):
        # every key is in ``names`` (nothing fed yet): every module is complete, so each key
        # goes to its outermost one (what the count below finds, without counting)
        modules: dict[str, list[str]] = {}
        for name in names:
            cut = name.find(".")
            if cut != -1:
                _add(modules, name[:cut], name)
        return modules
    inside: dict[str, int] = {}
    for name in names:
        for path in _module_paths(name):
            inside[path] = inside.get(path, 0) + 1
    ordered = sorted(all_names)  # keys under a path form one run of the sorted names

    def total(path: str) -> int:
        return bisect_left(ordered, path + "." + _TOP) - bisect_left(ordered, path + ".")

    complete = {path for path, n in inside.items() if total(path) == n}
    modules = {}
    for name in names:
        for path in _module_paths(name):
            if path in complete:
                _add(modules, path, name)
                break
    return modules


def _add(index: dict[str, list[str]], key: str, item: str) -> None:
    hit = index.get(key)
    if hit is None:
        index[key] = [item]
    else:
        hit.append(item)


def _module_paths(name: str) -> list[str]:
    """``a.b.c`` -> ``["a", "a.b"]``: the modules a key sits in, outermost first."""
    out, cut = [], name.find(".")
    while cut != -1:
        out.append(name[:cut])
        cut = name.find(".", cut + 1)
    return out


def _signature(path: str, keys: list[str], shapes) -> tuple:
    cut = len(path) + 1
    return tuple(sorted((key[cut:], shapes(key)) for key in keys))


def _tokens(name: str) -> set[str]:
    return {t for t in re.findall(r"[a-z]+", re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()) if len(t) > 1}


def similar_names(a: str, b: str) -> bool:
    """Shared word (``conv1`` / ``backbone_conv``) or close spelling (``norm`` / ``norm_f``)."""
    return bool(_tokens(a) & _tokens(b)) or SequenceMatcher(None, a.lower(), b.lower()).ratio() >= 0.6


def rename_suggestions(state: State) -> list[Suggestion]:
    sources, targets = state.unexplained()
    if not sources or not targets:
        return []
    current = [n for n in state.names.values() if n is not None]
    s_mods = _maximal_modules(sources, current)
    t_mods = _maximal_modules(targets, state.target_shapes)
    by_parent: dict[str, tuple[dict, dict]] = defaultdict(lambda: ({}, {}))
    for path, keys in s_mods.items():
        by_parent[_parent(path)][0][path] = keys
    for path, keys in t_mods.items():
        by_parent[_parent(path)][1][path] = keys

    def source_shape(name: str) -> Shape:
        return state.source_shapes[sources[name]]

    out: list[Suggestion] = []
    positions = None
    for parent in sorted(by_parent):
        s_keys, t_keys = by_parent[parent]
        same = set(s_keys) & set(t_keys)  # kept its name, changed its content: rebuilt, not renamed
        s_keys = {p: keys for p, keys in s_keys.items() if p not in same}
        t_keys = {p: keys for p, keys in t_keys.items() if p not in same}
        if not _may_pair(s_keys, t_keys):
            continue  # no two modules alike: no pairing, whatever their shapes
        s_sig = {p: _signature(p, keys, source_shape) for p, keys in s_keys.items()}
        t_sig = {p: _signature(p, keys, state.target_shapes.__getitem__) for p, keys in t_keys.items()}
        if positions is None:
            positions = ({name: i / max(len(current), 1) for i, name in enumerate(current)},
                         {name: i / max(len(state.target_order), 1) for i, name in enumerate(state.target_order)})
        out.extend(_pair_modules(s_sig, t_sig, *positions))
    return out


def _may_pair(s_keys: dict[str, list[str]], t_keys: dict[str, list[str]]) -> bool:
    """Whether some source module and some target module have as many keys with the same leaf
    names (what equal signatures need), told before the signatures are sorted."""
    if not s_keys or not t_keys:
        return False
    s_outlines = {_outline(p, keys) for p, keys in s_keys.items()}
    return any(_outline(p, keys) in s_outlines for p, keys in t_keys.items())


def _outline(path: str, keys: list[str]) -> tuple[int, frozenset]:
    """How many keys a module has and their names inside it."""
    return len(keys), frozenset(k[len(path) + 1:] for k in keys)


def _pair_modules(s_sig: dict, t_sig: dict, s_pos: dict, t_pos: dict) -> list[Suggestion]:
    by_sig_s: dict[tuple, list[str]] = defaultdict(list)
    by_sig_t: dict[tuple, list[str]] = defaultdict(list)
    for path, sig in s_sig.items():
        by_sig_s[sig].append(path)
    for path, sig in t_sig.items():
        by_sig_t[sig].append(path)
    bijection = (set(by_sig_s) == set(by_sig_t)
                 and all(len(v) == 1 for v in by_sig_s.values()) and all(len(v) == 1 for v in by_sig_t.values()))
    out = []
    for sig, t_paths in by_sig_t.items():
        s_paths = by_sig_s.get(sig)
        if not s_paths:
            continue
        first = lambda paths, pos: sorted(paths, key=lambda p: pos.get(p + "." + sig[0][0], 0.0))  # noqa: E731
        s_sorted, t_sorted = first(s_paths, s_pos), first(t_paths, t_pos)
        unique = len(s_sorted) == 1 and len(t_sorted) == 1
        for s_path, t_path in zip(s_sorted, t_sorted):
            s_name, t_name = s_path.rpartition(".")[2], t_path.rpartition(".")[2]
            named = similar_names(s_name, t_name)
            near = abs(s_pos.get(s_path + "." + sig[0][0], 0) - t_pos.get(t_path + "." + sig[0][0], 0)) <= 0.1
            if unique and (named or bijection):
                confidence = "medium"
            elif named or (unique and near):
                confidence = "low"
            else:
                continue
            evidence = ["same place in the order" if near else "", "similar name" if named else "",
                        "the only unmatched modules under their parent" if bijection else ""]
            n = len(sig)
            reason = (f"module {quote(s_path)} looks renamed to {quote(t_path)}: the same {n} "
                      f"parameter{'s' if n != 1 else ''} with the same shapes"
                      + "".join(f", {e}" for e in evidence if e))
            rule = {"replace": {"pattern": "^" + re.escape(s_path) + r"\.", "with": _literal(t_path) + "."}}
            out.append(Suggestion(rule, confidence, reason, n))
    return out
