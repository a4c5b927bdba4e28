"""Conversions: key patterns and tensor ops that turn one library's tensors into another's.

Renames alone cannot move GPT-2's Conv1D weights (stored transposed) into an ``nn.Linear``
GPT, split timm's fused ``qkv`` into HF's q/k/v, or reorder LLaMA's rotary dims. A recipe's
``convert`` entry maps source key pattern(s) to target key pattern(s) through a list of ops.

Everything here is pure: ops are tensor functions, each with a shape function (so align and
the app preview results without reading bytes) and an inverse (so ``Recipe.inverted`` can
undo a recipe bit for bit). Patterns use ``{name}`` placeholders (one or more characters, no
dot); a placeholder of ``from`` absent from ``to`` stacks every match in numeric order, and
one of ``to`` absent from ``from`` takes the outputs of an ``unbind``, one per index ``0..n-1``
(a stacked tensor does not keep its indices: ``unbind_clash`` refuses an unbind onto a target
that numbers that family otherwise).

Ops work on the list of tensors of one group: ``cat``/``stack`` take many and give one,
``chunk``/``split``/``unbind`` take one and give many, the others act on each tensor.
"""
from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from difflib import get_close_matches
from functools import cached_property
from typing import Any

import regex as _regex

from ckptlab.errors import RecipeError
from ckptlab.formats import limits

Shape = tuple[int, ...]
OPS = ("transpose", "permute", "reshape", "squeeze", "unsqueeze", "chunk", "split", "cat", "stack",
       "unbind", "narrow", "rope_permute", "rope_unpermute")
MANY_TO_ONE = ("cat", "stack")
ONE_TO_MANY = ("chunk", "split", "unbind")
CONVERT_FIELDS = ("from", "to", "ops")
VARIABLE = -1  # a tensor count known only from the shapes (a stacking or unbinding placeholder)


class ConvertError(RecipeError):
    """An op cannot be applied to these shapes (the message names the op and the shapes)."""


def _name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _unknown(what: str, name: Any, choices: Sequence[str]) -> str:
    close = get_close_matches(str(name), choices, n=1, cutoff=0.6) if isinstance(name, str) else []
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"unknown {what} {name!r} ({hint}expected {', '.join(choices)})"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _dim(d: int, rank: int, what: str, extra: int = 0) -> int:
    """``d`` in ``[-rank-extra, rank+extra)`` as a non-negative dim, or a ConvertError."""
    n = rank + extra
    if not -n <= d < n:
        raise ConvertError(f"{what}: dim {d} is out of range for a {rank}-D tensor")
    return d % n if n else 0


# -- ops ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Op:
    """One tensor op. ``arg`` is the YAML argument (normalised: lists become tuples);
    ``transpose`` with ``arg=None`` is the bare string form (2-D ``.t()``)."""

    name: str
    arg: Any = None

    # -- (de)serialising ---------------------------------------------------------------
    @classmethod
    def from_value(cls, value: Any, where: str = "op") -> "Op":
        """``"transpose"``, ``{"transpose": [0, 2]}``, ``{"chunk": 0}``, ``{"split": {...}}``."""
        if isinstance(value, Op):
            return value
        if isinstance(value, str):
            if value not in OPS:
                raise RecipeError(f"{where}: {_unknown('op', value, OPS)}")
            if value != "transpose":
                raise RecipeError(f"{where}: {value} needs an argument ({{{value}: ...}})")
            return cls("transpose", None)
        if not isinstance(value, dict) or len(value) != 1:
            got = f"{len(value)} keys" if isinstance(value, dict) else _name(value)
            raise RecipeError(f"{where}: expected an op name or one 'op: argument' pair, got {got}")
        (name, arg), = value.items()
        if name not in OPS:
            raise RecipeError(f"{where}: {_unknown('op', name, OPS)}")
        return cls(name, _ARGS[name](arg, f"{where} ({name})"))

    def to_value(self) -> Any:
        if self.name == "transpose" and self.arg is None:
            return "transpose"
        arg = self.arg
        if isinstance(arg, tuple):
            arg = list(arg)
        elif isinstance(arg, dict):
            arg = {k: list(v) if isinstance(v, tuple) else v for k, v in arg.items()}
        return {self.name: arg}

    def describe(self) -> str:
        """``transpose``, ``transpose [0, 2]``, ``chunk 0``, ``rope_permute heads=8``."""
        if self.arg is None:
            return self.name
        arg = self.arg
        if isinstance(arg, dict):
            return f"{self.name} " + ", ".join(f"{k}={list(v) if isinstance(v, tuple) else v}" for k, v in arg.items())
        return f"{self.name} {list(arg) if isinstance(arg, tuple) else arg}"

    # -- counts and shapes -------------------------------------------------------------
    def count(self, n_in: int, parts: int | None, where: str) -> int:
        """How many tensors come out of ``n_in`` (``VARIABLE``: known from shapes only)."""
        if self.name in MANY_TO_ONE:
            return 1
        if self.name in ONE_TO_MANY:
            if n_in != 1:
                many = "a variable number" if n_in == VARIABLE else str(n_in)
                raise RecipeError(f"{where}: {self.name} takes one tensor, but {many} reach it")
            if self.name == "unbind":
                return VARIABLE
            if self.name == "split":
                return len(self.arg["sizes"])
            n = self.parts(parts)
            if n is None:
                raise RecipeError(f"{where}: chunk needs {{chunk: {{dim: d, parts: n}}}} here "
                                  "(the number of targets does not say how many parts)")
            return n
        return n_in

    def parts(self, default: int | None) -> int | None:
        if self.name != "chunk":
            return None
        return self.arg["parts"] if isinstance(self.arg, dict) else default

    def shapes(self, shapes: list[Shape], parts: int | None = None) -> list[Shape]:
        """The output shapes of ``shapes`` (raises ``ConvertError`` when they do not work)."""
        return _SHAPES[self.name](self, [tuple(s) for s in shapes], parts)

    def apply(self, tensors: list, parts: int | None = None) -> list:
        """The output tensors; checks the shapes first, so a bad input gets a clear error."""
        self.shapes([tuple(t.shape) for t in tensors], parts)
        return _APPLY[self.name](self, list(tensors), parts)

    # -- inverse -------------------------------------------------------------------------
    @property
    def invertible(self) -> bool:
        return self.name != "narrow"

    def inverse(self, in_shapes: list[Shape] | None = None) -> "Op":
        """The op that undoes this one. ``in_shapes`` (the shapes this op received) are
        needed by ``reshape`` and by a ``cat`` of unequal parts; ``ConvertError`` when the
        op cannot be undone (``narrow``) or needs the shapes it was not given."""
        name, arg = self.name, self.arg
        if name == "transpose":
            return self
        if name == "permute":
            back = [0] * len(arg)
            for i, d in enumerate(arg):
                back[d % len(arg)] = i
            return Op("permute", tuple(back))
        if name in ("squeeze", "unsqueeze"):
            return Op("unsqueeze" if name == "squeeze" else "squeeze", arg)
        if name in ("chunk", "split"):
            return Op("cat", arg if _is_int(arg) else arg["dim"])
        if name == "stack":
            return Op("unbind", arg)
        if name == "unbind":
            return Op("stack", arg)
        if name in ("rope_permute", "rope_unpermute"):
            return Op("rope_unpermute" if name == "rope_permute" else "rope_permute", arg)
        if name == "cat":
            if in_shapes is None:  # equal parts assumed; align flags a part that does not fit
                return Op("chunk", arg)
            rank = len(in_shapes[0])
            d = _dim(arg, rank, "cat")
            sizes = [s[d] for s in in_shapes]
            if len(set(sizes)) == 1:
                return Op("chunk", {"dim": arg, "parts": len(sizes)})
            return Op("split", {"dim": arg, "sizes": tuple(sizes)})
        if name == "reshape":
            if in_shapes is None:
                raise ConvertError("reshape: needs the shape it started from (give the source's shapes)")
            return Op("reshape", tuple(in_shapes[0]))
        raise ConvertError(f"{self.describe()}: drops part of the tensor")

    @property
    def needs_shapes_to_invert(self) -> bool:
        return self.name == "reshape"


