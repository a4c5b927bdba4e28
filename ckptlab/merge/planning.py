"""The merge: from an Alignment, what every target key gets, and ``remap`` end to end.

A plan decides per target key, reading no tensor: the mapped source tensor (exact or
renamed), the adapted one, or the target's own value (missing, or a mismatch kept under
``on_mismatch="keep-target"``). It refuses to exist while a conflict or an unresolved
mismatch remains, so nothing is written for a merge the user has not fully specified.
Tensors are made one at a time, on demand, when the writer asks for them. A conversion
group (one fused qkv -> q, k, v) is computed once, when its first target is asked for; its
other outputs wait in a cache until they are written, so memory holds one group, never the
checkpoint.
"""
from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ckptlab.recipe import adapters as adapt
from ckptlab.io.writers import extras
from ckptlab.io.checkpoint import Checkpoint
from ckptlab.errors import AdaptError, MergeError
from ckptlab.vocab import ON_MISMATCH, Status
from ckptlab.io.tensor_info import TensorInfo, dtype_name
from ckptlab.align.new_rows import new_rows
from ckptlab.merge.report import Report, ReportRow
from ckptlab.io.writers.textfile import check_writable
from ckptlab.io.writers import SUFFIXES, FileSpan, OutTensor, Progress
from ckptlab.io.writers import write as write_plan

if TYPE_CHECKING:
    from ckptlab.align.matcher import Alignment, Row

__all__ = ["KEPT_TARGET", "PlanEntry", "MergePlan", "plan", "merged_tensor", "remap", "Choose",
    "loses_precision", "cast_note"]

KEPT_TARGET = "kept target value (mismatch, --on-mismatch keep-target)"


@dataclass(frozen=True)
class PlanEntry:
    """One target key: where its value comes from and the dtype it is written in."""

    target: str
    source: str | None
    status: str
    spec: Any  # the AdaptSpec of an adapted row
    info: TensorInfo  # what is written: the target's shape, the chosen dtype
    note: str = ""
    group: Any = None  # the convert.Group of a converted entry
    part: int = 0  # which of the group's outputs

    @property
    def keeps_target(self) -> bool:
        """Missing, or a mismatch kept under keep-target: the value is the target's own."""
        return self.status in (Status.MISSING, Status.MISMATCH)


