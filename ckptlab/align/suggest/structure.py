"""Conversions read from structure: what the two sides' names and shapes say when no
known conversion fits.

- a family of **transposed** weights: pairs matched by name whose 2-D shapes are each
  other's transpose (GPT-2's ``Conv1D`` stores ``(in, out)``), and beside them the
  *square* weights of the same blocks, whose shape cannot tell but whose siblings say it
  (GPT-2's ``attn.c_proj``: left alone it would load "exact" and be wrong);
- a **fused** tensor beside its parts: ``attn.qkv`` on one side, ``attn.q/k/v`` on the
  other, in the same module, whose rows add up (``chunk`` one way, ``cat`` the other);
- **conv 1x1 <-> linear**: ``(o, i, 1, 1)`` against ``(o, i)`` (``squeeze``/``unsqueeze``);
- an **order** alignment: what is left on both sides has the same shapes in the same
  order (a TorchScript export beside the same weights under other names). Order alone is
  a guess (``low``); with agreeing names it is ``medium``.

Each suggestion is one ``{"convert": [...]}`` fragment (or a ``map``), written with
``{i}`` placeholders per family of layers, and only ever between keys the names already
pair (or, for fused tensors, that sit in the same module): shapes that happen to agree
never move a tensor into an unrelated layer.
"""
from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence

from ckptlab.align.keyfold import fold_keys, fold_pattern
from ckptlab.align.types import Suggestion, shape_text
from ckptlab.recipe.parsing import quote

Shape = tuple[int, ...]
PLACEHOLDERS = ("i", "j", "k", "l", "m", "n")
MAX_PARTS = 4
FUSED_NAME = re.compile(r"qkv|kv|c_attn|in_proj|gate_up|fused|wqkv|w12|w13", re.IGNORECASE)


# -- families -------------------------------------------------------------------------------
def family(key: str) -> tuple[str, tuple[str, ...]]:
    """``h.3.attn.c_attn.weight`` -> (``h.{i}.attn.c_attn.weight``, ("3",)): numeric
    components become placeholders, named in order."""
    parts = key.split(".")
    values = []
    for pos, part in enumerate(parts):
        if part.isdigit() and len(values) < len(PLACEHOLDERS):
            parts[pos] = "{" + PLACEHOLDERS[len(values)] + "}"
            values.append(part)
    return ".".join(parts), tuple(values)


def block(key: str) -> str:
    """The family of the block a key sits in: the path through its last layer index
    (``transformer.h.{i}``), or its parent's parent when it has none."""
    parts = key.split(".")
    last = max((i for i, p in enumerate(parts) if p.isdigit()), default=None)
    path = ".".join(parts[:last + 1]) if last is not None else ".".join(parts[:-2])
    return family(path)[0]


def transposed(source: Shape, target: Shape) -> bool:
    return len(source) == 2 and len(target) == 2 and source != target and source == target[::-1]


def square(shape: Shape) -> bool:
    return len(shape) == 2 and shape[0] == shape[1]


def _pattern_regex(pattern: str) -> re.Pattern:
    return re.compile(re.sub(r"\\\{[a-z]\\\}", r"[^.]+", re.escape(pattern)) + r"\Z")


def family_entries(members: Sequence[tuple[tuple[str, ...], tuple[str, ...]]], ops: list,
                   free_sources: Iterable[str]) -> list[dict]:
    """``convert`` entries for (source keys, target keys) groups that all take ``ops``:
    one entry per family when the layer indices agree on both sides and the family's
    pattern matches no other source key; literal keys otherwise."""
    by_family: dict[tuple, list[tuple[tuple[str, ...], tuple[str, ...]]]] = defaultdict(list)
    literal: list[tuple[tuple[str, ...], tuple[str, ...]]] = []
    for sources, targets in members:
        s_fam = [family(s) for s in sources]
        t_fam = [family(t) for t in targets]
        values = {v for _, v in s_fam} | {v for _, v in t_fam}
        if len(values) == 1:
            by_family[(tuple(p for p, _ in s_fam), tuple(p for p, _ in t_fam))].append((sources, targets))
        else:
            literal.append((sources, targets))
    free = list(free_sources)
    entries = []
    for (s_pats, t_pats), group in by_family.items():
        regex = _pattern_regex(s_pats[0])
        claimed = {s for sources, _ in group for s in sources}
        if sum(1 for k in free if regex.match(k)) != sum(1 for s in claimed if regex.match(s)):
            literal.extend(group)  # the pattern would take keys outside this family
            continue
        entries.append(_entry(s_pats, t_pats, ops))
    entries.extend(_entry(sources, targets, ops) for sources, targets in literal)
    return entries


