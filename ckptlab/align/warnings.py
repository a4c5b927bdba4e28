"""Warnings an alignment's rows call for, beyond "few keys fed": the results that look
fine and are wrong.

- a module only partly fed: some of its tensors load, others keep the target's random
  init (an attention block rebuilt, a bias left behind);
- a tensor fed by name and shape whose siblings needed a transpose: a square weight
  (GPT-2's ``attn.c_proj``) loads "exact" and is wrong;
- an adapter that truncates or resizes a tensor the structure says is transposed or
  fused: the rows it keeps are not the ones the target means (``qkv`` truncated into
  ``k_proj`` keeps the query rows);
- a rotary-permuted weight whose bias is fed unpermuted (a hand recipe that renames the q/k
  biases while it permutes their weights: Qwen2-style biases end in the wrong rows);
- a position embedding padded or resized by an adapter: new positions are not interpolated, so
  the model's outputs change (``resample`` is the op that keeps them);
- whole modules left at their init beside a load that otherwise looks complete (a ResNet's
  shortcuts, a router, a tied head the file dropped), named on both sides, with the pairing
  when the unused source modules match them one to one by shapes.

Each warning is one line; a family of layers is folded (``h.{0..11}``) so twelve layers
give one warning, not twelve.
"""
from __future__ import annotations

import re
from collections import defaultdict

from ckptlab.vocab import FED_STATUSES, Status
from ckptlab.align.keyfold import fold_keys, fold_pattern
from ckptlab.recipe.parsing import quote
from ckptlab.align.suggest.structure import FUSED_NAME, block, square, transposed

MAX_LINES = 3           # folded lines per kind of warning
IGNORED_MISSING = ("num_batches_tracked",)   # a counter, not a weight: loading without it is fine
UNFED = ("missing", "mismatch")


def structural_warnings(rows) -> list[str]:
    """Every warning these rows call for, one line each (see the module docstring)."""
    targets = [r for r in rows if r.target is not None and not r.kept]
    unused = [r for r in rows if r.target is None and r.status == Status.UNUSED]
    return [*_partly_fed(targets), *_unfed_modules(targets, unused), *_square_beside_transposed(targets),
            *_adapter_on_structure(targets), *_rope_bias(targets), *_position_adapter(targets)]


def _module(key: str) -> str:
    return key.rpartition(".")[0]


def _folded(keys: list[str]) -> list[str]:
    return [f.pattern for f in fold_keys(keys)]


def _more(lines: list[str], what: str) -> list[str]:
    if len(lines) <= MAX_LINES:
        return lines
    return lines[:MAX_LINES] + [f"... and {len(lines) - MAX_LINES} more {what} like these"]


def _partly_fed(rows) -> list[str]:
    """Two levels: a layer whose tensors are partly loaded (``c_attn.weight`` not beside
    ``c_attn.bias``), and a module whose layers are partly loaded (``attention.o_proj``
    loaded, ``q_proj``/``k_proj``/``v_proj`` fresh). Layers that are only partly loaded
    themselves are said once, at the first level."""
    layers: dict[str, list] = defaultdict(list)
    for r in rows:  # (_module, inline: once per row)
        if not r.target.endswith(IGNORED_MISSING):
            layers[r.target.rpartition(".")[0]].append(r)
    partial: dict[tuple, list[str]] = defaultdict(list)  # (fed names, unfed names) -> modules
    state: dict[str, str] = {}  # layer -> "fed" | "unfed" | "mixed"
    for layer, members in layers.items():
        fed, unfed = [], []
        for r in members:  # (one loop, not two comprehensions per layer: most layers hold a tensor or two)
            if r.status in FED_STATUSES:  # (r.fed)
                fed.append(r)
            elif r.status in UNFED:
                unfed.append(r)
        state[layer] = "mixed" if fed and unfed else "fed" if fed else "unfed" if unfed else ""
        if layer and state[layer] == "mixed":
            leaf = lambda r: r.target[len(layer) + 1:]  # noqa: E731
            partial[(tuple(leaf(r) for r in fed), tuple(f"{leaf(r)} ({r.status})" for r in unfed))].append(layer)
    modules: dict[str, list[str]] = defaultdict(list)
    for layer in state:
        if layer and "." in layer:
            modules[layer.rpartition(".")[0]].append(layer)
    for module, children in modules.items():
        kinds = {state[c] for c in children}
        if "mixed" in kinds or not {"fed", "unfed"} <= kinds:
            continue
        name = lambda c: c[len(module) + 1:]  # noqa: E731
        partial[(tuple(name(c) for c in children if state[c] == "fed"),
                 tuple(name(c) for c in children if state[c] == "unfed"))].append(module)
    lines = []
    for (fed, unfed), found in partial.items():
        patterns = [quote(p) for p in _folded(found)]
        shown = ", ".join(patterns[:MAX_LINES]) + (f" and {len(patterns) - MAX_LINES} more" if len(patterns) > MAX_LINES
                                                   else "")
        what = "module" if len(patterns) == 1 else "modules"
        lines.append(f"{what} {shown} only partly fed: {', '.join(unfed)} not loaded beside {', '.join(fed)}; "
                     "the model mixes trained and fresh weights there")
    return _more(lines, "modules")