class MergePlan:
    """Every target key's entry, plus what to write around the tensors (extras, nesting)."""

    def __init__(self, alignment: "Alignment", entries: list[PlanEntry], *, keep_extras: bool, nest: bool):
        self.alignment = alignment
        self.source: Checkpoint = alignment.source
        self.target: Checkpoint = alignment.target
        self.entries = {e.target: e for e in entries}
        self.unused = [r.source for r in alignment.rows if r.status == Status.UNUSED]
        self.keep_extras, self.nest = keep_extras, nest
        self.extras_not_kept: list[extras.NotKept] = []  # filled when the writer asks for extras
        self.extras_converted: list[extras.Converted] = []  # kept as values of another type (numpy)
        self._waiting: dict[int, dict[str, torch.Tensor]] = {}  # group id -> outputs not yet written
        self._members: dict[int, list[str]] = {}  # group id -> its target keys in the plan
        for e in entries:
            if e.group is not None:
                self._members.setdefault(id(e.group), []).append(e.target)

    # -- the tensors --------------------------------------------------------------------
    def _entry(self, key: str) -> PlanEntry:
        try:
            return self.entries[key]
        except KeyError:
            raise MergeError(f"no target key {key!r} in the plan") from None

    def tensor(self, key: str) -> torch.Tensor:
        """The merged value of one target key (read, adapted or converted now; nothing kept)."""
        e = self._entry(key)
        if e.group is not None:
            return self._adapted(e, _cast(self._run(e.group)[e.part], e.info.dtype))
        return self._plain(e)

    def produce(self, key: str, copy: bool = True) -> torch.Tensor:
        """The merged value, for a pass that asks for every key once (the writers,
        ``load_into``): a conversion group is computed when its first target is asked for
        and its other outputs are kept only until they are asked for too.

        ``copy=False`` (a writer that copies the value at once): a converted value may be
        the ops' view of the source (a transposed view of its mapped bytes), which the writer
        puts in C order in a buffer it reuses, instead of fresh memory made here per tensor."""
        e = self._entry(key)
        if e.group is None:
            return self._plain(e)
        gid = id(e.group)
        waiting = self._waiting.get(gid)
        if waiting is None or key not in waiting:
            outputs = self._run(e.group, copy)
            by_key = {k: outputs[self.entries[k].part] for k in self._members[gid]}
            del outputs
            waiting = self._waiting[gid] = by_key
        value = waiting.pop(key)
        if not waiting:
            del self._waiting[gid]
        if copy:
            value = value.contiguous()  # no-op unless a copy=False call computed the group
        return self._adapted(e, _cast(value, e.info.dtype))

    @property
    def waiting(self) -> int:
        """How many converted outputs are held for targets not yet written (for tests)."""
        return sum(len(v) for v in self._waiting.values())

    def _run(self, group: Any, copy: bool = True) -> list[torch.Tensor]:
        """A group's outputs, each in its own contiguous memory (``copy=False``: as the ops
        give them, maybe views of the sources)."""
        outputs = group.run([self._read(s) for s in group.sources])
        return [t.contiguous() for t in outputs] if copy else list(outputs)

    def _read(self, key: str) -> torch.Tensor:
        """A conversion's source tensor: mapped from the file where its bytes lie as one span
        (the ops read the page cache; nothing is copied before they run), else loaded."""
        from ckptlab.io.windows import mapped

        view = mapped(self.source.lazy(key))
        return view if view is not None else self.source.tensor(key)

    def _plain(self, e: PlanEntry) -> torch.Tensor:
        key = e.target
        if e.keeps_target:
            return _cast(self.target.tensor(key), e.info.dtype)
        return self._adapted(e, _cast(self.source.tensor(e.source), e.info.dtype))

    def _adapted(self, e: PlanEntry, value: torch.Tensor) -> torch.Tensor:
        """``value`` (read, or computed by a conversion) fitted by the entry's adapter, if any."""
        key = e.target
        if e.status != Status.ADAPTED or e.spec is None:
            return value
        needs_target = _field(e.spec, "op") == "reinit" or _field(e.spec, "fill") == "init"
        target_value = _cast(self.target.tensor(key), e.info.dtype) if needs_target else None
        return adapt.apply(value, e.info.shape, e.spec, target_value=target_value, key=key)

    def _share(self, e: PlanEntry) -> Hashable | None:
        """Entries that come out as the same tensor (tied weights) get the same id."""
        if e.status in (Status.ADAPTED, Status.CONVERTED):
            return None
        ck, key = (self.target, e.target) if e.keeps_target else (self.source, e.source)
        lazy = ck.lazy(key)
        where = (lazy.storage_id, lazy.view) if lazy.storage_id is not None else key
        return (id(ck), where, e.info.dtype)

    def _span(self, e: PlanEntry) -> FileSpan | None:
        """Where an unchanged source tensor's bytes lie on disk, if its reader says so.

        A reader may give a ``LazyTensor`` a ``file_span`` ``(path, offset, nbytes)`` for a
        tensor stored contiguously, in C order, in its own dtype; the writer then copies those
        bytes file to file (in the kernel for safetensors) instead of loading the tensor.
        """
        if e.status not in (Status.EXACT, Status.RENAMED):
            return None
        lazy = self.source.lazy(e.source)
        span = getattr(lazy, "file_span", None)
        if span is None or lazy.info.dtype != e.info.dtype:
            return None
        span = span if isinstance(span, FileSpan) else FileSpan(*span)
        return span if span.nbytes == e.info.nbytes else None

    def outputs(self) -> list[OutTensor]:
        return [OutTensor(k, e.info, (lambda k=k: self.produce(k)), self._share(e), self._span(e),
                          (lambda k=k: self.produce(k, copy=False)))
                for k, e in self.entries.items()]

    def aliases(self) -> list[list[str]]:
        groups: dict[Hashable, list[str]] = {}
        for key, e in self.entries.items():
            share = self._share(e)
            if share is not None:
                groups.setdefault(share, []).append(key)
        return [keys for keys in groups.values() if len(keys) > 1]

    # -- what goes around them ------------------------------------------------------------
    def metadata(self) -> dict[str, str]:
        meta = {"format": "pt", "ckptlab.recipe.model": self.alignment.effective_recipe.to_json()}
        if self.keep_extras:
            kept, self.extras_not_kept = extras.for_safetensors(self.source.beside, (*meta, "ckptlab.aliases"))
            meta.update(kept)
        return meta

    @property
    def wrap(self) -> Callable[[dict[str, Any]], Any] | None:
        """Builds the saved object of a .pt around the tensor mapping (extras, nesting)."""
        if not (self.keep_extras or self.nest):
            return None
        container = self.source.container if self.nest else ""
        kept: list[tuple[tuple, Any]] = []
        if self.keep_extras:
            kept, self.extras_not_kept, self.extras_converted = extras.for_pt(
                self.source.beside, self.entries, nest=bool(container))

        def build(tensors: dict[str, Any]) -> Any:
            if not container:
                return {**tensors, **{path[0]: v for path, v in kept}}
            root: dict[Any, Any] = {}
            for path, value in kept:  # each entry at its place in the file's layout
                node = root
                for part in path[:-1]:
                    node = node.setdefault(part, {})
                node[path[-1]] = value
            node = root
            *parents, leaf = container.split(".")
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = tensors
            return root

        return build

    # -- the report -----------------------------------------------------------------------
    def report(self, outputs: list[Path] | None = None) -> Report:
        """One row per target key; ``target_dtype`` is the dtype written, casts in the note."""
        rows = []
        for key, e in self.entries.items():
            sources = e.group.sources if e.group is not None else ((e.source,) if e.source else ())
            src_dtype = "/".join(sorted({dtype_name(self.source.info(s).dtype) for s in sources}))
            rows.append(ReportRow(target=key, source=e.source if e.group is None else ", ".join(sources),
                                  status=e.status,
                                  adapter=adapt.describe(e.spec) if e.status == Status.ADAPTED else
                                  e.group.describe(key) if e.group is not None else "",
                                  source_dtype=src_dtype, target_dtype=dtype_name(e.info.dtype),
                                  note=e.note))
        safetensors = any(str(p).endswith(".safetensors") for p in outputs or [])
        aliases = self.aliases()
        if safetensors and aliases:
            rows = [_with_note(r, f"tied to {_group_of(r.target, aliases)[0]!r}, written as a copy "
                                  "(safetensors cannot share storage)")
                    if r.target in _tied_copies(aliases) else r for r in rows]
        return Report(rows=rows, unused=self.unused, recipe=self.alignment.effective_recipe.to_dict(),
                      warning=self.alignment.warning, warnings=list(self.alignment.warnings),
                      outputs=[str(p) for p in outputs or []], aliases=aliases,
                      extras_not_kept=[str(n) for n in self.extras_not_kept],
                      extras_converted=[str(c) for c in self.extras_converted],
                      new_rows=[n.key for n in new_rows(self.alignment)])  # param_groups trains them anew