def _entry(sources: Sequence[str], targets: Sequence[str], ops: list) -> dict:
    return {"from": sources[0] if len(sources) == 1 else list(sources),
            "to": targets[0] if len(targets) == 1 else list(targets), "ops": list(ops)}


# -- the stage ------------------------------------------------------------------------------
def structure_suggestions(state) -> list[Suggestion]:
    """Transposed families, fused tensors beside their parts, conv 1x1 <-> linear (all
    ``medium``), on a ``ckptlab.align.suggest.state.State``."""
    out = []
    for finder in (_transposed_family, _fused, _conv_linear):
        found = finder(state)
        if found is not None:
            out.append(found)
            state = state.with_fragment(found.rule)
    return out


def _name_pairs(state) -> dict[str, str]:
    """Target key -> the one source key its name pairs it with (no conversion, no map);
    once per state (two finders ask it of the same one; callers only read it)."""
    if "name_pairs" not in state._memo:
        converted, mapped = state.converted, state.mapped
        state._memo["name_pairs"] = {t: s[0] for t, s in state.candidates().items()
                                     if len(s) == 1 and t not in converted and t not in mapped}
    return state._memo["name_pairs"]


def _free_sources(state) -> list[str]:
    return [k for k in state.source_shapes if k not in state.claimed]


def _transposed_family(state) -> Suggestion | None:
    pairs = _name_pairs(state)
    source_shapes, target_shapes = state.source_shapes, state.target_shapes
    flipped = {t: s for t, s in pairs.items() if transposed(source_shapes[s], target_shapes[t])}
    if not flipped:
        return None
    blocks = {block(t) for t in flipped}
    squares = {t: s for t, s in pairs.items()
               if t not in flipped and square(state.target_shapes[t]) and state.source_shapes[s] == state.target_shapes[t]
               and t.rpartition(".")[2] == "weight" and block(t) in blocks}
    members = [((s,), (t,)) for t, s in {**flipped, **squares}.items()]
    entries = family_entries(members, ["transpose"], _free_sources(state))
    shown = fold_pattern(flipped)
    some = next(iter(flipped))
    reason = (f"{len(flipped)} weights matched by name are stored transposed ({quote(shown)}: "
              f"{shape_text(state.source_shapes[flipped[some]])} vs {shape_text(state.target_shapes[some])}), "
              "as GPT-2's Conv1D stores (in, out) where nn.Linear holds (out, in): transpose them")
    if squares:
        reason += (f"; also the square {quote(fold_pattern(squares))} of the same blocks: its shape cannot tell, "
                   "but its siblings are transposed, so loaded as is it would be wrong")
    return Suggestion({"convert": entries}, "medium", reason, len(members))


def _split(key: str) -> tuple[str, str, str] | None:
    parts = key.rsplit(".", 2)
    return (parts[0], parts[1], parts[2]) if len(parts) == 3 else None


def _stem(name: str) -> str:
    return re.sub(r"_?(proj|linear|lin|fc)$", "", name.lower())


def _fused_name_fits(fused: str, parts: Sequence[str]) -> bool:
    """``qkv`` for q/k/v, ``gate_up_proj`` for gate_proj/up_proj, ``wqkv`` for wq/wk/wv."""
    stems = [_stem(p) for p in parts]
    low = fused.lower()
    initials = "".join(s[-1:] if s.startswith("w") and len(s) == 2 else s[:1] for s in stems)
    return bool(initials) and (initials in low or all(s and s in low for s in stems))


