"""Stage 1: prefixes added, stripped or swapped (``module.``, ``model.``, ``attention_map.``).

High only when the prefix explains at least two keys and most keys under it, with identical
shapes and no conflict. Everything is hashed (prefix/suffix components): no all-pairs compare.
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from ckptlab.align.suggest.state import State, Stats
from ckptlab.align.types import Suggestion
from ckptlab.recipe.parsing import quote
from ckptlab.recipe.rules import Rule

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


# -- stage 1: prefixes --------------------------------------------------------------------
def _splits(name: str) -> list[tuple[str, str, int]]:
    """(prefix, rest, components of rest) for 0..MAX_PREFIX_DEPTH leading components (a list,
    not a generator: it runs for thousands of sampled names)."""
    components = name.count(".") + 1
    out = [("", name, components)]
    cut = -1
    for i in range(1, min(MAX_PREFIX_DEPTH, components - 1) + 1):
        cut = name.index(".", cut + 1)
        out.append((name[:cut + 1], name[cut + 1:], components - i))
    return out


def _prefix_counts(sources: dict[str, str], targets: set[str], state: State) -> Counter:
    """(source prefix, target prefix) -> how many key pairs with equal shapes it explains.

    Targets are indexed by every rest-after-a-prefix; each source looks its own rests up.
    A rest of one component ("weight") only counts when it is a whole key on one side,
    and a rest shared by many target keys is skipped: it explains nothing by itself.
    Only the rests some sampled source has are indexed (the rest would never be looked up).
    """
    names = list(sources)
    step = max(1, len(names) // COUNT_SAMPLE)  # counts only rank candidates; grading is exact
    sample = names[::step]
    splits = [(name, _splits(name)) for name in sample]
    wanted = {rest for _, parts in splits for _, rest, _ in parts}
    index: dict[str, list[tuple[str, str]]] = {}
    # _splits and _add, inline: this runs for every target key. A rest shared by more than
    # MAX_BUCKET target keys is skipped below whatever they are, so its list stops growing
    # there (``weight``: every target key otherwise)
    for tkey in targets:
        if tkey in wanted:
            hit = index.get(tkey)
            if hit is None:
                index[tkey] = [("", tkey)]
            elif len(hit) <= MAX_BUCKET:
                hit.append(("", tkey))
        cut = tkey.find(".")
        for _ in range(MAX_PREFIX_DEPTH):
            if cut == -1:
                break
            rest = tkey[cut + 1:]
            if rest in wanted:
                hit = index.get(rest)
                if hit is None:
                    index[rest] = [(tkey[:cut + 1], tkey)]
                elif len(hit) <= MAX_BUCKET:
                    hit.append((tkey[:cut + 1], tkey))
            cut = tkey.find(".", cut + 1)
    counts: Counter = Counter()
    source_shapes, target_shapes = state.source_shapes, state.target_shapes
    for name, parts in splits:
        shape = source_shapes[sources[name]]
        for a, rest, depth in parts:
            hits = index.get(rest)
            if not hits or len(hits) > MAX_BUCKET:
                continue
            for b, tkey in hits:
                if a == b or (depth < 2 and a and b) or _sibling_rename(a, b):
                    continue
                if target_shapes[tkey] == shape:
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
    state once the high ones are applied. Several stages ask it of the same state (the known
    conversions, the container, the pipeline): it is worked out once per state."""
    if "prefix" not in state._memo:
        found, after = _prefix_suggestions(state)
        # (None for "this state": a state holding itself would be a cycle only the collector frees)
        state._memo["prefix"] = (found, None if after is state else after)
    found, after = state._memo["prefix"]
    return list(found), state if after is None else after


def _prefix_suggestions(state: State) -> tuple[list[Suggestion], State]:
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


def _under(keys, prefix: str) -> int:
    """How many of ``keys`` start with ``prefix``."""
    if not prefix:
        return len(keys)
    return sum(1 for key in keys if key.startswith(prefix))


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
    under_a = _under(sources, a)
    under_b = _under(targets, b)
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
