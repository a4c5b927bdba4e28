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

import re
from bisect import bisect_left
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from typing import Any

from ckptlab.align import Suggestion, shape_text
from ckptlab.checkpoint import Checkpoint
from ckptlab.errors import CheckpointError
from ckptlab.recipe import Recipe, Rule, quote

Shape = tuple[int, ...]
MAX_PREFIX_DEPTH = 4      # components a prefix may have on either side
MAX_BUCKET = 4            # a suffix shared by more target keys than this is not evidence
MAX_PREFIX_ROUNDS = 6     # successive high prefix suggestions
EVALUATE_TOP = 4          # prefix candidates simulated per round
COUNT_SAMPLE = 4096       # source names sampled to rank prefix candidates
WRAPPERS = {
    "module.": "a DataParallel/DDP wrapper",
    "_orig_mod.": "a torch.compile wrapper",
    "model.": "a wrapping module such as a LightningModule",
}


# -- the state the stages work on ---------------------------------------------------------
@dataclass
class State:
    """Source keys' current names under a recipe, and what they feed.

    ``converted``: target key -> (source keys, the shape the conversion gives) for targets a
    ``convert`` entry feeds; their source keys are claimed (named None: no rule sees them).
    """

    names: dict[str, str | None]          # source key -> current name (None: dropped or claimed)
    source_shapes: dict[str, Shape]
    target_shapes: dict[str, Shape]
    target_order: list[str]
    mapped: dict[str, str]                # target key -> source key, from the explicit map
    converted: dict[str, tuple[tuple[str, ...], Shape]] = field(default_factory=dict)
    claimed: frozenset = frozenset()
    _candidates: dict[str, list[str]] | None = field(default=None, repr=False, compare=False)

    @classmethod
    def of(cls, source: Checkpoint, target: Checkpoint, recipe: Recipe) -> "State":
        target_shapes = {key: tuple(target.info(key).shape) for key in target.keys()}
        source_shapes = {key: tuple(source.info(key).shape) for key in source.keys()}
        state = cls({key: key for key in source_shapes}, source_shapes, target_shapes, target.keys(), {})
        if recipe.convert:
            state = state.with_conversions([c.to_dict() for c in recipe.convert])
        renamed = recipe.rename([k for k in source_shapes if k not in state.claimed])
        names = {key: (None if key in state.claimed else renamed[key][0]) for key in source_shapes}
        mapped = {t: s for t, s in recipe.map.items() if t in target_shapes and s in names}
        return state._copy(names=names, mapped=mapped)

    def _copy(self, **changes) -> "State":
        fields = dict(names=self.names, source_shapes=self.source_shapes, target_shapes=self.target_shapes,
                      target_order=self.target_order, mapped=self.mapped, converted=self.converted,
                      claimed=self.claimed)
        fields.update(changes)
        return State(**fields)

    def with_rule(self, rule: Rule) -> "State":
        names = {key: (None if new is None else rule.apply(new)) for key, new in self.names.items()}
        return self._copy(names=names)

    def with_conversions(self, entries: list[dict]) -> "State":
        """The state once these ``convert`` entries (dicts) claim what they match; entries
        that match nothing or whose ops do not fit are skipped here (align names them)."""
        from ckptlab.convert import Conversion, find_groups

        convs = [Conversion.from_dict(e, i) for i, e in enumerate(entries, start=1)]
        free = {k: v for k, v in self.source_shapes.items() if k not in self.claimed}
        found = find_groups(convs, free, strict=False)
        converted = dict(self.converted)
        claimed = set(self.claimed)
        names = dict(self.names)
        for group in found.groups:
            for tkey, shape in zip(group.targets, group.target_shapes):
                if tkey in self.target_shapes:
                    converted[tkey] = (tuple(group.sources), tuple(shape))
            for skey in group.sources:
                claimed.add(skey)
                names[skey] = None
        return self._copy(names=names, converted=converted, claimed=frozenset(claimed))

    def with_fragment(self, fragment: dict) -> "State":
        if "convert" in fragment:
            return self.with_conversions(list(fragment["convert"]))
        if "map" in fragment or "adapt" in fragment or "container" in fragment:
            mapped = {**self.mapped, **{t: s for t, s in fragment.get("map", {}).items() if s in self.names}}
            return self._copy(mapped=mapped)
        return self.with_rule(Rule.from_dict(fragment))

    def candidates(self) -> dict[str, list[str]]:
        """Target key -> source keys whose current name is that key (conversions win over
        names, the map over both)."""
        if self._candidates is None:
            self._candidates = self._find_candidates()
        return self._candidates

    def _find_candidates(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for skey, new in self.names.items():
            if new is not None and new in self.target_shapes and new not in self.mapped and new not in self.converted:
                out.setdefault(new, []).append(skey)
        for tkey, (skeys, _) in self.converted.items():
            if tkey not in self.mapped:
                out[tkey] = [skeys[0]]
        for tkey, skey in self.mapped.items():
            out[tkey] = [skey]
        return out

    def shape_fed(self, tkey: str, skey: str) -> Shape:
        """The shape ``tkey`` would receive from ``skey`` (a conversion's output, or as is)."""
        conv = self.converted.get(tkey)
        if conv is not None and tkey not in self.mapped:
            return conv[1]
        return self.source_shapes[skey]

    def stats(self) -> "Stats":
        fed, mismatch, conflict = set(), set(), set()
        for tkey, skeys in self.candidates().items():
            if len(skeys) > 1:
                conflict.add(tkey)
            elif self.shape_fed(tkey, skeys[0]) == self.target_shapes[tkey]:
                fed.add(tkey)
            else:
                mismatch.add(tkey)
        return Stats(fed, mismatch, conflict)

    def unexplained(self) -> tuple[dict[str, str], set[str]]:
        """(current name -> source key) of sources feeding nothing, and unfed target keys."""
        cands = self.candidates()
        used = {s for skeys in cands.values() for s in skeys}
        sources = {new: skey for skey, new in self.names.items() if new is not None and skey not in used}
        targets = {t for t in self.target_shapes if t not in cands}
        return sources, targets


@dataclass
class Stats:
    fed: set[str]
    mismatch: set[str]
    conflict: set[str]


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
    from ckptlab.known.fit import known_suggestions
    from ckptlab.structure import order_suggestion, structure_suggestions

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


# -- stage 1: container -------------------------------------------------------------------
def _container_suggestion(source: Checkpoint, target: Checkpoint, recipe: Recipe) -> tuple[Suggestion | None, Checkpoint]:
    """The container in use (reported as applied), or a better one when another nested
    mapping would feed more target keys. Returns the suggestion and the source to go on with."""
    if recipe.container is not None or not source.path:
        return None, source
    chosen = Suggestion({"container": source.container}, "high",
                        f"the tensors sit under {quote(source.container)} (chosen when opening)"
                        + _twins(source), len(source), applied=True) if source.container else None
    others = [c for c in source.candidates if c.path != source.container and c.tensors >= 2]
    if not others:
        return chosen, source
    current = _best_feed(State.of(source, target, recipe))
    if 2 * current >= len(target):
        return chosen, source
    best, best_fed, best_ck = None, current, source
    from ckptlab.checkpoint import open as open_checkpoint

    for cand in sorted(others, key=lambda c: -c.tensors)[:4]:
        try:
            ck = open_checkpoint(source.path, container=cand.path)
        except CheckpointError:
            continue
        fed = _best_feed(State.of(ck, target, recipe))
        if fed > best_fed:
            best, best_fed, best_ck = cand.path, fed, ck
    if best is None:
        return chosen, source
    where = f" (the chosen {quote(source.container)} feeds {current})" if source.container else ""
    return Suggestion({"container": best}, "high",
                      f"the tensors under {quote(best)} feed {best_fed} target keys{where}", best_fed), best_ck


def _twins(source: Checkpoint) -> str:
    """Other containers holding as many tensors (an EMA copy beside the raw weights): the
    user must know there was a choice, since timm, for one, loads the EMA by default."""
    mine = source.container
    twins = [c.path for c in source.candidates if c.path != mine and c.tensors == len(source)
             and not c.path.startswith(f"{mine}.") and not mine.startswith(f"{c.path}.")]
    if not twins:
        return ""
    return f"; also in the file with {len(source)} tensors: " + ", ".join(quote(t) for t in twins[:3]) + (
        " (choose it as the container to load it instead)")


def _best_feed(state: State) -> int:
    """Target keys fed once the high prefix suggestions are applied."""
    return len(prefix_suggestions(state)[1].stats().fed)


# -- stage 1: prefixes --------------------------------------------------------------------
def _splits(name: str) -> Iterable[tuple[str, str, int]]:
    """(prefix, rest, components of rest) for 0..MAX_PREFIX_DEPTH leading components."""
    components = name.count(".") + 1
    yield "", name, components
    cut = -1
    for i in range(1, min(MAX_PREFIX_DEPTH, components - 1) + 1):
        cut = name.index(".", cut + 1)
        yield name[:cut + 1], name[cut + 1:], components - i


def _prefix_counts(sources: dict[str, str], targets: set[str], state: State) -> Counter:
    """(source prefix, target prefix) -> how many key pairs with equal shapes it explains.

    Targets are indexed by every rest-after-a-prefix; each source looks its own rests up.
    A rest of one component ("weight") only counts when it is a whole key on one side,
    and a rest shared by many target keys is skipped: it explains nothing by itself.
    """
    index: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for tkey in targets:
        for prefix, rest, _ in _splits(tkey):
            index[rest].append((prefix, tkey))
    counts: Counter = Counter()
    names = list(sources)
    step = max(1, len(names) // COUNT_SAMPLE)  # counts only rank candidates; grading is exact
    for name in names[::step]:
        skey = sources[name]
        shape = state.source_shapes[skey]
        for a, rest, depth in _splits(name):
            hits = index.get(rest)
            if not hits or len(hits) > MAX_BUCKET:
                continue
            for b, tkey in hits:
                if a == b or (depth < 2 and a and b) or _sibling_rename(a, b):
                    continue
                if state.target_shapes[tkey] == shape:
                    counts[(a, b)] += 1
    return counts


def _sibling_rename(a: str, b: str) -> bool:
    """``x.y.mlp.`` -> ``x.y.feed_forward.``: one module renamed inside its parent. That is
    the rename stage's business (medium at most), not a wrapper prefix."""
    if not a or not b:
        return False
    pa, pb = a[:-1].rpartition(".")[0], b[:-1].rpartition(".")[0]
    return pa == pb and pa != ""


def _prefix_rule(a: str, b: str) -> dict:
    if a and not b:
        return {"strip_prefix": a}
    if b and not a:
        return {"add_prefix": b}
    return {"replace": {"pattern": "^" + re.escape(a), "with": _literal(b)}}


def _literal(text: str) -> str:
    """``text`` as a ``re.sub`` replacement that inserts it verbatim."""
    return text.replace("\\", "\\\\")


def _restricted_rule(a: str, b: str, heads: set[str]) -> dict:
    """The prefix change limited to source names whose next component is in ``heads``
    (a prefix on one side for a subset of the keys only)."""
    group = "|".join(re.escape(h) for h in sorted(heads))
    return {"replace": {"pattern": "^" + re.escape(a) + f"((?:{group})\\.)", "with": _literal(b) + "\\1"}}


def prefix_suggestions(state: State) -> tuple[list[Suggestion], State]:
    """Successive prefix fixes: every high one found, then at most one weaker one; and the
    state once the high ones are applied."""
    out: list[Suggestion] = []
    for _ in range(MAX_PREFIX_ROUNDS):
        found = _best_prefix(state)
        if found is None:
            break
        out.append(found.suggestion)
        if found.suggestion.confidence != "high":
            break
        state = found.state
    return out, state


@dataclass
class Graded:
    """A simulated prefix fix: how it ranks, what it says, and the names it leaves."""

    rank: tuple[int, int]
    suggestion: Suggestion
    state: State


def _best_prefix(state: State) -> Graded | None:
    sources, targets = state.unexplained()
    if not sources or not targets:
        return None
    counts = _prefix_counts(sources, targets, state)
    base = state.stats()
    best: Graded | None = None
    # strongest first; on a tie the shorter rule ('module.' rather than 'module.model.')
    ranked = sorted(counts.items(), key=lambda item: (-item[1], len(item[0][0]) + len(item[0][1])))
    for (a, b), n in ranked[:EVALUATE_TOP]:
        if n < 2 and not (n == 1 and len(sources) == 1):
            continue
        if best is not None and n <= best.suggestion.keys:
            break  # cannot explain more than the one already graded
        graded = _grade(state, base, sources, targets, a, b)
        if graded is not None and (best is None or graded.rank > best.rank):
            best = graded
    return best


def _grade(state: State, base: Stats, sources: dict[str, str], targets: set[str], a: str, b: str) -> Graded | None:
    """Simulate the prefix change ``a`` -> ``b`` and judge it (None: it feeds nothing more)."""
    rule = _prefix_rule(a, b)
    moved = state.with_rule(Rule.from_dict(rule))
    after = moved.stats()
    lost = base.fed - after.fed
    if lost and not after.conflict - base.conflict:
        # it would move keys that load now elsewhere: limit it to the modules it explains.
        # (Not when it makes two sources meet: that ambiguity is the user's to settle.)
        heads = {name[len(a):].split(".", 1)[0] for name in sources if name.startswith(a)
                 and b + name[len(a):] in targets}
        if not heads:
            return None
        rule = _restricted_rule(a, b, heads)
        moved = state.with_rule(Rule.from_dict(rule))
        after = moved.stats()
        lost = base.fed - after.fed
    gain = len(after.fed) - len(base.fed)
    if gain <= 0:
        return None
    new_conflicts = after.conflict - base.conflict
    new_mismatch = after.mismatch - base.mismatch
    under_a = sum(name.startswith(a) for name in sources)
    under_b = sum(t.startswith(b) for t in targets)
    most = 2 * gain > under_a and 2 * gain > under_b
    clean = not lost and not new_conflicts and 4 * len(new_mismatch) <= gain
    if gain >= 2 and most and clean:
        confidence = "high"
    elif not new_conflicts and not lost:
        confidence = "medium"
    else:
        confidence = "low"
    reason = f"{gain} target keys then match by name with identical shapes"
    wrapper = WRAPPERS.get(a) if not b else None
    if wrapper:
        reason += f" ({quote(a)} comes from {wrapper})"
    if new_mismatch:
        reason += f"; {len(new_mismatch)} then differ in shape"
    if new_conflicts:
        reason += f"; {len(new_conflicts)} target keys would get two sources"
    if lost:
        reason += f"; {len(lost)} keys that load now would be lost"
    rank = (("low", "medium", "high").index(confidence), gain)
    return Graded(rank, Suggestion(rule, confidence, reason, gain), moved)


# -- stage 2: module renames --------------------------------------------------------------
def _parent(path: str) -> str:
    return path.rpartition(".")[0]


def _maximal_modules(names: Iterable[str], all_names: Iterable[str]) -> dict[str, list[str]]:
    """Largest modules (never the root) whose every key is in ``names``: path -> keys."""
    names = list(names)
    inside: Counter = Counter()
    for name in names:
        inside.update(_module_paths(name))
    ordered = sorted(all_names)  # keys under a path form one run of the sorted names

    def total(path: str) -> int:
        return bisect_left(ordered, path + ".\U0010ffff") - bisect_left(ordered, path + ".")

    complete = {path for path, n in inside.items() if total(path) == n}
    modules: dict[str, list[str]] = {}
    for name in names:
        for path in _module_paths(name):
            if path in complete:
                modules.setdefault(path, []).append(name)
                break
    return modules


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
    s_pos = {name: i / max(len(current), 1) for i, name in enumerate(current)}
    t_pos = {name: i / max(len(state.target_order), 1) for i, name in enumerate(state.target_order)}
    by_parent: dict[str, tuple[dict, dict]] = defaultdict(lambda: ({}, {}))
    for path, keys in s_mods.items():
        by_parent[_parent(path)][0][path] = _signature(path, keys, lambda n: state.source_shapes[sources[n]])
    for path, keys in t_mods.items():
        by_parent[_parent(path)][1][path] = _signature(path, keys, state.target_shapes.__getitem__)
    out: list[Suggestion] = []
    for parent in sorted(by_parent):
        s_sig, t_sig = by_parent[parent]
        same = set(s_sig) & set(t_sig)  # kept its name, changed its content: rebuilt, not renamed
        s_sig = {p: sig for p, sig in s_sig.items() if p not in same}
        t_sig = {p: sig for p, sig in t_sig.items() if p not in same}
        out.extend(_pair_modules(s_sig, t_sig, s_pos, t_pos))
    return out


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


# -- stage 3: shape adapters --------------------------------------------------------------
def adapter_suggestions(state: State, recipe: Recipe) -> list[Suggestion]:
    cands = state.candidates()
    mismatched: dict[str, dict[str, tuple[Shape, Shape]]] = defaultdict(dict)
    for tkey in state.target_order:
        skeys = cands.get(tkey)
        if not skeys or len(skeys) != 1 or tkey in recipe.adapt or (
                tkey in state.converted and tkey not in state.mapped):
            continue  # (an adapter never applies to a conversion's output)
        s_shape, t_shape = state.source_shapes[skeys[0]], state.target_shapes[tkey]
        if s_shape != t_shape:
            mismatched[_parent(tkey)][tkey] = (s_shape, t_shape)
    first_conv = next((k for k in state.target_order if len(state.target_shapes[k]) == 4), None)
    out = []
    for module, keys in mismatched.items():
        found = _head(module, keys) or _input_conv(keys, first_conv) or _one_dim(module, keys)
        if found is not None:
            out.append(found)
    return out


def _differing(s: Shape, t: Shape) -> list[int]:
    return [d for d, (a, b) in enumerate(zip(s, t)) if a != b] if len(s) == len(t) else [-1]


def _resize_spec(s: int, t: int, dim: int, grow_fill: str) -> dict:
    return {"op": "pad", "dim": dim, "fill": grow_fill} if t > s else {"op": "truncate", "dim": dim}


def _head(module: str, keys: dict[str, tuple[Shape, Shape]]) -> Suggestion | None:
    """A Linear head whose output count changed: weight (C, F) and bias (C,) on dim 0."""
    weight, bias = f"{module}.weight" if module else "weight", f"{module}.bias" if module else "bias"
    if weight not in keys:
        return None
    (ws, wt) = keys[weight]
    if len(wt) != 2 or _differing(ws, wt) != [0]:
        return None
    if bias in keys and (len(keys[bias][1]) != 1 or keys[bias] != ((ws[0],), (wt[0],))):
        return None
    adapt = {weight: _resize_spec(ws[0], wt[0], 0, "init")}
    if bias in keys:
        adapt[bias] = _resize_spec(ws[0], wt[0], 0, "init")
    grow = wt[0] > ws[0]
    parts = " and ".join(k.rpartition(".")[2] for k in adapt)
    if grow:
        how = (f"pad dim 0 of {parts}: rows 0..{ws[0] - 1} keep the old outputs, the new rows keep the "
               f"target's initialisation (right when the new classes extend the old ones in order)")
    else:  # dropping trained classes is rarely what a new label set means: never medium
        how = (f"truncate dim 0 of {parts} keeps the first {wt[0]} rows: right only if the new classes are the "
               f"old first {wt[0]} in order (a background class stored last is lost); otherwise keep the "
               f"target's initialisation (on-mismatch keep-target)")
    return Suggestion({"adapt": adapt}, "medium" if grow else "low",
                      f"head {quote(module)} has {wt[0]} outputs instead of {ws[0]}: {how}", len(adapt))


def _input_conv(keys: dict[str, tuple[Shape, Shape]], first_conv: str | None) -> Suggestion | None:
    """A conv whose input channels changed (RGB -> RGBA): pad dim 1 with zeros, so the new
    channels contribute nothing and the output on the old channels is unchanged."""
    adapt, notes = {}, []
    for key, (s, t) in keys.items():
        if len(t) != 4 or _differing(s, t) != [1]:
            return None
        if t[1] > s[1]:
            adapt[key] = {"op": "pad", "dim": 1}
        elif s[1] % t[1] == 0:
            adapt[key] = {"op": "sum", "dim": 1}
        else:
            adapt[key] = {"op": "truncate", "dim": 1}
        notes.append(f"{quote(key)} takes {t[1]} input channels instead of {s[1]}")
    if not adapt:
        return None
    how = {"pad": "pad dim 1 with zeros (the old channels' output is unchanged)",
           "sum": "sum the input channels (as timm does for grayscale)", "truncate": "truncate dim 1"}
    op = next(iter(adapt.values()))["op"]
    confidence = "medium" if first_conv in adapt else "low"
    if op == "pad" and all(t[1] % s[1] == 0 for s, t in keys.values()):
        how["pad"] += "; or fill: repeat to spread the trained weights over every channel (as timm does)"
    return Suggestion({"adapt": adapt}, confidence, f"{'; '.join(notes)}: {how[op]}", len(adapt))


def _one_dim(module: str, keys: dict[str, tuple[Shape, Shape]]) -> Suggestion | None:
    """Any other tensor that differs in one dim only: pad (target's init) or truncate."""
    adapt = {}
    for key, (s, t) in keys.items():
        differ = _differing(s, t)
        if len(differ) != 1 or differ[0] < 0:
            return None
        adapt[key] = _resize_spec(s[differ[0]], t[differ[0]], differ[0], "init")
    if not adapt:
        return None
    shapes = "; ".join(f"{quote(k)} {shape_text(s)} -> {shape_text(t)}" for k, (s, t) in keys.items())
    return Suggestion({"adapt": adapt}, "low", f"one dim differs: {shapes}", len(adapt))