def _arg_int(arg: Any, where: str) -> int:
    if not _is_int(arg):
        raise RecipeError(f"{where}: expected an integer dim, got {_name(arg)}")
    return arg


def _arg_fields(arg: Any, where: str, fields: tuple[str, ...], optional: tuple[str, ...] = ()) -> dict:
    if not isinstance(arg, dict):
        raise RecipeError(f"{where}: expected {{{', '.join(f + ': ...' for f in fields)}}}, got {_name(arg)}")
    allowed = fields + optional
    extra = [k for k in arg if k not in allowed]
    if extra:
        raise RecipeError(f"{where}: {_unknown('field', extra[0], allowed)}")
    for f in fields:
        if f not in arg:
            raise RecipeError(f"{where}: needs {', '.join(repr(x) for x in fields)}")
    return {f: arg[f] for f in allowed if f in arg}


def _int_list(value: Any, where: str, what: str) -> tuple[int, ...]:
    if not isinstance(value, (list, tuple)) or not all(_is_int(v) for v in value):
        raise RecipeError(f"{where}: {what} must be a list of integers, got {_name(value)}")
    return tuple(value)


def _arg_transpose(arg: Any, where: str) -> tuple[int, int] | None:
    if arg is None:
        return None
    dims = _int_list(arg, where, "the dims")
    if len(dims) != 2:
        raise RecipeError(f"{where}: expected two dims [a, b], got {len(dims)}")
    return dims


def _arg_permute(arg: Any, where: str) -> tuple[int, ...]:
    dims = _int_list(arg, where, "the dims")
    if sorted(d % len(dims) for d in dims) != list(range(len(dims))) or any(not -len(dims) <= d < len(dims) for d in dims):
        raise RecipeError(f"{where}: {list(dims)} is not a permutation of the dims")
    return dims


def _arg_reshape(arg: Any, where: str) -> tuple[int, ...]:
    shape = _int_list(arg, where, "the shape")
    if sum(d == -1 for d in shape) > 1 or any(d < -1 for d in shape):
        raise RecipeError(f"{where}: the shape may hold one -1 and sizes >= 0, got {list(shape)}")
    return shape


def _arg_chunk(arg: Any, where: str) -> Any:
    if _is_int(arg):
        return arg
    if not isinstance(arg, dict):
        raise RecipeError(f"{where}: expected an integer dim or {{dim: ..., parts: ...}}, got {_name(arg)}")
    got = _arg_fields(arg, where, ("dim", "parts"))
    _arg_int(got["dim"], where)
    if not _is_int(got["parts"]) or got["parts"] < 1:
        raise RecipeError(f"{where}: parts must be a positive integer, got {got['parts']!r}")
    return got


