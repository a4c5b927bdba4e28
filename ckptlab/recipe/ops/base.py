"""What every conversion op is: one class holding its YAML form, shape rule, tensor function
and inverse, so an op is read (and added) in one place.

An op works on the list of tensors of one group: most act on each tensor (``arity`` EACH),
``cat``/``stack`` take many and give one, ``chunk``/``split``/``unbind`` take one and give
many. Shapes are checked without reading a tensor (align and the app preview with them), and
``apply`` checks them first, so a bad input gets the same one-line error. Torch is imported
only inside ``apply``: parsing and previewing a recipe stays torch-free.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from ckptlab.errors import RecipeError
from ckptlab.recipe.parsing import _type_name, unknown

__all__ = [
    "Shape", "VARIABLE", "EACH", "MANY_TO_ONE", "ONE_TO_MANY", "ConvertError", "Op", "DimOp",
    "run", "preview", "trace", "describe_ops",
]

Shape = tuple[int, ...]
VARIABLE = -1  # a tensor count known only from the shapes (a stacking or unbinding placeholder)
EACH, MANY_TO_ONE, ONE_TO_MANY = "each", "many_to_one", "one_to_many"


class ConvertError(RecipeError):
    """An op cannot be applied to these shapes (the message names the op and the shapes)."""


class Op:
    """One tensor op. Subclasses are frozen dataclasses whose fields are the op's argument;
    they set ``name`` and ``example`` and write ``parse``, ``arg``, a shape rule
    (``shape_one`` or ``shape_all``), a tensor function (``apply_one`` or ``apply_all``)
    and ``inverse``."""

    name: ClassVar[str]
    arity: ClassVar[str] = EACH
    invertible: ClassVar[bool] = True
    bare: ClassVar[bool] = False  # may be written as the bare name (``- transpose``)
    # a YAML argument and input shapes it fits: the registry test runs every op on it
    example: ClassVar[tuple[Any, tuple[Shape, ...]]]

    # -- (de)serialising -------------------------------------------------------------------
    @classmethod
    def parse(cls, value: Any, where: str) -> "Op":
        """The op from its YAML argument (``RecipeError`` naming ``where`` when it is wrong)."""
        raise NotImplementedError

    @property
    def arg(self) -> Any:
        """The YAML argument, normalised (lists as tuples; None: the bare form)."""
        raise NotImplementedError

    def to_value(self) -> Any:
        if self.bare and self.arg is None:
            return self.name
        arg = self.arg
        if isinstance(arg, tuple):
            arg = list(arg)
        elif isinstance(arg, dict):
            arg = {k: list(v) if isinstance(v, tuple) else v for k, v in arg.items()}
        return {self.name: arg}

    def describe(self) -> str:
        """``transpose``, ``transpose [0, 2]``, ``chunk 0``, ``rope_permute heads=8``."""
        arg = self.arg
        if arg is None:
            return self.name
        if isinstance(arg, dict):
            return f"{self.name} " + ", ".join(f"{k}={list(v) if isinstance(v, tuple) else v}" for k, v in arg.items())
        return f"{self.name} {list(arg) if isinstance(arg, tuple) else arg}"

    # -- counts and shapes -----------------------------------------------------------------
    def count(self, n_in: int, parts: int | None, where: str) -> int:
        """How many tensors come out of ``n_in`` (``VARIABLE``: known from shapes only)."""
        if self.arity == MANY_TO_ONE:
            return 1
        if self.arity == ONE_TO_MANY:
            if n_in != 1:
                many = "a variable number" if n_in == VARIABLE else str(n_in)
                raise RecipeError(f"{where}: {self.name} takes one tensor, but {many} reach it")
            return self.outputs(parts, where)
        return n_in

    def outputs(self, parts: int | None, where: str) -> int:
        """How many tensors a one-to-many op gives (``VARIABLE`` when the shapes say)."""
        raise NotImplementedError

    def shapes(self, shapes: list[Shape], parts: int | None = None) -> list[Shape]:
        """The output shapes of ``shapes`` (raises ``ConvertError`` when they do not work)."""
        return self.shape_all([tuple(s) for s in shapes], parts)

    def shape_all(self, shapes: list[Shape], parts: int | None) -> list[Shape]:
        return [self.shape_one(s) for s in shapes]

    def shape_one(self, s: Shape) -> Shape:
        raise NotImplementedError

    def single(self, shapes: list[Shape]) -> Shape:
        """The one input shape of a one-to-many op."""
        if len(shapes) != 1:
            raise ConvertError(f"{self.describe()}: takes one tensor, got {len(shapes)}")
        return shapes[0]

    # -- tensors ---------------------------------------------------------------------------
    def apply(self, tensors: list, parts: int | None = None) -> list:
        """The output tensors; checks the shapes first, so a bad input gets a clear error."""
        self.shapes([tuple(t.shape) for t in tensors], parts)
        return self.apply_all(list(tensors), parts)

    def apply_all(self, tensors: list, parts: int | None) -> list:
        return [self.apply_one(t) for t in tensors]

    def apply_one(self, tensor: Any) -> Any:
        raise NotImplementedError

    # -- inverse ---------------------------------------------------------------------------
    def inverse(self, in_shapes: list[Shape] | None = None) -> "Op":
        """The op that undoes this one. ``in_shapes``: the shapes this op received (some ops
        need them); ``ConvertError`` when it cannot be undone or needs shapes not given."""
        raise NotImplementedError


@dataclass(frozen=True)
class DimOp(Op):
    """An op whose whole argument is one dim (``squeeze: 0``, ``cat: 1``)."""

    dim: int

    @classmethod
    def parse(cls, value: Any, where: str) -> "Op":
        return cls(parse_dim(value, where))

    @property
    def arg(self) -> Any:
        return self.dim


# -- argument parsing helpers (one-line RecipeErrors naming ``where``) ----------------------------
def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_dim(value: Any, where: str) -> int:
    if not is_int(value):
        raise RecipeError(f"{where}: expected an integer dim, got {_type_name(value)}")
    return value


def parse_ints(value: Any, where: str, what: str) -> tuple[int, ...]:
    if not isinstance(value, (list, tuple)) or not all(is_int(v) for v in value):
        raise RecipeError(f"{where}: {what} must be a list of integers, got {_type_name(value)}")
    return tuple(value)


def parse_fields(value: Any, where: str, fields: tuple[str, ...], optional: tuple[str, ...] = ()) -> dict:
    """A mapping with exactly ``fields`` (and any of ``optional``), in that order."""
    if not isinstance(value, dict):
        raise RecipeError(f"{where}: expected {{{', '.join(f + ': ...' for f in fields)}}}, got {_type_name(value)}")
    allowed = fields + optional
    extra = [k for k in value if k not in allowed]
    if extra:
        raise RecipeError(f"{where}: {unknown('field', extra[0], allowed)}")
    for f in fields:
        if f not in value:
            raise RecipeError(f"{where}: needs {', '.join(repr(x) for x in fields)}")
    return {f: value[f] for f in allowed if f in value}


# -- shape helpers -------------------------------------------------------------------------------
def dim_index(d: int, rank: int, what: str, extra: int = 0) -> int:
    """``d`` in ``[-rank-extra, rank+extra)`` as a non-negative dim, or a ConvertError."""
    n = rank + extra
    if not -n <= d < n:
        raise ConvertError(f"{what}: dim {d} is out of range for a {rank}-D tensor")
    return d % n if n else 0


def numel(shape: Iterable[int]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


# -- a list of ops ----------------------------------------------------------------------------
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
