"""Alignment: for every target key, which source tensor feeds it, with what status and why.

``align`` applies a recipe (and, per ``auto``, the suggestions of ``ckptlab.align.suggest``)
to the source keys and answers row by row. Nothing here reads tensor bytes: keys,
shapes and dtypes are enough, so aligning a 20,000-key pair stays well under a second.
Two sources onto one target are a ``conflict`` row, never a silent overwrite; a load that
feeds fewer than half of the target keys sets a loud warning (``warnings``, one line each).
A recipe's ``convert`` entries claim their source and target keys before the rules (the
explicit map still wins): each target they feed is one ``converted`` row listing every source.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ckptlab.vocab import Status
from ckptlab.io.checkpoint import Checkpoint
from ckptlab.recipe.groups import Group, Matches, unbind_clash
from ckptlab.errors import AdaptError, RecipeError
from ckptlab.io.tensor_info import dtype_name
from ckptlab.recipe.adapt_spec import AdaptSpec
from ckptlab.recipe.model import Recipe
from ckptlab.recipe.parsing import quote
from ckptlab.align.types import (  # noqa: F401  (re-exported: the old module's names)
    AUTO_LEVELS, CONFIDENCES, EXPLICIT, FED_STATUSES, STATUSES, Alignment, Row, Shape, Suggestion, shape_text,
)
from ckptlab.io.sources import as_checkpoint
from ckptlab.io.ties import with_declared_ties
from ckptlab.io.weight_layout import weight_layouts
from ckptlab.align.gc_pause import gc_paused
from ckptlab.align.group_memo import remembering
from ckptlab.align.rule_scope import find_groups_among, rename
from ckptlab.align.warnings import orientation_warnings

# -- the engine ---------------------------------------------------------------------------
@dataclass
class Labels:
    """Where each part of an effective recipe came from, for the rows' reasons.

    ``rules`` maps a rule position (0-based) to e.g. ``"suggested, high"`` (default
    ``"rule N"``); ``map``/``adapt`` map a target key to a label (default explicit);
    ``convert`` maps a convert entry's position (1-based) to a label (default none).
    """

    rules: dict[int, str] = field(default_factory=dict)
    map: dict[str, str] = field(default_factory=dict)
    adapt: dict[str, str] = field(default_factory=dict)
    convert: dict[int, str] = field(default_factory=dict)


@dataclass
class Matching:
    """Which source keys land on which target keys under a recipe (no rows yet).

    ``candidates``: target key -> [(source key, why)]; ``renamed``: source key ->
    (new key or None, why); ``mapped``: target keys fed by the explicit map;
    ``map_missing``: target key -> a source key the map names but the source lacks;
    ``map_unknown``: source key -> a target key the map names but the target lacks;
    ``converted``: target key -> [(group, output index)] of the conversions that feed it;
    ``conversions``: every group found and the source keys they claim.
    """

    candidates: dict[str, list[tuple[str, str]]]
    renamed: dict[str, tuple[str | None, str]]
    mapped: dict[str, str]
    map_missing: dict[str, str]
    map_unknown: dict[str, str] = field(default_factory=dict)
    converted: dict[str, list[tuple[Group, int]]] = field(default_factory=dict)
    conversions: Matches = field(default_factory=Matches)


def match(source_keys: Iterable[str], target: Checkpoint | Mapping, recipe: Recipe,
          labels: Labels | None = None, source_shapes: Mapping[str, tuple] | None = None) -> Matching:
    """Apply the recipe's conversions, rules and map; group the source keys by the target
    key they hit. ``source_shapes`` (key -> shape) is needed when the recipe converts."""
    labels = labels or Labels()
    source_keys = list(source_keys)
    conversions = Matches()
    if recipe.convert:
        if source_shapes is None:
            raise RecipeError("convert: matching conversions needs the source's shapes")
        conversions = find_groups_among(recipe.convert, source_shapes)
        clash = unbind_clash(conversions.groups, target.keys())
        if clash:
            raise RecipeError(clash)
    claimed = conversions.claimed
    renamed = rename([k for k in source_keys if k not in claimed] if claimed else source_keys, recipe, labels.rules)
    candidates: dict[str, list[tuple[str, str]]] = {}
    mapped: dict[str, str] = {}
    map_missing: dict[str, str] = {}
    known = set(source_keys) if claimed else renamed  # source keys, for the explicit map
    map_unknown: dict[str, str] = {}  # source key -> target key the map names but the target lacks
    for tkey, skey in recipe.map.items():
        if tkey not in target:
            map_unknown.setdefault(skey, tkey)
            continue
        if skey in known:
            mapped[tkey] = skey
        else:
            map_missing[tkey] = skey
    converted: dict[str, list[tuple[Group, int]]] = {}
    in_target = set(target.keys()) if conversions.groups else ()  # (a Checkpoint's `in` is a call per key)
    for group in conversions.groups:
        for i, tkey in enumerate(group.targets):
            if tkey in in_target and tkey not in mapped and tkey not in map_missing:
                converted.setdefault(tkey, []).append((group, i))
    for skey, (new, why) in renamed.items():
        if new is None or new not in target or new in mapped or new in map_missing or new in converted:
            continue
        candidates.setdefault(new, []).append((skey, why))
    for tkey, skey in mapped.items():
        tag = labels.map.get(tkey, EXPLICIT)
        candidates[tkey] = [(skey, f"map ({tag})")]
    return Matching(candidates, renamed, mapped, map_missing, map_unknown, converted, conversions)


def _preview(source_shape: Shape, target_shape: Shape, spec: AdaptSpec, key: str) -> str | None:
    """None when ``spec`` turns ``source_shape`` into ``target_shape``; else why not."""
    try:
        from ckptlab.recipe.adapters import preview_shape
    except ImportError:  # pragma: no cover - the adapt module is built in parallel
        return None if _plausible(source_shape, target_shape, spec) else "cannot produce the target shape"
    try:
        got = tuple(preview_shape(tuple(source_shape), tuple(target_shape), spec, key=key))
    except AdaptError as exc:  # "cannot adapt 'k' from S to T with op: why": the row has the rest
        return exc.message.rsplit(": ", 1)[-1]
    return None if got == tuple(target_shape) else f"gives {shape_text(got)}"


def _plausible(source_shape: Shape, target_shape: Shape, spec: AdaptSpec) -> bool:
    if spec.op == "reinit":
        return True
    if len(source_shape) != len(target_shape):
        return False
    differ = [d for d, (s, t) in enumerate(zip(source_shape, target_shape)) if s != t]
    if spec.op == "resize":
        return True
    if len(differ) != 1 or (spec.dim is not None and spec.dim % max(len(target_shape), 1) != differ[0]):
        return False
    s, t = source_shape[differ[0]], target_shape[differ[0]]
    return {"pad": t > s, "truncate": t < s, "sum": t > 0 and s % t == 0}[spec.op]


def shape_difference(source_shape: Shape, target_shape: Shape) -> str:
    """``shape (10, 3, 3, 3) vs (10, 4, 3, 3): dim 1 differs``."""
    head = f"shape {shape_text(source_shape)} vs {shape_text(target_shape)}"
    if len(source_shape) != len(target_shape):
        return f"{head}: rank {len(source_shape)} vs {len(target_shape)}"
    differ = [str(d) for d, (s, t) in enumerate(zip(source_shape, target_shape)) if s != t]
    return f"{head}: dim {differ[0]} differs" if len(differ) == 1 else f"{head}: dims {', '.join(differ)} differ"


def _join(*parts: str) -> str:
    return "; ".join(p for p in parts if p)


def build_rows(source: Checkpoint, target: Checkpoint, recipe: Recipe, labels: Labels | None = None) -> list[Row]:
    """Every target key in target order, then every source key that feeds nothing."""
    labels = labels or Labels()
    s_info = {key: source.info(key) for key in source.keys()}
    shapes = {key: tuple(info.shape) for key, info in s_info.items()} if recipe.convert else None
    m = match(source.keys(), target, recipe, labels, shapes)
    rows: list[Row] = []
    feeding: set[str] = set()
    names: dict = {}  # dtype -> "float32", computed once per dtype

    def name_of(dtype) -> str:
        if dtype not in names:
            names[dtype] = dtype_name(dtype)
        return names[dtype]

    ties = _tie_partners(target)
    info, converted, candidates, adapt = target.info, m.converted, m.candidates, recipe.adapt  # (per key: locals)
    for tkey in target.keys():
        t = info(tkey)
        t_shape, t_dtype = tuple(t.shape), name_of(t.dtype)
        feeds = converted.get(tkey)
        if feeds is not None:
            rows.append(_converted_row(tkey, t_shape, t_dtype, feeds, s_info, name_of, labels.convert,
                                       adapt.get(tkey)))
            for group, _ in feeds:
                feeding.update(group.sources)
            continue
        cands = candidates.get(tkey, [])
        spec = adapt.get(tkey)
        if not cands and tkey in ties:
            cands, spec = _fed_through_tie(tkey, ties[tkey], m, recipe, spec)
        if not cands:
            if recipe.keeps_target(tkey):
                rows.append(Row(tkey, None, Status.MISSING, t_shape, None, t_dtype, None,
                                f"kept on purpose: the target's own value (keep_target {quote(recipe.keep_target)})",
                                kept=True))
            else:
                rows.append(Row(tkey, None, Status.MISSING, t_shape, None, t_dtype, None, _missing_reason(tkey, m)))
            continue
        if len(cands) > 1:
            listed = ", ".join(f"{quote(s)} ({why or 'same key'})" for s, why in cands)
            sources = tuple(s for s, _ in cands)
            feeding.update(sources)
            rows.append(Row(tkey, None, Status.CONFLICT, t_shape, None, t_dtype, None,
                            f"{len(cands)} source keys map here: {listed}", sources=sources))
            continue
        skey, why = cands[0]
        feeding.add(skey)
        s = s_info[skey]
        s_shape, s_dtype = tuple(s.shape), name_of(s.dtype)
        dtype_note = f"dtype {s_dtype} vs {t_dtype} (the merge keeps {t_dtype})" if s_dtype != t_dtype else ""
        if s_shape == t_shape and (spec is None or spec.op != "reinit"):
            reason = why if skey != tkey else "same key and shape"  # (_join of one part: itself)
            if dtype_note:
                reason = _join(reason, dtype_note)
            rows.append(Row(tkey, skey, "exact" if skey == tkey else "renamed", t_shape, s_shape, t_dtype, s_dtype,
                            reason, (skey,)))
            continue
        if spec is None:
            reason = _join(why, shape_difference(s_shape, t_shape), dtype_note)
            rows.append(Row(tkey, skey, Status.MISMATCH, t_shape, s_shape, t_dtype, s_dtype, reason, (skey,)))
            continue
        tag = labels.adapt.get(tkey, EXPLICIT)
        problem = _preview(s_shape, t_shape, spec, tkey)
        if problem is None:
            adapt_why = f"adapt {spec.describe()}: {shape_text(s_shape)} -> {shape_text(t_shape)} ({tag})"
            rows.append(Row(tkey, skey, Status.ADAPTED, t_shape, s_shape, t_dtype, s_dtype,
                            _join(why, adapt_why, dtype_note), (skey,), spec))
        else:
            reason = _join(why, shape_difference(s_shape, t_shape), f"adapt {spec.describe()} does not fit: {problem}")
            rows.append(Row(tkey, skey, Status.MISMATCH, t_shape, s_shape, t_dtype, s_dtype, reason, (skey,), spec))
    for skey in source.keys():
        if skey in feeding:
            continue
        s = s_info[skey]
        rows.append(Row(None, skey, Status.UNUSED, None, tuple(s.shape), None, name_of(s.dtype),
                        _unused_reason(skey, m, target, labels), (skey,)))
    return _note_split_ties(rows, target, source) if ties else rows


def _converted_row(tkey: str, t_shape: Shape, t_dtype: str, feeds: list[tuple[Group, int]],
                   s_info: Mapping, name_of, tags: Mapping[int, str], spec: AdaptSpec | None = None) -> Row:
    """One target fed by a conversion: ``converted`` when the ops give its shape, ``adapted``
    when an ``adapt`` entry fits what they give to the target (a converted head grown to more
    classes), else a ``mismatch`` naming both; two conversions onto one target are a ``conflict``."""
    if len(feeds) > 1:
        sources = tuple(s for g, _ in feeds for s in g.sources)
        listed = "; ".join(g.describe(tkey) for g, _ in feeds)
        return Row(tkey, None, Status.CONFLICT, t_shape, None, t_dtype, None,
                   f"{len(feeds)} conversions feed this key: {listed}", sources=sources)
    group, i = feeds[0]
    why = group.describe(tkey) + (f" ({tags[group.index]})" if group.index in tags else "")
    single = group.sources[0] if len(group.sources) == 1 else None
    s_shape = None
    if single:
        s = s_info[single]
        s_shape, s_dtype = tuple(s.shape), name_of(s.dtype)
    else:
        s_dtypes = sorted({name_of(s_info[s].dtype) for s in group.sources})
        s_dtype = s_dtypes[0] if len(s_dtypes) == 1 else "/".join(s_dtypes)
    got = tuple(group.target_shapes[i])
    dtype_note = f"dtype {s_dtype} vs {t_dtype} (the merge keeps {t_dtype})" if s_dtype != t_dtype else ""
    if got != t_shape and spec is not None and _preview(got, t_shape, spec, tkey) is None:
        return Row(tkey, single, Status.ADAPTED, t_shape, got, t_dtype, s_dtype,
                   _join(why, f"then {spec.describe()} {shape_text(got)} -> {shape_text(t_shape)}", dtype_note),
                   group.sources, adapt=spec, convert=group)
    if got != t_shape:
        reason = _join(why, f"gives {shape_text(got)} but the target is {shape_text(t_shape)}")
        return Row(tkey, single, Status.MISMATCH, t_shape, s_shape, t_dtype, s_dtype, reason, group.sources,
                   convert=group)
    return Row(tkey, single, Status.CONVERTED, t_shape, s_shape, t_dtype, s_dtype,
               f"{why}; {dtype_note}" if dtype_note else why, group.sources, convert=group)  # (_join: why is never empty)


def _note_split_ties(rows: list[Row], target: Checkpoint, source: Checkpoint) -> list[Row]:
    """Names of one tied target tensor fed by different source tensors: loading both into
    the model keeps only the one loaded last, so each such row says so."""
    same_in_source = {key: i for i, group in enumerate(source.aliases()) for key in group}
    by_target = {row.target: i for i, row in enumerate(rows) if row.target is not None}
    out = list(rows)
    for group in target.aliases():
        fed = [rows[by_target[k]] for k in group if k in by_target and rows[by_target[k]].fed]
        origins = {same_in_source.get(r.source, r.source) for r in fed}
        if len(origins) < 2:
            continue
        for row in fed:
            others = ", ".join(f"{quote(r.target)} <- {quote(r.source)}" for r in fed if r is not row)
            note = f"tied in the target to {others}: a model that ties them keeps whichever loads last"
            out[by_target[row.target]] = replace(row, reason=_join(row.reason, note))
    return out


def _tie_partners(target: Checkpoint) -> dict[str, tuple[str, ...]]:
    """Target key -> the other names of the same tensor (tied weights such as lm_head and
    embed_tokens): loading one name into the model sets them all."""
    return {key: tuple(k for k in group if k != key) for group in target.aliases() for key in group}


def _fed_through_tie(tkey: str, partners: tuple[str, ...], m: Matching, recipe: Recipe,
                     spec: AdaptSpec | None) -> tuple[list[tuple[str, str]], AdaptSpec | None]:
    """A target key no source names, tied to one that is fed, takes that source too.

    Left missing it would keep the target's own (random) value, and a model that ties the
    two would load that value last and overwrite the pretrained one: checkpoints saved
    without the duplicate (safetensors, transformers) must feed both names.
    """
    fed = [(p, m.candidates[p][0][0]) for p in partners if len(m.candidates.get(p, ())) == 1]
    if len({skey for _, skey in fed}) != 1:
        return [], spec
    partner, skey = fed[0]
    return [(skey, f"tied to {quote(partner)} in the target, which {quote(skey)} feeds")], (
        spec if spec is not None else recipe.adapt.get(partner))


def _missing_reason(tkey: str, m: Matching) -> str:
    if tkey in m.map_missing:
        return f"map names {quote(m.map_missing[tkey])}, which the source does not have"
    if tkey in m.renamed:  # the source has this very key, but the rules sent it elsewhere
        new, why = m.renamed[tkey]
        if new is None:
            return f"no source key maps here (the source's {quote(tkey)} was {why})"
        return f"no source key maps here (the source's {quote(tkey)} was renamed to {quote(new)})"
    return "no source key maps here"


def _unused_reason(skey: str, m: Matching, target: Checkpoint, labels: Labels) -> str:
    group = m.conversions.claimed.get(skey)
    if group is not None:
        by_map = [t for t in group.targets if t in m.mapped or t in m.map_missing]
        if by_map:
            return f"convert {group.index} would feed {quote(by_map[0])}, but the map feeds it instead"
        shown = ", ".join(quote(t) for t in group.targets[:3]) + (" ..." if len(group.targets) > 3 else "")
        return f"convert {group.index} sends it to {shown}, which the target does not have"
    new, why = m.renamed[skey]
    if new in m.converted:
        return f"{quote(new)} is fed by convert {m.converted[new][0][0].index} instead"
    if new is None:
        return why
    if new in m.mapped:
        return f"{quote(new)} is fed by map ({labels.map.get(new, EXPLICIT)}) instead"
    if new in m.map_missing:
        return f"the map feeds {quote(new)} from {quote(m.map_missing[new])} instead (the source has no such key)"
    if skey in m.map_unknown:
        return f"the map sends it to {quote(m.map_unknown[skey])}, which the target does not have"
    if new != skey:
        return f"renamed to {quote(new)}, which the target does not have ({why})"
    return "the target has no such key"


# -- align --------------------------------------------------------------------------------
def _open_source(source: Any, container: str | None) -> Checkpoint:
    """The source as a Checkpoint, in ``container`` when the recipe names one."""
    if container is None:
        return as_checkpoint(source)
    if isinstance(source, (str, Path)):
        return as_checkpoint(source, container=container)
    if isinstance(source, Checkpoint) and source.path and source.container != container:
        from ckptlab.io.opener import open as open_checkpoint

        return open_checkpoint(source.path, container=container)
    return as_checkpoint(source)


def apply_suggestions(recipe: Recipe, suggestions: list[Suggestion], auto: str) -> tuple[Recipe, Labels, list[Suggestion]]:
    """The recipe with the suggestions ``auto`` accepts, the labels for the rows' reasons,
    and the suggestions marked ``applied``."""
    if auto not in AUTO_LEVELS:
        raise RecipeError(f"auto: expected one of {', '.join(AUTO_LEVELS)}, got {auto!r}")
    # low guesses (a head truncated, rows chosen by order alone) are never applied by any level
    accept = {"none": (), "high": ("high",), "all": ("high", "medium")}[auto]
    labels, marked, effective = Labels(), [], recipe
    for s in suggestions:
        take = s.applied or s.confidence in accept
        if take and not s.applied and _claimed(effective) & _convert_sources(s.rule):
            take = False  # another applied suggestion converts these keys already (its entries would match nothing)
        if take and not s.applied:
            if "container" not in s.rule:
                before, converts = len(effective.rules), len(effective.convert)
                effective = effective.merged(s.rule)
                labels.rules.update({i: s.label for i in range(before, len(effective.rules))})
                labels.convert.update({i: s.label for i in range(converts + 1, len(effective.convert) + 1)})
            else:
                effective = effective.merged(s.rule)
            for key in s.rule.get("map", {}):
                labels.map[key] = s.label
            for key in s.rule.get("adapt", {}):
                labels.adapt[key] = s.label
        elif take and "container" in s.rule and effective.container is None:
            effective = effective.with_container(s.rule["container"])
        marked.append(replace(s, applied=bool(take)))
    return effective, labels, marked


def _claimed(recipe: Recipe) -> set[str]:
    """The source patterns the recipe's conversions already take."""
    return {pattern for conversion in recipe.convert for pattern in conversion.sources}


