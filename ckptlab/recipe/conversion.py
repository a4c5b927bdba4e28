"""A recipe's ``convert`` entry: source key pattern(s) to target key pattern(s) through a list of ops.

Renames alone cannot move GPT-2's Conv1D weights (stored transposed) into an ``nn.Linear``
GPT, split timm's fused ``qkv`` into HF's q/k/v, or reorder LLaMA's rotary dims. Patterns use
``{name}`` placeholders (``key_patterns``); a placeholder of ``from`` absent from ``to`` stacks
every match in numeric order, and one of ``to`` absent from ``from`` takes the outputs of an
``unbind``, one per index ``0..n-1``. With several ``from`` patterns the stacked matches reach the
ops pattern by pattern (every ``w1`` of the experts, then every ``w3``: ``stack``, ``chunk`` in two,
``cat`` give transformers' fused ``gate_up_proj``); with several ``to`` patterns the unbound
outputs are dealt out the same way, an equal share to each. The ops (``ops/``) are pure, each with a shape rule and an
inverse, so ``Conversion.inverted`` undoes an entry bit for bit; matching an entry against a
checkpoint's keys is ``groups``.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

from ckptlab.errors import RecipeError
from ckptlab.recipe.key_patterns import KeyPattern, braced, check_pattern
from ckptlab.recipe.ops import EACH, VARIABLE, Chunk, Op, Shape, describe_ops, parse_op, trace
from ckptlab.recipe.parsing import _type_name, unknown

__all__ = ["Conversion", "CONVERT_FIELDS"]

CONVERT_FIELDS = ("from", "to", "ops")


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
            raise RecipeError(f"{where}: expected {{from: ..., to: ..., ops: [...]}}, got {_type_name(data)}")
        extra = [k for k in data if k not in CONVERT_FIELDS]
        if extra:
            raise RecipeError(f"{where}: {unknown('field', extra[0], CONVERT_FIELDS)}")
        for f in ("from", "to"):
            if f not in data:
                raise RecipeError(f"{where}: needs 'from' and 'to'")
        sources, many_from = _patterns(data["from"], f"{where} (from)")
        targets, many_to = _patterns(data["to"], f"{where} (to)")
        ops_in = data.get("ops") or []
        if not isinstance(ops_in, list):
            raise RecipeError(f"{where}: 'ops' must be a list, got {_type_name(ops_in)}")
        ops = tuple(parse_op(v, f"{where}, op {i}") for i, v in enumerate(ops_in, start=1))
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

    @cached_property
    def ops_text(self) -> str:
        """``describe_ops(self.ops)``, worked out once: each of the entry's groups names it in
        the reason of every row it feeds (20,000 rows of one conversion)."""
        return describe_ops(self.ops)

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
                check_pattern(p, f"{where} ({side})")
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
                              f"(from has {braced(only_from) or 'none'}, to has {braced(only_to) or 'none'})")
        n = VARIABLE if only_from else len(self.sources)
        for i, op in enumerate(self.ops, start=1):
            n = op.count(n, self.chunk_parts, f"{where}, op {i} ({op.name})")
        want = VARIABLE if only_to else len(self.targets)
        if only_to and n != VARIABLE:
            raise RecipeError(f"{where}: 'to' has placeholder {braced(only_to)} that 'from' lacks "
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
    multi = [i for i, op in enumerate(out) if op.arity != EACH]
    last = out[multi[-1]] if multi else None
    if isinstance(last, Chunk) and last.parts == n_targets:
        out[multi[-1]] = Chunk(last.dim)
    return out


def _patterns(value: Any, where: str) -> tuple[tuple[str, ...], bool]:
    if isinstance(value, str):
        return (value,), False
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return tuple(value), True
    raise RecipeError(f"{where}: expected a key pattern or a non-empty list of them, got {_type_name(value)}")