_FLIP_STATUSES = (Status.CONVERTED, Status.MISMATCH, Status.ADAPTED)


def _square_beside_transposed(rows) -> list[str]:
    flipped_blocks: dict[str, list[str]] = defaultdict(list)
    for r in rows:  # (the status first: the cheap test, and most rows are exact or renamed)
        if r.status in _FLIP_STATUSES and r.source_shape is not None and transposed(
                tuple(r.source_shape), tuple(r.target_shape)):
            flipped_blocks[block(r.target)].append(r.target)
    if not flipped_blocks:
        return []
    lonely = [r.target for r in rows if r.status in (Status.EXACT, Status.RENAMED) and square(tuple(r.target_shape))
              and r.target.rpartition(".")[2] == "weight" and block(r.target) in flipped_blocks]
    if not lonely:
        return []
    siblings = sorted({_within_block(k) for keys in flipped_blocks.values() for k in keys})
    lines = [f"{quote(p)} is fed by name and shape, but its siblings in the same blocks needed a transpose "
             f"({', '.join(quote(s) for s in siblings[:4])}): a square weight's shape cannot tell, it likely "
             f"needs one too (convert it with ops [transpose])" for p in _folded(lonely)]
    return _more(lines, "square weights")


def _within_block(key: str) -> str:
    """``transformer.h.3.mlp.c_fc.weight`` -> ``mlp.c_fc``: the module inside its block."""
    parts = key.split(".")
    last = max((i for i, p in enumerate(parts) if p.isdigit()), default=len(parts) - 3)
    return ".".join(parts[last + 1:-1]) or parts[-2]


def _adapter_on_structure(rows) -> list[str]:
    missing: dict[str, list] = defaultdict(list)  # grandparent module -> missing rows under it
    for r in rows:
        if r.status == Status.MISSING:
            missing[_module(_module(r.target))].append(r)
    hits: dict[str, list[str]] = defaultdict(list)  # message template -> target keys
    for r in rows:
        if r.status != Status.ADAPTED or r.adapt is None or r.adapt.op not in ("truncate", "resize"):
            continue
        s, t = tuple(r.source_shape), tuple(r.target_shape)
        if transposed(s, t):
            hits[f"{r.adapt.op} on a tensor stored transposed ({_shapes(s, t)}): it needs a transpose, "
                 "not an adapter, or its values land in the wrong places"].append(r.target)
            continue
        parts = _fused_parts(r, s, t, missing)
        if parts:
            hits[f"{r.adapt.op} on {quote(fold_pattern(r.sources) if r.sources else r.source)}, which looks fused "
                 f"({parts}): the rows it keeps are the first part's; split it with a chunk conversion "
                 "instead"].append(r.target)
    lines = [f"adapter on {quote(p)}: {text}" for text, keys in hits.items() for p in _folded(keys)]
    return _more(lines, "adapters")