# -- building a plan ---------------------------------------------------------------------
def plan(alignment: "Alignment", on_mismatch: str = "error", *, dtype: str | torch.dtype | None = None,
         keep_extras: bool = False, nest: bool = False) -> MergePlan:
    """Decide every target key's value, or raise ``MergeError`` naming the rows at fault.

    ``dtype``: None or ``"target"`` keeps each target key's dtype (casting the source);
    ``"source"`` keeps the source tensor's; a dtype (``"float16"``, ``torch.bfloat16``)
    is forced on every floating-point tensor (integer and bool tensors are left as they are).
    """
    if on_mismatch not in ON_MISMATCH:
        raise MergeError(f"on_mismatch must be one of {', '.join(ON_MISMATCH)}, not {on_mismatch!r}")
    choose = _dtype_policy(dtype)
    recipe_dtype = getattr(alignment.effective_recipe, "dtype", None) if dtype is None else None
    if recipe_dtype is not None:
        choose = _recipe_cast(choose, recipe_dtype)
    source, target = alignment.source, alignment.target
    entries, faults, laid_out = [], [], []
    for row in alignment.rows:
        if row.target is None:  # an unused source key
            continue
        if row.status == Status.CONFLICT:
            faults.append(f"conflict at {row.target!r} ({', '.join(row.sources)})")
            continue
        t_info = target.info(row.target)
        s_info = source.info(row.source) if row.source is not None else None
        if row.status == Status.MISMATCH and on_mismatch == "error":
            if row.convert is not None:
                got = row.convert.target_shapes[row.convert.targets.index(row.target)]
                faults.append(f"shape mismatch at {row.target!r}: convert {row.convert.index} gives "
                              f"{tuple(got)} vs target {t_info.shape}")
            else:
                faults.append(f"shape mismatch at {row.target!r}: source {s_info.shape} vs target {t_info.shape}")
                laid_out.extend(_conversion_hint(row.target, row.source, s_info.shape, t_info.shape))
            continue
        if row.status in (Status.MISSING, Status.MISMATCH):
            out = choose(None, t_info.dtype, row.target)
            note = "; ".join(n for n in (KEPT_TARGET if row.status == Status.MISMATCH else "",
                                          cast_note(t_info.dtype, out)) if n)
            entries.append(PlanEntry(row.target, row.source, row.status, None, _info(t_info.shape, out), note))
            continue
        if row.status == Status.ADAPTED:
            fitted = row.source_shape if row.convert is not None else s_info.shape  # a conversion's output
            try:
                adapt.preview_shape(tuple(fitted), t_info.shape, row.adapt, key=row.target)
            except AdaptError as exc:
                faults.append(str(exc))
                continue
        if row.convert is not None and row.status in (Status.CONVERTED, Status.ADAPTED):
            group = row.convert
            s_dtype = source.info(group.sources[0]).dtype
            out = choose(s_dtype, t_info.dtype, row.target)
            entries.append(PlanEntry(row.target, row.source, row.status, row.adapt if row.status == Status.ADAPTED else None,
                                     _info(t_info.shape, out), cast_note(s_dtype, out), group,
                                     group.targets.index(row.target)))
            continue
        out = choose(s_info.dtype, t_info.dtype, row.target)
        entries.append(PlanEntry(row.target, row.source, row.status, row.adapt if row.status == Status.ADAPTED else None,
                                 _info(t_info.shape, out), cast_note(s_info.dtype, out)))
    if faults:
        shown = "; ".join(faults[:5]) + (f"; ... and {len(faults) - 5} more" if len(faults) > 5 else "")
        ways = _how_to_go_on(faults, laid_out)
        err = MergeError(f"{len(faults)} row{'s block' if len(faults) != 1 else ' blocks'} the merge: {shown}"
                         f" ({ways})")
        err.faults, err.ways = faults, ways      # a page shows the way out even when the rows fill a line
        raise err
    return MergePlan(alignment, entries, keep_extras=keep_extras, nest=nest)


