"""What a mismatched row can be fixed with, structure first (the app's Shape fixes view).

An adapter fits any shape, so a shape fix that "fits" proves nothing: GPT-2's Conv1D weight
(in, out) resized to nanoGPT's (out, in) builds, loads strictly and computes something else.
So before any adapter a row offers the conversions its shapes say are lossless (the
alignment's own suggested conversion for its family, then a transpose, permute, reshape or a
part of a fused tensor for this key alone), and a lossy adapter on such a tensor is named as
such before it is applied (``lossy_note``).
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ckptlab.align.suggest.structure import FUSED_NAME, MAX_PARTS, transposed
from ckptlab.errors import CheckpointError
from ckptlab.recipe.conversion import Conversion
from ckptlab.recipe.edits import describe_fragment
from ckptlab.recipe.key_patterns import KeyPattern
from ckptlab.recipe.ops import parse_op, preview
from ckptlab.recipe.parsing import quote
from ckptlab.vocab import LOSSY_ADAPT_OPS

Shape = tuple[int, ...]


@dataclass(frozen=True)
class Offer:
    """One conversion a row may take: ``fragment`` joins the recipe as an accepted suggestion."""

    label: str
    fragment: dict
    family: bool = False          # the alignment's suggestion for the whole family of layers


def layout_ops(source: Shape, target: Shape) -> list[tuple[str, list]]:
    """Lossless single-tensor ops that give ``target`` from ``source`` (same values, another
    layout): ``[("transpose", ["transpose"])]``, a permute, a reshape that only adds or
    drops size-1 dims. Empty when the shapes say nothing of the kind."""
    source, target = tuple(source), tuple(target)
    if source == target:
        return []
    if transposed(source, target):
        return [("transpose", ["transpose"])]
    out: list[tuple[str, list]] = []
    if len(source) == len(target) > 2 and Counter(source) == Counter(target):
        dims = _permutation(source, target)
        out.append((f"permute {dims}", [{"permute": dims}]))
    if [d for d in source if d != 1] == [d for d in target if d != 1]:
        out.append((f"reshape to {list(target)}", [{"reshape": list(target)}]))
    return out


def _permutation(source: Shape, target: Shape) -> list[int]:
    """Source dims in target order, each dim kept in place when its size allows."""
    free = list(range(len(source)))
    dims = []
    for i, size in enumerate(target):
        pick = i if i in free and source[i] == size else next(d for d in free if source[d] == size)
        free.remove(pick)
        dims.append(pick)
    return dims


def fused_parts(source: Shape, target: Shape) -> tuple[int, int] | None:
    """``(dim, k)`` when ``source`` is ``k`` target-sized parts stacked along one dim
    (``qkv`` (48, 16) beside ``q`` (16, 16)), else None."""
    source, target = tuple(source), tuple(target)
    if len(source) != len(target):
        return None
    differ = [d for d, (s, t) in enumerate(zip(source, target)) if s != t]
    if len(differ) != 1:
        return None
    d = differ[0]
    if target[d] == 0 or source[d] % target[d] or not 2 <= source[d] // target[d] <= MAX_PARTS:
        return None
    return d, source[d] // target[d]


def offers(row: Any, suggestions: Sequence[Any] = ()) -> list[Offer]:
    """The conversions a mismatched ``row`` can take, the alignment's pending conversion
    suggestions that claim its key first (they convert the whole family of layers), then
    ones for this key alone. A row already fed through a conversion gets none."""
    if row.target is None or row.source is None or row.convert is not None or row.source_shape is None:
        return []
    out = [Offer(f"suggested: {describe_fragment(s.rule)}", dict(s.rule), family=True)
           for s in suggestions if not s.applied and _claims(s.rule, row.target)]
    if "{" in row.source or "{" in row.target:        # a literal key would read as a pattern
        return out
    source, target = tuple(row.source_shape), tuple(row.target_shape)
    for name, ops in layout_ops(source, target):
        out.append(_single(name + " (this key)", row, ops, target))
    split = fused_parts(source, target) if looks_fused(row.source) else None
    if split is not None:
        d, k = split
        size = target[d]
        for part in range(k):
            ops = [{"narrow": {"dim": d, "start": part * size, "length": size}}]
            out.append(_single(f"chunk dim {d}: part {part + 1} of {k} (this key)", row, ops, target))
    return [o for o in out if o is not None]


def _single(label: str, row: Any, ops: list, target: Shape) -> Offer | None:
    """A one-key ``convert`` entry, kept only when its ops really give the target's shape."""
    entry = {"from": row.source, "to": row.target, "ops": ops}
    try:
        conversion = Conversion.from_dict(entry)
        got = preview([parse_op(op, "fix") for op in ops], [tuple(row.source_shape)])
    except CheckpointError:
        return None
    if conversion.sources != (row.source,) or [tuple(s) for s in got] != [target]:
        return None
    return Offer(label, {"convert": [entry]})


def _claims(fragment: Any, key: str) -> bool:
    """Whether a suggestion's ``convert`` entries produce ``key``."""
    if not isinstance(fragment, dict) or "convert" not in fragment:
        return False
    entries = fragment["convert"] if isinstance(fragment["convert"], list) else [fragment["convert"]]
    for entry in entries:
        try:
            if any(KeyPattern(t).match(key) is not None for t in Conversion.from_dict(entry).targets):
                return True
        except CheckpointError:
            continue
    return False


def structure(source_key: str | None, source: Shape, target: Shape) -> str | None:
    """What the shapes (and the source's name) say the tensor is, in words, or None:
    ``stored transposed``, ``a permutation of the target's dims``, ``fused (3 parts ...)``."""
    source, target = tuple(source), tuple(target)
    if transposed(source, target):
        return "stored transposed"
    if len(source) == len(target) > 2 and source != target and Counter(source) == Counter(target):
        return "a permutation of the target's dims"
    split = fused_parts(source, target) if looks_fused(source_key) else None
    if split is not None:
        d, k = split
        return f"fused ({k} parts of {target[d]} along dim {d})"
    return None


def looks_fused(source_key: str | None) -> bool:
    """A module named like a fused projection (``qkv``, ``c_attn``, ``gate_up``): a source
    some whole number of times the target's size is then its parts, not a bigger layer."""
    return bool(FUSED_NAME.search((source_key or "").rpartition(".")[0].rpartition(".")[2] or ""))


def lossy_note(op: str | None, source_key: str | None, source: Shape, target: Shape) -> tuple[str, bool] | None:
    """What an adapter choice does to this tensor's values, before it is applied:
    ``(message, structural)``; ``structural`` when the shapes say the tensor needs a
    conversion (the adapter would put values in the wrong places), else the plain loss of
    a lossy op. None for a choice that keeps every value where it belongs."""
    if op is None:
        return None
    what = structure(source_key, source, target)
    name = quote(source_key) if source_key else "the source"
    if what is not None and (op in LOSSY_ADAPT_OPS or op == "reinit"):
        harm = ("throws its trained values away" if op == "reinit"
                else "keeps values by position, so they land in the wrong places" if "fused" not in what
                else "keeps only the first part's values")
        message = (f"{op} on {name}, which is {what} (source {source} vs target {target}): it {harm}; "
                   "use the conversion offered above")
        return message, True
    if op in LOSSY_ADAPT_OPS:
        return f"{op} drops or blends trained values of {name} (lossy)", False
    return None