def _shapes(s: tuple, t: tuple) -> str:
    return f"source {s} vs target {t}"


def _fused_parts(row, s: tuple, t: tuple, missing) -> str | None:
    """Why the source of an adapted row looks like several tensors stacked, or None."""
    if len(s) != len(t) or not t or s[1:] != t[1:] or t[0] == 0 or s[0] % t[0] or not 2 <= s[0] // t[0] <= 4:
        return None
    k = s[0] // t[0]
    leaf = row.target.rpartition(".")[2]
    parent = _module(_module(row.target))
    beside = [r.target for r in missing.get(parent, ())
              if r.target.endswith("." + leaf) and tuple(r.target_shape) == t]
    named = FUSED_NAME.search((row.source or "").rpartition(".")[0].rpartition(".")[2] or "")
    if not beside and not named:
        return None
    text = f"{k} parts of {t[0]} rows"
    if beside:
        text += ", as " + ", ".join(quote(_module(b).rpartition(".")[2]) for b in beside[:3]) + " beside it"
    return text


# -- whole modules left at init ------------------------------------------------------------
def _unfed_modules(targets, unused) -> list[str]:
    """Target modules none of whose tensors is fed (partly fed ones are said by ``_partly_fed``),
    beside a load that feeds at least half of the target (a lower count is the loud warning's)."""
    fed = sum(r.status in FED_STATUSES for r in targets)  # (r.fed)
    if not fed or 2 * fed < len(targets):
        return []
    by_module = _group(r for r in targets if not r.target.endswith(IGNORED_MISSING))
    unfed = {}
    for m, rs in by_module.items():  # (loops, not a generator per module)
        for r in rs:
            if r.status != Status.MISSING:
                break
        else:
            unfed[m] = rs
    if not unfed:
        return []
    sources = {m: rs for m, rs in _group(unused, side="source").items()
               if not all(r.source.endswith(IGNORED_MISSING) for r in rs)}
    pairs = _pair_by_shapes(unfed, sources)
    named = _folded(sorted(unfed))
    n = sum(len(rs) for rs in unfed.values())
    line = (f"{'module' if len(named) == 1 else 'modules'} {_list(named)} left at "
            f"{'its' if len(named) == 1 else 'their'} init "
            f"({n} {'tensor' if n == 1 else 'tensors'} nothing feeds)")
    if sources:
        line += f"; source modules used by nothing: {_list(_folded(sorted(sources)))}"
    if pairs:
        shown = ", ".join(f"{quote(s)} -> {quote(m)}" for m, s in pairs[:MAX_LINES])
        line += f"; they pair one to one by shapes: {shown}" + (f" (+{len(pairs) - MAX_LINES} more)"
                                                               if len(pairs) > MAX_LINES else "")
    return [line + " (map them, or keep them on purpose with keep_target)"]


def _group(rows, side: str = "target") -> dict[str, list]:
    """Rows by the module that holds their tensor (the key up to its last dot)."""
    out: dict[str, list] = defaultdict(list)
    for r in rows:  # (_module, inline: once per row)
        out[getattr(r, side).rpartition(".")[0] or "(top level)"].append(r)
    return out


def _signature(rows, side: str) -> tuple:
    """A module's tensors as (leaf name, shape), sorted: what makes two modules the same kind."""
    shape = "target_shape" if side == "target" else "source_shape"
    key = side
    return tuple(sorted((getattr(r, key).rpartition(".")[2], getattr(r, shape)) for r in rows))


def _pair_by_shapes(unfed: dict[str, list], sources: dict[str, list]) -> list[tuple[str, str]]:
    """(target module, source module) where exactly one module on each side has that signature."""
    by_sig_t: dict[tuple, list[str]] = defaultdict(list)
    by_sig_s: dict[tuple, list[str]] = defaultdict(list)
    for m, rs in unfed.items():
        by_sig_t[_signature(rs, "target")].append(m)
    for m, rs in sources.items():
        by_sig_s[_signature(rs, "source")].append(m)
    return [(ts[0], by_sig_s[sig][0]) for sig, ts in by_sig_t.items()
            if len(ts) == 1 and len(by_sig_s.get(sig, ())) == 1]


