"""The op registry, op by op: every op in ``OPS`` reads back to the YAML it was read from, its
shape rule agrees with the tensors it makes, and its inverse undoes it bit for bit (or, when it
drops values, says so). Iterating the registry covers a new op as soon as it is registered."""
from __future__ import annotations

import pytest
import torch

from ckptlab.errors import RecipeError
from ckptlab.recipe.ops import OPS, ConvertError, Op, parse_op


def _tensors(shapes, seed: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(s, generator=g) for s in shapes]


@pytest.mark.parametrize("name", list(OPS))
def test_every_registered_op_round_trips_its_yaml(name):
    cls = OPS[name]
    assert issubclass(cls, Op) and cls.name == name
    arg, _ = cls.example
    op = parse_op({name: arg}, "convert 1, op 1")
    assert type(op) is cls
    assert op.to_value() == {name: arg}
    assert parse_op(op.to_value()) == op
    assert op.describe().startswith(name)


@pytest.mark.parametrize("name", list(OPS))
def test_every_registered_op_is_undone_by_its_inverse(name):
    arg, shapes = OPS[name].example
    op = parse_op({name: arg})
    tensors = _tensors(shapes, seed=len(name))
    out = op.apply(tensors, len(tensors))
    assert [tuple(t.shape) for t in out] == op.shapes(list(shapes), len(tensors))
    if not op.invertible:
        with pytest.raises(ConvertError, match="drops part of the tensor|cannot be undone"):
            op.inverse(list(shapes))
        return
    back = op.inverse(list(shapes)).apply(out, len(tensors))
    assert len(back) == len(tensors)
    for got, want in zip(back, tensors):
        assert got.dtype == want.dtype and torch.equal(got, want)
    changed = len(out) != len(tensors) or any(a.shape != b.shape or not torch.equal(a, b) for a, b in zip(out, tensors))
    assert changed  # an example the op leaves alone would prove nothing about its inverse


def test_the_registry_lists_the_ops_in_the_order_messages_name_them():
    with pytest.raises(RecipeError, match=r"expected transpose, permute, reshape, squeeze, unsqueeze, chunk, "
                                        r"split, cat, stack, unbind, narrow, rope_permute, rope_unpermute, resample\)"):
        parse_op("nope")
