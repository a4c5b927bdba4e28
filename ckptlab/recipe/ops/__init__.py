"""Conversion ops, one class each (``base.Op``: YAML form, shape rule, tensor function and
inverse together), and the registry a recipe's ``ops`` list is read through.

Adding an op: one module here holding its class (or a pair that undo each other), one line in
``OPS`` below, and its ``example``, which tests/recipe/test_ops.py runs through parse, apply
and inverse. The order of ``OPS`` is the order error messages and the app's help list them in.
"""
from __future__ import annotations

from typing import Any

from ckptlab.errors import RecipeError
from ckptlab.recipe.ops.base import (
    EACH, MANY_TO_ONE, ONE_TO_MANY, VARIABLE, ConvertError, Op, Shape, describe_ops, preview, run, trace,
)
from ckptlab.recipe.ops.chunk import Cat, Chunk, Split
from ckptlab.recipe.ops.narrow import Narrow
from ckptlab.recipe.ops.permute import Permute
from ckptlab.recipe.ops.resample import Resample
from ckptlab.recipe.ops.reshape import Reshape
from ckptlab.recipe.ops.rope import RopePermute, RopeUnpermute
from ckptlab.recipe.ops.squeeze import Squeeze, Unsqueeze
from ckptlab.recipe.ops.stack import Stack, Unbind
from ckptlab.recipe.ops.transpose import Transpose
from ckptlab.recipe.parsing import _type_name, unknown

__all__ = [
    "OPS", "parse_op", "Op", "ConvertError", "Shape", "VARIABLE", "EACH", "MANY_TO_ONE", "ONE_TO_MANY",
    "run", "preview", "trace", "describe_ops",
    "Transpose", "Permute", "Reshape", "Squeeze", "Unsqueeze", "Chunk", "Split", "Cat", "Stack", "Unbind",
    "Narrow", "RopePermute", "RopeUnpermute", "Resample",
]

OPS: dict[str, type[Op]] = {op.name: op for op in (
    Transpose, Permute, Reshape, Squeeze, Unsqueeze, Chunk, Split, Cat, Stack, Unbind, Narrow,
    RopePermute, RopeUnpermute, Resample,
)}


def parse_op(value: Any, where: str = "op") -> Op:
    """``"transpose"``, ``{"transpose": [0, 2]}``, ``{"chunk": 0}``, ``{"split": {...}}``."""
    if isinstance(value, Op):
        return value
    names = tuple(OPS)
    if isinstance(value, str):
        if value not in OPS:
            raise RecipeError(f"{where}: {unknown('op', value, names)}")
        if not OPS[value].bare:
            raise RecipeError(f"{where}: {value} needs an argument ({{{value}: ...}})")
        return OPS[value].parse(None, where)
    if not isinstance(value, dict) or len(value) != 1:
        got = f"{len(value)} keys" if isinstance(value, dict) else _type_name(value)
        raise RecipeError(f"{where}: expected an op name or one 'op: argument' pair, got {got}")
    (name, arg), = value.items()
    if name not in OPS:
        raise RecipeError(f"{where}: {unknown('op', name, names)}")
    return OPS[name].parse(arg, f"{where} ({name})")