def merged_tensor(plan: MergePlan, key: str) -> torch.Tensor:
    """One target key's merged value (the app's histogram)."""
    return plan.tensor(key)


def remap(
    source: Any,
    target: Any,
    out_path: str | Path,
    recipe: Any = None,
    auto: str = "high",
    *,
    on_mismatch: str = "error",
    dtype: str | torch.dtype | None = None,
    keep_extras: bool = False,
    nest: bool = False,
    max_shard_size: int | None = None,
    progress: Progress | None = None,
    params: Mapping[str, Any] | None = None,
) -> Report:
    """Align ``source`` with ``target``, merge, and write ``out_path`` (.safetensors/.pt/.pth).

    Nothing is written when the merge is blocked (``MergeError``) or the write fails.
    """
    from ckptlab.align.matcher import align

    out_path = check_writable(out_path, "output", SUFFIXES, MergeError)
    if nest and out_path.suffix.lower() == ".safetensors":
        raise MergeError("nest=True needs a .pt/.pth output (safetensors holds tensors only)", out_path)

    alignment = align(source, target, recipe=recipe, auto=auto, params=params)
    merge_plan = plan(alignment, on_mismatch, dtype=dtype, keep_extras=keep_extras, nest=nest)
    written = write_plan(merge_plan, out_path, progress=progress, max_shard_size=max_shard_size)
    return merge_plan.report(outputs=written)


# -- dtypes ------------------------------------------------------------------------------
Choose = Callable[[torch.dtype | None, torch.dtype, str], torch.dtype]


def _dtype_policy(dtype: str | torch.dtype | None) -> Choose:
    """``choose(source_dtype, target_dtype, key) -> output dtype`` for the chosen policy."""
    if dtype is None or dtype == "target":
        return lambda src, tgt, key="": tgt
    if dtype == "source":
        return lambda src, tgt, key="": src if src is not None else tgt
    forced = dtype if isinstance(dtype, torch.dtype) else getattr(torch, str(dtype), None)
    if not isinstance(forced, torch.dtype):
        raise MergeError(f"dtype must be 'target', 'source' or a torch dtype name, not {dtype!r}")
    return lambda src, tgt, key="": forced if (src if src is not None else tgt).is_floating_point else tgt