def _runs(keys: list[str], shapes: dict[str, Shape], whole: Shape) -> list[list[str]]:
    """Consecutive runs of 2..MAX_PARTS keys whose shapes stack along dim 0 to ``whole``."""
    out = []
    for start in range(len(keys)):
        rows = 0
        for end in range(start, min(start + MAX_PARTS, len(keys))):
            shape = shapes[keys[end]]
            if len(shape) != len(whole) or shape[1:] != whole[1:]:
                break
            rows += shape[0] if shape else 0
            if end > start and rows == whole[0]:
                out.append(keys[start:end + 1])
            if rows >= whole[0]:
                break
    return out


def _pick(runs: list[list[str]], fused: str, slot_size: int) -> list[str] | None:
    named = [r for r in runs if _fused_name_fits(fused, [_split(k)[1] for k in r])]
    if len(named) == 1:
        return named[0]
    if not named and len(runs) == 1 and len(runs[0]) == slot_size:
        return runs[0]  # every unfed part of the module, and nothing else, adds up
    return None


def _fused(state) -> Suggestion | None:
    sources, targets = state.unexplained()  # current name -> source key; unfed target keys
    t_slots: dict[tuple[str, str], list[str]] = defaultdict(list)
    for t in state.target_order:
        if t in targets and _split(t):
            parent, _, leaf = _split(t)
            t_slots[(parent, leaf)].append(t)
    s_slots: dict[tuple[str, str], list[str]] = defaultdict(list)
    for name in sources:
        if _split(name):
            parent, _, leaf = _split(name)
            s_slots[(parent, leaf)].append(name)
    split_members, cat_members, cat_names = [], [], []
    used_t, used_s = set(), set()
    for (parent, leaf), names in s_slots.items():
        parts = [t for t in t_slots.get((parent, leaf), ()) if t not in used_t]
        for name in names:  # one source tensor -> several target parts (chunk)
            shape = state.source_shapes[sources[name]]
            if not shape or len(parts) < 2:
                continue
            run = _pick(_runs(parts, state.target_shapes, shape), _split(name)[1], len(parts))
            if run:
                split_members.append(((sources[name],), tuple(run)))
                used_t.update(run)
                used_s.add(name)
    for (parent, leaf), tkeys in t_slots.items():
        names = [n for n in s_slots.get((parent, leaf), ()) if n not in used_s]
        for tkey in tkeys:  # several source parts -> one target tensor (cat)
            if tkey in used_t or len(names) < 2:
                continue
            shapes = {n: state.source_shapes[sources[n]] for n in names}
            run = _pick(_runs(names, shapes, state.target_shapes[tkey]), _split(tkey)[1], len(names))
            if run:
                cat_members.append((tuple(sources[n] for n in run), (tkey,)))
                cat_names.append(run)  # the names as renamed (the source keys may lack the module)
                used_s.update(run)
    if not split_members and not cat_members:
        return None
    free = _free_sources(state)
    entries = family_entries(split_members, [{"chunk": 0}], free) + family_entries(cat_members, [{"cat": 0}], free)
    described = []
    if split_members:
        s, t = split_members[0]
        described.append(f"{quote(fold_pattern([m[0][0] for m in split_members]))} is fused: its rows are "
                         f"{', '.join(quote(_split(k)[1]) for k in t)} stacked (chunk along dim 0)")
    if cat_members:
        described.append(f"{', '.join(quote(_split(k)[1]) for k in cat_names[0])} are the parts of the fused "
                         f"{quote(fold_pattern([m[1][0] for m in cat_members]))} (cat along dim 0)")
    n = len(split_members) + len(cat_members)
    fused = [m[0][0] for m in split_members] + [m[1][0] for m in cat_members]
    order = [_split(k)[1] for k in (split_members[0][1] if split_members else cat_names[0])]
    shown = ", ".join(quote(f.pattern) for f in fold_keys(fused)[:2]) + (" ..." if len(fold_keys(fused)) > 2 else "")
    caveat = (f"the fused {shown} was split or joined by structure alone, assuming its rows are "
              f"{', '.join(order)} in that order, one block each; shapes cannot rule out another order (e.g. k, v, q "
              "as HF CLIP declares) nor a per-head interleaved layout (GPT-NeoX, BLOOM, Falcon): settle it with a "
              "recipe, a known conversion or a model config, and check it with --prove")
    return Suggestion({"convert": entries}, "medium", "; ".join(described) + f" ({n} tensor{'s' if n > 1 else ''}, "
                      "same module on both sides, rows add up)", sum(len(m[0]) + len(m[1]) - 1
                                                                      for m in split_members + cat_members),
                      caveat=caveat)