def _list(patterns: list[str]) -> str:
    shown = ", ".join(quote(p) for p in patterns[:MAX_LINES])
    return shown + (f" and {len(patterns) - MAX_LINES} more" if len(patterns) > MAX_LINES else "")


# -- rotary permutes and position embeddings -----------------------------------------------
ROPE_OPS = {"rope_permute", "rope_unpermute"}
POSITION_NAME = re.compile(r"pos(ition)?_?emb|position_embeddings|pos_embed|wpe|absolute_pos", re.IGNORECASE)


def _op_names(row, seen: dict[int, tuple]) -> set[str]:
    """The names of the ops that convert the row (read only). ``seen``: the ops by their id, with
    their names, so a conversion's are worked out once, not once per row it feeds."""
    if row.convert is None:
        return set()
    ops = row.convert.ops
    hit = seen.get(id(ops))
    if hit is None or hit[0] is not ops:
        hit = seen[id(ops)] = (ops, {op.name for op in ops})  # (holding the ops: their id stays theirs)
    return hit[1]


def _rope_bias(rows) -> list[str]:
    """Biases fed beside a rotary-permuted weight without the same permute."""
    by_key = {r.target: r for r in rows}
    flagged = []
    seen: dict[int, tuple] = {}
    for r in rows:
        rope = _op_names(r, seen) & ROPE_OPS
        if not rope or not r.target.endswith(".weight"):
            continue
        bias = by_key.get(r.target[: -len("weight")] + "bias")
        if bias is not None and bias.fed and not (_op_names(bias, seen) & rope):
            flagged.append((bias.target, sorted(rope)[0]))
    if not flagged:
        return []
    return [f"{_list(_folded([b for b, _ in flagged]))} fed without the {flagged[0][1]} their weights got: a bias of a "
            "rotary-permuted projection must be permuted alike (add the same op to its convert entry)"]


def _position_adapter(rows) -> list[str]:
    """Position embeddings fitted by pad/resize/truncate: positions are not resampled."""
    fitted = [r.target for r in rows if r.status == Status.ADAPTED and r.adapt is not None
              and r.adapt.op in ("pad", "resize", "truncate") and POSITION_NAME.search(r.target)]
    if not fitted:
        return []
    return [f"position embedding {_list(_folded(fitted))} fitted by an adapter that pads, cuts or resizes "
            "its rows: positions are not interpolated, so the model computes something else (resample the "
            "grid with a resample op instead)"]


# -- orientation the model classes settle ----------------------------------------------------
def orientation_warnings(rows, source_layouts: dict[str, str], target_layouts: dict[str, str]) -> list[str]:
    """Weights fed as they are (not transposed by a conversion) from a layer that stores them one
    way into a layer that stores them the other (``Conv1D`` (in, out) vs ``nn.Linear`` (out, in)):
    a square one loads without complaint and computes something else."""
    if not source_layouts or not target_layouts:
        return []  # (a side whose classes are unknown settles nothing: no row to look at)
    flipped = []
    for r in rows:
        if not r.fed or r.target is None or r.target_shape is None or len(r.target_shape) != 2:
            continue
        if r.convert is not None and {op.name for op in r.convert.ops} & {"transpose", "permute"}:
            continue
        sources = r.sources or ((r.source,) if r.source else ())
        ours, theirs = target_layouts.get(r.target), {source_layouts.get(s) for s in sources}
        if ours and len(theirs) == 1 and None not in theirs and ours not in theirs:
            flipped.append((r.target, theirs.pop(), ours))
    if not flipped:
        return []
    _, src, dst = flipped[0]
    return [f"{_list(_folded([k for k, _, _ in flipped]))} fed as stored, but the source model keeps these "
            f"weights {src} (Conv1D-style) and the target model {dst}: loaded as they are they compute "
            "something else, square ones included; transpose them (a convert entry with transpose)"]