def _convert_sources(rule: Mapping[str, Any]) -> set[str]:
    froms = [entry.get("from") for entry in rule.get("convert", ()) if isinstance(entry, Mapping)]
    return {p for f in froms for p in ([f] if isinstance(f, str) else f or ())}


def alignment_warnings(rows: list[Row], n_target: int, suggestions: list[Suggestion],
                       notes: Iterable[str] = (), loud: str | None | bool = False) -> list[str]:
    """Every warning of an alignment, the loudest first (one line each): few keys fed, what
    the suggestions could not do (a parameter missing), then the structural ones
    (``ckptlab.align.warnings``: partly fed modules, a square weight beside transposed siblings,
    an adapter on a fused or transposed tensor). ``loud``: ``fed_warning`` of these rows when the
    caller has it already (False: work it out)."""
    from ckptlab.align.warnings import structural_warnings

    if loud is False:
        loud = fed_warning(rows, n_target, suggestions)
    caveats = [s.caveat for s in suggestions if s.applied and s.caveat]  # guesses, said once applied
    return [w for w in (loud, *notes, *caveats, *structural_warnings(rows)) if w]


def fed_warning(rows: list[Row], n_target: int, suggestions: list[Suggestion]) -> str | None:
    """A loud one-liner when fewer than half of the target keys are fed (always when none)."""
    fed = sum(row.status in FED_STATUSES for row in rows)
    n_target -= sum(row.kept for row in rows)  # kept on purpose: not expected from the source
    if n_target == 0 or (fed > 0 and 2 * fed >= n_target):
        return None
    text = f"only {fed} of {n_target} target keys are fed by the source"
    pending = [s for s in suggestions if not s.applied]
    if pending:
        best = min(pending, key=lambda s: (CONFIDENCES.index(s.confidence), -s.keys))
        fix = best.describe()
        if "container" in best.rule:  # a container alone renames nothing: name the rule it enables
            follow = [s for s in pending if s is not best and s.confidence == "high"]
            fix = " + ".join([fix, *(s.describe() for s in follow[:1])])
        if best.confidence == "low":  # a guess is no "best fix": say it is one
            return f"{text}; no confident fix, only a low guess: {fix} (explains {best.keys} keys; check it)"
        return f"{text}; best fix: {fix} ({best.confidence}, explains {best.keys} keys)"
    return f"{text}; no suggestion explains the rest"