def _arg_split(arg: Any, where: str) -> dict:
    got = _arg_fields(arg, where, ("dim", "sizes"))
    _arg_int(got["dim"], where)
    sizes = _int_list(got["sizes"], where, "sizes")
    if not sizes or any(s < 0 for s in sizes):
        raise RecipeError(f"{where}: sizes must be a non-empty list of sizes >= 0")
    return {"dim": got["dim"], "sizes": sizes}


def _arg_narrow(arg: Any, where: str) -> dict:
    got = _arg_fields(arg, where, ("dim", "start", "length"))
    for f in ("dim", "start", "length"):
        _arg_int(got[f], where)
    if got["start"] < 0 or got["length"] < 0:
        raise RecipeError(f"{where}: start and length must be >= 0")
    return {"dim": got["dim"], "start": got["start"], "length": got["length"]}


def _arg_rope(arg: Any, where: str) -> dict:
    got = _arg_fields(arg, where, ("heads",))
    if not _is_int(got["heads"]) or got["heads"] < 1:
        raise RecipeError(f"{where}: heads must be a positive integer, got {got['heads']!r}")
    return {"heads": got["heads"]}


_ARGS: dict[str, Callable[[Any, str], Any]] = {
    "transpose": _arg_transpose, "permute": _arg_permute, "reshape": _arg_reshape,
    "squeeze": _arg_int, "unsqueeze": _arg_int, "chunk": _arg_chunk, "split": _arg_split,
    "cat": _arg_int, "stack": _arg_int, "unbind": _arg_int, "narrow": _arg_narrow,
    "rope_permute": _arg_rope, "rope_unpermute": _arg_rope,
}


# -- shape functions (one per op) ----------------------------------------------------------
def _each(fn: Callable[[Op, Shape], Shape]) -> Callable[[Op, list[Shape], int | None], list[Shape]]:
    return lambda op, shapes, parts: [fn(op, s) for s in shapes]


def _s_transpose(op: Op, s: Shape) -> Shape:
    if op.arg is None:
        if len(s) != 2:
            raise ConvertError(f"transpose: needs a 2-D tensor, got {s} (give the dims: {{transpose: [a, b]}})")
        return (s[1], s[0])
    a, b = (_dim(d, len(s), op.describe()) for d in op.arg)
    out = list(s)
    out[a], out[b] = s[b], s[a]
    return tuple(out)


def _s_permute(op: Op, s: Shape) -> Shape:
    if len(op.arg) != len(s):
        raise ConvertError(f"{op.describe()}: names {len(op.arg)} dims, the tensor {s} has {len(s)}")
    return tuple(s[d % len(s)] for d in op.arg)