def _recipe_cast(choose: Choose, spec: Any) -> Choose:
    """A recipe's ``dtype: {to, keep}`` on top of the policy: floating outputs are cast to
    ``to`` unless their target key matches ``keep``."""
    to = getattr(torch, spec.to)

    def pick(src: torch.dtype | None, tgt: torch.dtype, key: str = "") -> torch.dtype:
        out = choose(src, tgt, key)
        return to if out.is_floating_point and spec.casts(key) else out

    return pick


def loses_precision(src: torch.dtype, dst: torch.dtype) -> bool:
    """True when some value of ``src`` cannot survive a cast to ``dst``."""
    if src == dst or src == torch.bool:
        return False
    if dst == torch.bool or (src.is_complex and not dst.is_complex):
        return True
    if dst.is_complex:
        dst = torch.float32 if dst == torch.complex64 else torch.float64
        src = {torch.complex64: torch.float32, torch.complex128: torch.float64}.get(src, src)
    if src.is_floating_point:
        if not dst.is_floating_point:
            return True
        a, b = torch.finfo(src), torch.finfo(dst)
        return b.eps > a.eps or b.max < a.max or b.smallest_normal > a.smallest_normal
    lo, hi = torch.iinfo(src).min, torch.iinfo(src).max
    if dst.is_floating_point:
        f = torch.finfo(dst)
        exact_up_to = 2.0 / f.eps  # every integer up to 2**(mantissa bits + 1) is exact
        return max(-lo, hi) > exact_up_to or hi > f.max
    return lo < torch.iinfo(dst).min or hi > torch.iinfo(dst).max


def cast_note(src: torch.dtype, dst: torch.dtype) -> str:
    if src == dst:
        return ""
    text = f"cast {dtype_name(src)}->{dtype_name(dst)}"
    return f"{text} loses precision" if loses_precision(src, dst) else text


def _cast(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return t if t.dtype == dtype else t.to(dtype)


def _info(shape: tuple[int, ...], dtype: torch.dtype) -> TensorInfo:
    n = 1
    for d in shape:
        n *= d
    return TensorInfo(tuple(shape), dtype, n * dtype.itemsize)


def _field(spec: Any, name: str) -> Any:
    return spec.get(name) if isinstance(spec, Mapping) else getattr(spec, name, None)


# -- report helpers -------------------------------------------------------------------------
def _conversion_hint(target: str, source: str | None, source_shape: Any, target_shape: Any) -> list[str]:
    """``'h.0.attn.c_attn.weight': transpose`` when the shapes say the source only lays its
    values out another way (a conversion, not an adapter, is the way out there)."""
    from ckptlab.align.fix_offers import layout_ops

    ops = layout_ops(tuple(source_shape), tuple(target_shape))
    return [f"{target!r}: {ops[0][0]}"] if ops and source is not None else []


def _how_to_go_on(faults: list[str], laid_out: list[str] = ()) -> str:
    """The ways out of a blocked merge, for the kinds of fault present; a conversion first
    where the shapes say a source is stored transposed or permuted (an adapter would fit
    its shape and put its values in the wrong places)."""
    ways = []
    if any(f.startswith("conflict") for f in faults):
        ways.append("make the rules send one source key to each target key, or map it explicitly")
    if laid_out:
        many = f"the {len(laid_out)} keys stored another way (e.g. " if len(laid_out) > 1 else "the key stored another way ("
        ways.append(f"convert {many}{laid_out[0]}) with a convert entry, not an adapter "
                    "(align suggests conversions; the app's Shape fixes offers them)")
    if any(f.startswith("shape mismatch") for f in faults):
        ways.append("give each mismatched key an adapter (align suggests some) or keep the target's "
                    "values with on-mismatch keep-target")
    return "to go on: " + "; ".join(ways) if ways else "fix the adapters named"


def _group_of(key: str, aliases: list[list[str]]) -> list[str]:
    return next(g for g in aliases if key in g)


def _tied_copies(aliases: list[list[str]]) -> set[str]:
    return {k for g in aliases for k in g[1:]}


def _with_note(row: ReportRow, note: str) -> ReportRow:
    return ReportRow(**{**row.to_dict(), "note": f"{row.note}; {note}" if row.note else note})
