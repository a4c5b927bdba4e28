"""``getattr(SomeEnum, "MEMBER")``: how Python 3.11.0-3.11.3 pickle an enum member (torch's DCP
metadata holds such members). Read as an inert placeholder of a class ckptlab never imports; never
a real attribute lookup, never on a refused global."""
from __future__ import annotations

import pytest

import ckptlab
from ckptlab.errors import CheckpointError
from tests.security.crafted import Ops, as_zip


def _with_extra(path, make_value) -> None:
    ops = Ops().empty_dict().str("weight").tensor().setitem().str("kind")
    make_value(ops)
    as_zip(path, ops.setitem().stop())


def test_an_enum_member_pickled_through_getattr_reads_as_a_placeholder(tmp_path):
    path = tmp_path / "enum.pt"
    _with_extra(path, lambda ops: ops.glob("builtins", "getattr").glob("some.lib", "Kind").str("WEIGHT").tuple2()
                .reduce())
    ck = ckptlab.open(path)
    assert ck.keys() == ["weight"]
    assert [(o.key, o.type) for o in ck.other] == [("kind", "some.lib.Kind.WEIGHT")]


@pytest.mark.parametrize(("module", "name", "attr"), [("os", "system", "x"), ("some.lib", "Kind", "__class__ ")])
def test_getattr_on_a_refused_global_or_with_a_strange_name_is_refused(tmp_path, module, name, attr):
    path = tmp_path / "bad.pt"
    _with_extra(path, lambda ops: ops.glob("builtins", "getattr").glob(module, name).str(attr).tuple2().reduce())
    with pytest.raises(CheckpointError, match="getattr in a pickle|refusing"):
        ckptlab.open(path)