def _s_reshape(op: Op, s: Shape) -> Shape:
    n = _numel(s)
    known = _numel([d for d in op.arg if d != -1])
    if -1 in op.arg:
        if known == 0 or n % known:
            raise ConvertError(f"{op.describe()}: {s} ({n} elements) does not fit")
        return tuple(n // known if d == -1 else d for d in op.arg)
    if known != n:
        raise ConvertError(f"{op.describe()}: {s} has {n} elements, the shape {known}")
    return tuple(op.arg)


def _s_squeeze(op: Op, s: Shape) -> Shape:
    d = _dim(op.arg, len(s), op.describe())
    if s[d] != 1:
        raise ConvertError(f"{op.describe()}: dim {op.arg} of {s} is {s[d]}, not 1")
    return s[:d] + s[d + 1:]


def _s_unsqueeze(op: Op, s: Shape) -> Shape:
    d = _dim(op.arg, len(s), op.describe(), extra=1)
    return s[:d] + (1,) + s[d:]


def _s_narrow(op: Op, s: Shape) -> Shape:
    a = op.arg
    d = _dim(a["dim"], len(s), op.describe())
    if a["start"] + a["length"] > s[d]:
        raise ConvertError(f"{op.describe()}: dim {a['dim']} of {s} has only {s[d]}")
    return s[:d] + (a["length"],) + s[d + 1:]


def _s_rope(op: Op, s: Shape) -> Shape:
    heads = op.arg["heads"]
    if not s or s[0] % (2 * heads):
        first = s[0] if s else "a scalar"
        raise ConvertError(f"{op.describe()}: dim 0 of {s} ({first}) is not heads x an even head size")
    return s


def _single(op: Op, shapes: list[Shape]) -> Shape:
    if len(shapes) != 1:
        raise ConvertError(f"{op.describe()}: takes one tensor, got {len(shapes)}")
    return shapes[0]


def _s_chunk(op: Op, shapes: list[Shape], parts: int | None) -> list[Shape]:
    s = _single(op, shapes)
    dim = op.arg if _is_int(op.arg) else op.arg["dim"]
    n = op.parts(parts)
    if n is None or n < 1:
        raise ConvertError(f"{op.describe()}: the number of parts is unknown")
    d = _dim(dim, len(s), op.describe())
    if s[d] % n:
        raise ConvertError(f"{op.describe()}: dim {dim} of {s} ({s[d]}) does not split into {n} equal parts")
    return [s[:d] + (s[d] // n,) + s[d + 1:]] * n


def _s_split(op: Op, shapes: list[Shape], parts: int | None) -> list[Shape]:
    s = _single(op, shapes)
    d = _dim(op.arg["dim"], len(s), op.describe())
    sizes = op.arg["sizes"]
    if sum(sizes) != s[d]:
        raise ConvertError(f"{op.describe()}: sizes add up to {sum(sizes)}, dim {op.arg['dim']} of {s} is {s[d]}")
    return [s[:d] + (n,) + s[d + 1:] for n in sizes]


def _s_unbind(op: Op, shapes: list[Shape], parts: int | None) -> list[Shape]:
    s = _single(op, shapes)
    d = _dim(op.arg, len(s), op.describe())
    return [s[:d] + s[d + 1:]] * s[d]


def _s_cat(op: Op, shapes: list[Shape], parts: int | None) -> list[Shape]:
    if not shapes:
        raise ConvertError(f"{op.describe()}: no tensors to join")
    first = shapes[0]
    d = _dim(op.arg, len(first), op.describe())
    for s in shapes[1:]:
        if len(s) != len(first) or s[:d] + s[d + 1:] != first[:d] + first[d + 1:]:
            raise ConvertError(f"{op.describe()}: {first} and {s} differ outside dim {op.arg}")
    return [first[:d] + (sum(s[d] for s in shapes),) + first[d + 1:]]


def _s_stack(op: Op, shapes: list[Shape], parts: int | None) -> list[Shape]:
    if not shapes:
        raise ConvertError(f"{op.describe()}: no tensors to stack")
    first = shapes[0]
    for s in shapes[1:]:
        if s != first:
            raise ConvertError(f"{op.describe()}: {first} and {s} differ (stack needs equal shapes)")
    d = _dim(op.arg, len(first), op.describe(), extra=1)
    return [first[:d] + (len(shapes),) + first[d:]]


_SHAPES = {
    "transpose": _each(_s_transpose), "permute": _each(_s_permute), "reshape": _each(_s_reshape),
    "squeeze": _each(_s_squeeze), "unsqueeze": _each(_s_unsqueeze), "narrow": _each(_s_narrow),
    "rope_permute": _each(_s_rope), "rope_unpermute": _each(_s_rope),
    "chunk": _s_chunk, "split": _s_split, "unbind": _s_unbind, "cat": _s_cat, "stack": _s_stack,
}


def _numel(shape: Iterable[int]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


# -- tensor functions (one per op; the shapes were checked before) -------------------------
def _t_transpose(op: Op, ts: list, parts: int | None) -> list:
    return [t.t() if op.arg is None else t.transpose(*op.arg) for t in ts]


def _rope(t, heads: int, forward: bool):
    """Meta's interleaved rotary pairs <-> HF's half-split halves, per head, along dim 0.

    As transformers' ``convert_llama_weights_to_hf.py`` ``permute`` does for a 2-D weight:
    view (heads, n/heads/2, 2, ...), swap the two middle dims, flatten back (and the reverse).
    """
    n, rest = t.shape[0], tuple(t.shape[1:])
    half = n // heads // 2
    grouped = (heads, half, 2, *rest) if forward else (heads, 2, half, *rest)
    return t.reshape(grouped).transpose(1, 2).reshape(n, *rest)


_APPLY: dict[str, Callable[[Op, list, int | None], list]] = {
    "transpose": _t_transpose,
    "permute": lambda op, ts, p: [t.permute(*op.arg) for t in ts],
    "reshape": lambda op, ts, p: [t.reshape(_s_reshape(op, tuple(t.shape))) for t in ts],
    "squeeze": lambda op, ts, p: [t.squeeze(op.arg) for t in ts],
    "unsqueeze": lambda op, ts, p: [t.unsqueeze(op.arg) for t in ts],
    "narrow": lambda op, ts, p: [t.narrow(op.arg["dim"], op.arg["start"], op.arg["length"]) for t in ts],
    "rope_permute": lambda op, ts, p: [_rope(t, op.arg["heads"], True) for t in ts],
    "rope_unpermute": lambda op, ts, p: [_rope(t, op.arg["heads"], False) for t in ts],
    "chunk": lambda op, ts, p: list(ts[0].chunk(op.parts(p), op.arg if _is_int(op.arg) else op.arg["dim"])),
    "split": lambda op, ts, p: list(ts[0].split(list(op.arg["sizes"]), op.arg["dim"])),
    "unbind": lambda op, ts, p: list(ts[0].unbind(op.arg)),
    "cat": lambda op, ts, p: [_torch().cat(ts, op.arg)],
    "stack": lambda op, ts, p: [_torch().stack(ts, op.arg)],
}


def _torch():
    import torch

    return torch


def run(ops: Sequence[Op], tensors: list, parts: int | None = None) -> list:
    """Apply ``ops`` in order to one group's tensors; ``parts``: a chunk's default count."""
    for op in ops:
        tensors = op.apply(tensors, parts)
    return tensors


def preview(ops: Sequence[Op], shapes: list[Shape], parts: int | None = None) -> list[Shape]:
    """The shapes ``run`` would give, reading no tensor (raises ``ConvertError``)."""
    shapes = [tuple(s) for s in shapes]
    for i, op in enumerate(ops, start=1):
        try:
            shapes = op.shapes(shapes, parts)
        except ConvertError as exc:
            raise ConvertError(f"op {i} ({exc.message})") from None
    return shapes


def trace(ops: Sequence[Op], shapes: list[Shape], parts: int | None = None) -> list[list[Shape]]:
    """The shapes before each op, then the result (what an inverse needs to know)."""
    steps = [[tuple(s) for s in shapes]]
    for op in ops:
        steps.append(op.shapes(steps[-1], parts))
    return steps


def describe_ops(ops: Sequence[Op]) -> str:
    return ", ".join(op.describe() for op in ops) if ops else "no ops"


# -- bounded patterns -----------------------------------------------------------------------
class PatternTooSlow(RecipeError):
    """A pattern ran past its time bound; ``detail`` says so without naming where (the caller
    that knows the rule's position adds it)."""

    def __init__(self, where: str, detail: str, source: "BoundedRegex | None" = None):
        self.detail, self.source = detail, source
        super().__init__(f"{where}: {detail}")


class BoundedRegex:
    """A recipe's regex: its syntax checked by ``re`` (what a training script replays), matched
    by the ``regex`` engine under a time bound with the GIL released, so a catastrophically
    backtracking pattern from one visitor ends in a one-line ``RecipeError`` naming ``where``
    instead of stalling the server. ``deadline`` (a ``time.monotonic()`` value) bounds a pass."""

    def __init__(self, pattern: str, where: str, checked: re.Pattern | None = None, bounded: bool = True):
        if bounded and len(pattern) > limits.MAX_PATTERN_CHARS:
            raise RecipeError(f"{where}: pattern of {len(pattern):,} characters exceeds the limit "
                              f"MAX_PATTERN_CHARS = {limits.MAX_PATTERN_CHARS:,}")
        try:
            self.re = checked or re.compile(pattern)
            self._rx = _regex.compile(pattern)
        except (re.error, _regex.error, RecursionError, OverflowError) as exc:
            reason = "groups nested too deeply" if isinstance(exc, RecursionError) else exc
            raise RecipeError(f"{where}: bad regex {_shown(pattern, 80)}: {reason}") from None
        self.pattern, self.where = pattern, where
        self.groups, self.groupindex = self.re.groups, self.re.groupindex

    def search(self, key: str, deadline: float | None = None) -> Any:
        return self._run(self._rx.search, key, (key,), deadline)

    def fullmatch(self, key: str, deadline: float | None = None) -> Any:
        return self._run(self._rx.fullmatch, key, (key,), deadline)

    def sub(self, replacement: str, key: str, deadline: float | None = None) -> str:
        return self._run(self._rx.sub, key, (replacement, key), deadline)

    def _run(self, fn: Callable[..., Any], key: str, args: tuple, deadline: float | None) -> Any:
        timeout = limits.MAX_MATCH_SECONDS
        if deadline is not None:
            timeout = min(timeout, deadline - time.monotonic())
            if timeout <= 0:
                raise PatternTooSlow(self.where, f"the rules took more than MAX_RENAME_SECONDS = "
                                                 f"{limits.MAX_RENAME_SECONDS:g} s over this checkpoint's keys", self)
        try:
            return fn(*args, timeout=timeout, concurrent=True)
        except TimeoutError:
            raise PatternTooSlow(self.where, f"pattern {_shown(self.pattern, 80)} took more than MAX_MATCH_SECONDS = "
                                             f"{limits.MAX_MATCH_SECONDS:g} s on key {_shown(key, 60)} (it backtracks "
                                             "catastrophically: avoid nested repeats like (a+)+)", self) from None


def _shown(text: str, limit: int = limits.MAX_PATTERN_CHARS) -> str:
    """A pattern or key as the user typed it (no doubled backslashes), cut at ``limit``."""
    return f"'{text[:limit]}'" + ("…" if len(text) > limit else "")


# -- key patterns ---------------------------------------------------------------------------
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class KeyPattern:
    """``blocks.{i}.attn.qkv.weight``: literal text with ``{name}`` placeholders."""

    text: str

    @cached_property
    def names(self) -> tuple[str, ...]:
        """Placeholder names in order of first appearance."""
        return tuple(dict.fromkeys(_PLACEHOLDER.findall(self.text)))

    @cached_property
    def regex(self) -> re.Pattern | BoundedRegex:
        """Placeholders each followed by a dot (or the end) match in linear time: ``re``.
        Others (``{a}_{b}``) can backtrack polynomially: the time-bounded engine."""
        parts, seen, pos = [], set(), 0
        for m in _PLACEHOLDER.finditer(self.text):
            parts.append(re.escape(self.text[pos:m.start()]))
            name = m.group(1)
            parts.append(f"(?P={name})" if name in seen else f"(?P<{name}>[^.]+)")
            seen.add(name)
            pos = m.end()
        parts.append(re.escape(self.text[pos:]))
        if all(self.text[m.end():m.end() + 1] in (".", "") for m in _PLACEHOLDER.finditer(self.text)):
            return re.compile("".join(parts))
        # generated from a checked pattern (its length bounded there; escaping makes it longer)
        return BoundedRegex("".join(parts), f"key pattern {_shown(self.text, 80)}", bounded=False)

    @cached_property
    def ends(self) -> tuple[str, str]:
        """The literal text before the first and after the last placeholder (a cheap first test)."""
        found = list(_PLACEHOLDER.finditer(self.text))
        if not found:
            return self.text, ""
        return self.text[:found[0].start()], self.text[found[-1].end():]

    def match(self, key: str) -> dict[str, str] | None:
        head, tail = self.ends
        if not (key.startswith(head) and key.endswith(tail)):
            return None
        m = self.regex.fullmatch(key)
        return m.groupdict() if m else None

    def fill(self, values: Mapping[str, str]) -> str:
        return _PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), self.text)

    def example(self) -> str:
        """The pattern with every placeholder as ``0`` (for "did you mean")."""
        return _PLACEHOLDER.sub("0", self.text)


def _check_pattern(text: Any, where: str) -> KeyPattern:
    if not isinstance(text, str) or not text:
        raise RecipeError(f"{where}: a key pattern must be a non-empty string, got {_name(text)}")
    if len(text) > limits.MAX_PATTERN_CHARS:
        raise RecipeError(f"{where}: key pattern of {len(text):,} characters exceeds the limit "
                          f"MAX_PATTERN_CHARS = {limits.MAX_PATTERN_CHARS:,}")
    stripped = _PLACEHOLDER.sub("", text)
    if "{" in stripped or "}" in stripped:
        raise RecipeError(f"{where}: bad placeholder in {text!r} (write {{name}}: letters, digits, _)")
    if "}{" in text:
        raise RecipeError(f"{where}: placeholders in {text!r} touch each other (cannot tell where one ends)")
    return KeyPattern(text)


# -- conversions -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Conversion:
    """One ``convert`` entry. ``sources``/``targets`` are patterns; ``many_from``/``many_to``
    remember whether YAML gave a list (so the round trip is exact)."""

    sources: tuple[str, ...]
    targets: tuple[str, ...]
    ops: tuple[Op, ...] = ()
    many_from: bool = False
    many_to: bool = False

    @classmethod
    def from_dict(cls, data: Any, index: int = 1) -> "Conversion":
        if isinstance(data, Conversion):
            data.validate(index)
            return data
        where = f"convert {index}"
        if not isinstance(data, dict):
            raise RecipeError(f"{where}: expected {{from: ..., to: ..., ops: [...]}}, got {_name(data)}")
        extra = [k for k in data if k not in CONVERT_FIELDS]
        if extra:
            raise RecipeError(f"{where}: {_unknown('field', extra[0], CONVERT_FIELDS)}")
        for f in ("from", "to"):
            if f not in data:
                raise RecipeError(f"{where}: needs 'from' and 'to'")
        sources, many_from = _patterns(data["from"], f"{where} (from)")
        targets, many_to = _patterns(data["to"], f"{where} (to)")
        ops_in = data.get("ops") or []
        if not isinstance(ops_in, list):
            raise RecipeError(f"{where}: 'ops' must be a list, got {_name(ops_in)}")
        ops = tuple(Op.from_value(v, f"{where}, op {i}") for i, v in enumerate(ops_in, start=1))
        conv = cls(sources, targets, ops, many_from, many_to)
        conv.validate(index)
        return conv

    def to_dict(self) -> dict:
        out: dict[str, Any] = {
            "from": list(self.sources) if self.many_from else self.sources[0],
            "to": list(self.targets) if self.many_to else self.targets[0],
        }
        out["ops"] = [op.to_value() for op in self.ops]
        return out

    def describe(self) -> str:
        """``convert 'a.{i}' -> 'b.{i}': transpose``."""
        src = ", ".join(repr(s) for s in self.sources)
        dst = ", ".join(repr(t) for t in self.targets)
        return f"{src} -> {dst}: {describe_ops(self.ops)}"

    # -- static checks ---------------------------------------------------------------------
    @cached_property
    def from_patterns(self) -> tuple[KeyPattern, ...]:
        return tuple(KeyPattern(s) for s in self.sources)

    @cached_property
    def to_patterns(self) -> tuple[KeyPattern, ...]:
        return tuple(KeyPattern(t) for t in self.targets)

    @cached_property
    def shared(self) -> tuple[str, ...]:
        """Placeholders on both sides: one group per combination of their values."""
        to_names = set(self.to_patterns[0].names)
        return tuple(n for n in self.from_patterns[0].names if n in to_names)

    @cached_property
    def stacked(self) -> str | None:
        """The placeholder of ``from`` absent from ``to`` (every match feeds one group)."""
        extra = [n for n in self.from_patterns[0].names if n not in self.to_patterns[0].names]
        return extra[0] if extra else None

    @cached_property
    def unbound(self) -> str | None:
        """The placeholder of ``to`` absent from ``from`` (one target per output index)."""
        extra = [n for n in self.to_patterns[0].names if n not in self.from_patterns[0].names]
        return extra[0] if extra else None

    def validate(self, index: int) -> None:
        where = f"convert {index}"
        for side, pats in (("from", self.sources), ("to", self.targets)):
            if not pats:
                raise RecipeError(f"{where}: '{side}' names no key pattern")
            for p in pats:
                _check_pattern(p, f"{where} ({side})")
            names = [set(KeyPattern(p).names) for p in pats]
            if any(n != names[0] for n in names[1:]):
                raise RecipeError(f"{where}: the '{side}' patterns use different placeholders "
                                  f"({', '.join('{' + ','.join(sorted(n)) + '}' for n in names)})")
            if len(set(pats)) != len(pats):
                raise RecipeError(f"{where}: '{side}' names one pattern twice")
        from_names = set(KeyPattern(self.sources[0]).names)
        to_names = set(KeyPattern(self.targets[0]).names)
        only_from, only_to = sorted(from_names - to_names), sorted(to_names - from_names)
        if len(only_from) > 1 or len(only_to) > 1 or (only_from and only_to):
            raise RecipeError(f"{where}: at most one placeholder may appear on one side only "
                              f"(from has {_braced(only_from) or 'none'}, to has {_braced(only_to) or 'none'})")
        if only_from and len(self.sources) > 1:
            raise RecipeError(f"{where}: a stacking placeholder {_braced(only_from)} needs a single 'from' pattern")
        if only_to and len(self.targets) > 1:
            raise RecipeError(f"{where}: an unbinding placeholder {_braced(only_to)} needs a single 'to' pattern")
        n = VARIABLE if only_from else len(self.sources)
        for i, op in enumerate(self.ops, start=1):
            n = op.count(n, self.chunk_parts, f"{where}, op {i} ({op.name})")
        want = VARIABLE if only_to else len(self.targets)
        if only_to and n != VARIABLE:
            raise RecipeError(f"{where}: 'to' has placeholder {_braced(only_to)} that 'from' lacks "
                              "(only an unbind op makes one target per index)")
        if n != want:
            have = "a variable number of tensors" if n == VARIABLE else f"{n} tensor{'s' if n != 1 else ''}"
            hint = " (add a stack or cat op)" if n == VARIABLE else ""
            raise RecipeError(f"{where}: the ops give {have} but 'to' names {len(self.targets)}{hint}")

    @property
    def chunk_parts(self) -> int | None:
        """A bare ``chunk: d`` splits into as many parts as ``to`` names."""
        return None if self.unbound else len(self.targets)

    @property
    def invertible(self) -> bool:
        return all(op.invertible for op in self.ops)

    def inverted(self, shapes: list[Shape] | None = None) -> "Conversion":
        """``to`` -> ``from`` through each op's inverse, in reverse order. ``shapes``: one
        group's source shapes (needed to undo ``reshape`` and an unequal ``cat``)."""
        steps = trace(self.ops, shapes, self.chunk_parts) if shapes is not None else None
        ops = []
        for i in reversed(range(len(self.ops))):
            ops.append(self.ops[i].inverse(steps[i] if steps is not None else None))
        back = Conversion(self.targets, self.sources, tuple(_tidy_chunk(ops, len(self.sources))),
                          self.many_to, self.many_from)
        return back


def _tidy_chunk(ops: list[Op], n_targets: int) -> list[Op]:
    """``{chunk: {dim: d, parts: n}}`` becomes ``{chunk: d}`` when n is the number of targets
    and it is the op that makes them (the form people write)."""
    out = list(ops)
    multi = [i for i, op in enumerate(out) if op.name in ONE_TO_MANY + MANY_TO_ONE]
    if multi and out[multi[-1]].name == "chunk" and isinstance(out[multi[-1]].arg, dict):
        op = out[multi[-1]]
        if op.arg["parts"] == n_targets:
            out[multi[-1]] = Op("chunk", op.arg["dim"])
    return out


def _braced(names: Iterable[str]) -> str:
    return ", ".join("{" + n + "}" for n in names)


def _patterns(value: Any, where: str) -> tuple[tuple[str, ...], bool]:
    if isinstance(value, str):
        return (value,), False
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return tuple(value), True
    raise RecipeError(f"{where}: expected a key pattern or a non-empty list of them, got {_name(value)}")


# -- matching ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Group:
    """One application of a conversion: concrete source keys -> concrete target keys."""

    index: int  # the entry's position, from 1
    conversion: Conversion
    sources: tuple[str, ...]
    targets: tuple[str, ...]
    source_shapes: tuple[Shape, ...]
    target_shapes: tuple[Shape, ...]  # what the ops produce, per target

    @property
    def ops(self) -> tuple[Op, ...]:
        return self.conversion.ops

    def run(self, tensors: list) -> list:
        return run(self.ops, tensors, self.conversion.chunk_parts)

    def stacked_values(self) -> tuple[str, ...]:
        """The values the stacking placeholder took, in stacking order (empty: no stack)."""
        name = self.conversion.stacked
        if name is None:
            return ()
        pat = self.conversion.from_patterns[0]
        return tuple(pat.match(s)[name] for s in self.sources)

    def family(self, side: str) -> str:
        """The ``from`` (or ``to``) pattern of this group: shared placeholders filled, the one
        of that side only left as ``{name}`` (``'l.0.experts.{e}.w1'``)."""
        conv = self.conversion
        pat = conv.from_patterns[0] if side == "from" else conv.to_patterns[0]
        key = self.sources[0] if side == "from" else self.targets[0]
        values = pat.match(key) or {}
        own = conv.stacked if side == "from" else conv.unbound
        return pat.fill({**values, **({own: "{" + own + "}"} if own else {})})

    def describe(self, target: str | None = None) -> str:
        """``convert 1: transpose of 'h.0.attn.c_attn.weight'`` (and which part, for 1 -> N)."""
        srcs = ", ".join(f"'{s}'" for s in self.sources)
        part = ""
        if target is not None and len(self.targets) > 1:
            part = f" (output {self.targets.index(target) + 1} of {len(self.targets)})"
        return f"convert {self.index}: {describe_ops(self.ops)} of {srcs}{part}"


@dataclass
class Matches:
    """Every group found, and which source keys the conversions claim."""

    groups: list[Group] = field(default_factory=list)
    claimed: dict[str, Group] = field(default_factory=dict)


def _order(value: str) -> tuple:
    """Numbers in numeric order (``10`` after ``9``), then any other text in string order."""
    return (0, int(value), value) if value.isascii() and value.isdigit() else (1, 0, value)


def is_count(values: Sequence[str]) -> bool:
    """``values`` are ``0, 1, ..., n-1`` as an unbind names its outputs."""
    return list(values) == [str(i) for i in range(len(values))]


def show_values(values: Sequence[str], limit: int = 6) -> str:
    """``0, 2, 5`` (the first few, then how many more)."""
    shown = ", ".join(values[:limit])
    return shown + (f", ... ({len(values) - limit} more)" if len(values) > limit else "")


def unbind_clash(groups: Iterable[Group], target_keys: Iterable[str]) -> str | None:
    """Why an unbind would feed the wrong target keys, or None.

    A stacked tensor does not keep the indices its slices had; an unbind names them
    ``0..n-1``. When the target holds keys of that family under other indices (experts
    0, 2, 5 stacked, then unbound as 0, 1, 2), some outputs land on no target key while
    some target keys go unfed: writing them would put slices under the wrong names.
    """
    unbinding = [g for g in groups if g.conversion.unbound and g.targets]
    if not unbinding:
        return None
    keys = list(target_keys)
    indexed: dict[int, dict[tuple, list[str]]] = {}  # per conversion: shared values -> the target's indices
    for g in unbinding:
        conv, name = g.conversion, g.conversion.unbound
        pat = conv.to_patterns[0]
        others = [n for n in pat.names if n != name]
        if g.index not in indexed:
            table: dict[tuple, list[str]] = {}
            for key in keys:  # one pass over the target per conversion, not per group
                values = pat.match(key)
                if values is not None:
                    table.setdefault(tuple(values[n] for n in others), []).append(values[name])
            indexed[g.index] = table
        first = pat.match(g.targets[0])
        made = [pat.match(t)[name] for t in g.targets]
        have = indexed[g.index].get(tuple(first[n] for n in others), [])
        if set(made) - set(have) and set(have) - set(made):
            have = sorted(have, key=_order)
            return (f"convert {g.index}: unbind of {', '.join(repr(s) for s in g.sources)} names its slices "
                    f"{g.family('to')!r} for {{{name}}} = 0..{len(made) - 1}, the target has "
                    f"{{{name}}} = {show_values(have)} (a stacked tensor does not keep its indices)")
    return None
    keys = list(target_keys)
    for g in unbinding:
        conv, name = g.conversion, g.conversion.unbound
        pat = conv.to_patterns[0]
        shared = {n: v for n, v in (pat.match(g.targets[0]) or {}).items() if n != name}
        made = [pat.match(t)[name] for t in g.targets]
        have = []
        for key in keys:
            values = pat.match(key)
            if values is not None and all(values[n] == v for n, v in shared.items()):
                have.append(values[name])
        if set(made) - set(have) and set(have) - set(made):
            have.sort(key=_order)
            return (f"convert {g.index}: unbind of {', '.join(repr(s) for s in g.sources)} names its slices "
                    f"{g.family('to')!r} for {{{name}}} = 0..{len(made) - 1}, the target has "
                    f"{{{name}}} = {show_values(have)} (a stacked tensor does not keep its indices)")
    return None


def find_groups(conversions: Sequence[Conversion], source_shapes: Mapping[str, Shape],
                strict: bool = True, start: int = 1) -> Matches:
    """Match each conversion against the source keys (in recipe order; a key claimed by an
    earlier entry is not offered to a later one) and preview every group's output shapes.

    With ``strict`` a conversion that matches nothing, or whose ops do not fit the shapes,
    raises a one-line ``RecipeError`` naming the entry; otherwise it is skipped. ``start``:
    the position of the first entry (an editor checking one line at a time).
    """
    out = Matches()
    keys = list(source_shapes)
    for index, conv in enumerate(conversions, start=start):
        try:
            groups = _groups_of(index, conv, [k for k in keys if k not in out.claimed], source_shapes)
        except RecipeError:
            if strict:
                raise
            continue
        if not groups:
            if strict:
                raise RecipeError(f"convert {index}: {_no_match(conv, keys)}")
            continue
        for g in groups:
            out.groups.append(g)
            for s in g.sources:
                out.claimed[s] = g
    return out


def _groups_of(index: int, conv: Conversion, keys: list[str], shapes: Mapping[str, Shape]) -> list[Group]:
    pats = conv.from_patterns
    found: dict[tuple, dict[int, list[tuple[tuple, str]]]] = {}
    for key in keys:
        for p, pat in enumerate(pats):
            values = pat.match(key)
            if values is None:
                continue
            group_key = tuple(values[n] for n in conv.shared)
            order = _order(values[conv.stacked]) if conv.stacked else ()
            found.setdefault(group_key, {}).setdefault(p, []).append((order, key))
            break
    groups = []
    previews: dict[tuple, list[Shape]] = {}  # layers alike share one preview
    for group_key, by_pattern in found.items():
        if len(by_pattern) != len(pats):
            continue  # a group that lacks one of its sources is left to the rules
        sources = tuple(k for p in range(len(pats)) for _, k in sorted(by_pattern[p]))
        values = dict(zip(conv.shared, group_key))
        in_shapes = [tuple(shapes[s]) for s in sources]
        try:
            signature = tuple(in_shapes)
            out_shapes = previews.get(signature)
            if out_shapes is None:
                out_shapes = previews[signature] = preview(conv.ops, in_shapes, conv.chunk_parts)
        except ConvertError as exc:
            shown = ", ".join(f"'{s}' {sh}" for s, sh in zip(sources[:3], in_shapes[:3]))
            raise ConvertError(f"convert {index}: {exc.message} on {shown}"
                               f"{' ...' if len(sources) > 3 else ''}") from None
        if conv.unbound:
            pat = conv.to_patterns[0]
            targets = tuple(pat.fill({**values, conv.unbound: str(i)}) for i in range(len(out_shapes)))
        else:
            targets = tuple(pat.fill(values) for pat in conv.to_patterns)
        groups.append(Group(index, conv, sources, targets, tuple(in_shapes), tuple(out_shapes)))
    return groups


def _no_match(conv: Conversion, keys: list[str]) -> str:
    shown = ", ".join(f"'{s}'" for s in conv.sources)
    text = f"{shown} matches no source key"
    if len(conv.sources) > 1:
        text = f"no source keys match all of {shown}"
    close = get_close_matches(conv.from_patterns[0].example(), keys, n=1, cutoff=0.6)
    return text + (f" (did you mean {close[0]!r}?)" if close else "")