def _conv_linear(state) -> Suggestion | None:
    pairs = _name_pairs(state)
    squeeze, unsqueeze = [], []
    for t, s in pairs.items():
        ss, ts = state.source_shapes[s], state.target_shapes[t]
        if len(ss) > len(ts) and ss[:len(ts)] == ts and all(d == 1 for d in ss[len(ts):]) and len(ts) == 2:
            squeeze.append(((s,), (t,), len(ss)))
        elif len(ts) > len(ss) and ts[:len(ss)] == ss and all(d == 1 for d in ts[len(ss):]) and len(ss) == 2:
            unsqueeze.append(((s,), (t,), len(ts)))
    if not squeeze and not unsqueeze:
        return None
    free = _free_sources(state)
    entries = []
    for rank in (3, 4):
        entries += family_entries([m[:2] for m in squeeze if m[2] == rank],
                                  [{"squeeze": d} for d in range(rank - 1, 1, -1)], free)
        entries += family_entries([m[:2] for m in unsqueeze if m[2] == rank],
                                  [{"unsqueeze": d} for d in range(2, rank)], free)
    shown = fold_pattern([m[1][0] for m in squeeze + unsqueeze])
    how = "1x1 conv weights where the target has linear ones (squeeze)" if squeeze else \
        "linear weights where the target has 1x1 convs (unsqueeze)"
    return Suggestion({"convert": entries}, "medium",
                      f"{len(squeeze) + len(unsqueeze)} {how}: {quote(shown)}; the same numbers, other rank",
                      len(squeeze) + len(unsqueeze))


# -- order ----------------------------------------------------------------------------------
def order_suggestion(state) -> Suggestion | None:
    """Pair what is left on both sides by position when the shapes agree all along."""
    from ckptlab.align.suggest.rename import similar_names

    sources, targets = state.unexplained()
    if len(sources) < 2 or len(sources) != len(targets):
        return None
    left = set(sources.values())
    s_list = [k for k in state.source_shapes if k in left]
    t_list = [t for t in state.target_order if t in targets]
    if any(state.source_shapes[s] != state.target_shapes[t] for s, t in zip(s_list, t_list)):
        return None
    names = {skey: name for name, skey in sources.items()}

    def agree(s: str, t: str) -> bool:
        a, b = names[s].split("."), t.split(".")
        return a[-1] == b[-1] and (len(a) < 2 or len(b) < 2 or similar_names(a[-2], b[-2]))

    named = all(agree(s, t) for s, t in zip(s_list, t_list))
    distinct = len({state.source_shapes[s] for s in s_list})
    reason = (f"the {len(s_list)} unmatched keys on each side have the same shapes in the same order "
              f"({distinct} distinct shape{'s' if distinct != 1 else ''})")
    reason += ("; their names agree too" if named else
               "; names do not agree, so order is the only evidence: check it (a TorchScript export "
               "or a re-saved copy keeps the order)")
    caveat = (f"{len(s_list)} keys were paired by their order in the files (same shapes all along); names "
              "cannot confirm every pair: check it with --prove")
    return Suggestion({"map": dict(zip(t_list, s_list))}, "medium" if named else "low", reason, len(s_list),
                      caveat=caveat)