def align(source: Any, target: Any, recipe: Any = None, auto: str = "high",
          params: Mapping[str, Any] | None = None) -> Alignment:
    """Say for every target key what will feed it, and why; see the module docstring.

    ``source``/``target``: a path, Checkpoint, mapping of tensors, nn.Module or model
    spec. ``recipe``: a Recipe, a dict or a path. ``auto``: which suggestions to apply.
    ``params``: values for the known conversions' parameters (``{"heads": 32}``), over
    those of the recipe and those read from a model's config or a config.json beside a file.
    The cyclic garbage collector is held off meanwhile (``gc_pause``: nothing here makes cycles),
    and a conversion's groups are found once for the call (``group_memo``).
    """
    with gc_paused(), remembering():
        return _align(source, target, recipe, auto, params)


def _align(source: Any, target: Any, recipe: Any, auto: str, params: Mapping[str, Any] | None) -> Alignment:
    if auto not in AUTO_LEVELS:
        raise RecipeError(f"auto: expected one of {', '.join(AUTO_LEVELS)}, got {auto!r}")
    given = Recipe.coerce(recipe)
    src = with_declared_ties(source, _open_source(source, given.container))  # a tied head the file left out
    tgt = as_checkpoint(target)
    from ckptlab.align.suggest.pipeline import suggest

    notes: list[str] = []
    sides = [(name, raw if _carries_config(raw) else ck) for name, raw, ck in
             (("source", source, src), ("target", target, tgt))]
    given_params = {**(getattr(given, "params", None) or {}), **dict(params or {})}
    suggestions = suggest(src, tgt, given, params=given_params, sides=sides, notes=notes)
    effective, labels, suggestions = apply_suggestions(given, suggestions, auto)
    if effective.container is not None and effective.container != src.container:
        src = with_declared_ties(source, _open_source(src, effective.container))
    rows = _note_restored_ties(build_rows(src, tgt, effective, labels), src)
    loud = fed_warning(rows, len(tgt), suggestions)
    warnings = alignment_warnings(rows, len(tgt), suggestions, notes, loud)
    warnings += orientation_warnings(rows, weight_layouts(source), weight_layouts(target))  # what classes say
    return Alignment(src, tgt, given, effective, rows, suggestions, warnings, fed_warning=loud)


def _note_restored_ties(rows: list[Row], source: Checkpoint) -> list[Row]:
    """Rows fed by a key the source holds only through a declared tie say so."""
    restored = getattr(source, "restored_ties", {})
    if not restored:
        return rows
    out = []
    for row in rows:
        hit = next((s for s in (row.sources or (row.source,)) if s in restored), None)
        if hit is not None and row.target is not None:
            partner, why = restored[hit]
            row = replace(row, reason=_join(row.reason, f"fed through the tie: {quote(hit)} is {quote(partner)} ({why})"))
        out.append(row)
    return out


def _carries_config(obj: Any) -> bool:
    """A model as given (its ``config``/``params`` name the head counts a conversion needs)."""
    return hasattr(obj, "state_dict") and (hasattr(obj, "config") or hasattr(obj, "params"))
