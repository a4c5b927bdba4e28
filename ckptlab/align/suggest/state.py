"""The state every suggestion stage works on: source keys' current names under a recipe, and what they feed."""
from __future__ import annotations

from dataclasses import dataclass, field

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
        from ckptlab.recipe.conversion import Conversion
        from ckptlab.recipe.groups import find_groups

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
