"""The state every suggestion stage works on: source keys' current names under a recipe, and what they feed."""
from __future__ import annotations

from dataclasses import dataclass, field

from ckptlab.align.rule_scope import find_groups_among, passes_over, rename
from ckptlab.io.checkpoint import Checkpoint
from ckptlab.recipe.model import Recipe
from ckptlab.recipe.rules import Rule

Shape = tuple[int, ...]


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
    # what the stages ask of one state again and again (a State is never changed in place:
    # every change is a new one), so each is computed once: stats, unexplained, the prefix stage
    _memo: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def of(cls, source: Checkpoint, target: Checkpoint, recipe: Recipe) -> "State":
        target_shapes = _shapes(target)
        source_shapes = _shapes(source)
        state = cls({key: key for key in source_shapes}, source_shapes, target_shapes, target.keys(), {})
        if recipe.convert:
            state = state.with_conversions([c.to_dict() for c in recipe.convert])
        renamed = rename([k for k in source_shapes if k not in state.claimed], recipe)
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
        apply, passes = rule.apply, passes_over([rule])  # keys the rule cannot touch skip its regex
        if passes is None:
            names = {key: (None if new is None else apply(new)) for key, new in self.names.items()}
        else:
            names = {key: (new if new is None or passes(new) else apply(new)) for key, new in self.names.items()}
        return self._copy(names=names)

    def with_conversions(self, entries: list[dict]) -> "State":
        """The state once these ``convert`` entries (dicts) claim what they match; entries
        that match nothing or whose ops do not fit are skipped here (align names them)."""
        from ckptlab.recipe.conversion import Conversion

        convs = [Conversion.from_dict(e, i) for i, e in enumerate(entries, start=1)]
        free = {k: v for k, v in self.source_shapes.items() if k not in self.claimed}
        return self.with_groups(find_groups_among(convs, free, strict=False).groups)

    def with_groups(self, groups) -> "State":
        """The state once these conversion groups (in recipe order) claim their sources."""
        target_shapes = self.target_shapes
        # (comprehensions over every group, not statements per group: 20,000 of them; a target
        # two groups feed keeps its first place and takes the later one's sources, as in a loop)
        converted = {**self.converted, **{tkey: (tuple(group.sources), tuple(shape)) for group in groups
                                          for tkey, shape in zip(group.targets, group.target_shapes)
                                          if tkey in target_shapes}}
        sources = [skey for group in groups for skey in group.sources]
        names = {**self.names, **dict.fromkeys(sources)}
        return self._copy(names=names, converted=converted, claimed=frozenset(self.claimed).union(sources))

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
        targets, mapped, converted = self.target_shapes, self.mapped, self.converted
        for skey, new in self.names.items():
            if new in targets and new not in mapped and new not in converted:  # (None is no target key)
                hit = out.get(new)
                if hit is None:
                    out[new] = [skey]
                else:
                    hit.append(skey)
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
        """Target keys fed, mismatched, in conflict (computed once per state: never change it)."""
        if "stats" not in self._memo:
            self._memo["stats"] = self._stats()
        return self._memo["stats"]

    def _stats(self) -> "Stats":
        fed, mismatch, conflict = set(), set(), set()
        converted, mapped = self.converted, self.mapped
        source_shapes, target_shapes = self.source_shapes, self.target_shapes
        for tkey, skeys in self.candidates().items():
            if len(skeys) > 1:
                conflict.add(tkey)
                continue
            conv = converted.get(tkey) if converted else None  # shape_fed, inline: it runs per key
            shape = conv[1] if conv is not None and tkey not in mapped else source_shapes[skeys[0]]
            if shape == target_shapes[tkey]:
                fed.add(tkey)
            else:
                mismatch.add(tkey)
        return Stats(fed, mismatch, conflict)

    def unexplained(self) -> tuple[dict[str, str], set[str]]:
        """(current name -> source key) of sources feeding nothing, and unfed target keys
        (computed once per state; callers only read them)."""
        if "unexplained" not in self._memo:
            self._memo["unexplained"] = self._unexplained()
        return self._memo["unexplained"]

    def _unexplained(self) -> tuple[dict[str, str], set[str]]:
        cands = self.candidates()
        used = {s for skeys in cands.values() for s in skeys}
        sources = {new: skey for skey, new in self.names.items() if new is not None and skey not in used}
        targets = {t for t in self.target_shapes if t not in cands}
        return sources, targets


def _shapes(checkpoint: Checkpoint) -> dict[str, Shape]:
    """Key -> shape, in key order (``tuple`` of a tuple is the tuple itself: no copy)."""
    info = checkpoint.info
    return {key: tuple(info(key).shape) for key in checkpoint.keys()}


@dataclass
class Stats:
    fed: set[str]
    mismatch: set[str]
    conflict: set[str]
