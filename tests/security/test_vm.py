"""ckptlab's pickle machine reads what CPython writes: every protocol, every plain value."""
from __future__ import annotations

import collections
import datetime
import io
import pickle

import pytest
import torch

import ckptlab
from ckptlab.io.formats.unpickler import restricted_load

VALUES = {
    "none": None, "bools": [True, False], "ints": [0, 1, -1, 255, 256, 65535, 2**31, -2**31 - 1, 2**62, -2**70],
    "floats": [0.0, -1.5, 1e308, float("inf")], "complex": complex(1, -2),
    "text": ["", "a", "ünïcødé", "x" * 300, "line\nbreak", "\udcff"], "bytes": [b"", b"\x00\xff" * 200],
    "bytearray": bytearray(b"abc"), "tuples": [(), (1,), (1, 2), (1, 2, 3), (1, 2, 3, 4), ((1,), ((2,),))],
    "set": {1, 2, 3}, "frozenset": frozenset({"a", (1, 2)}), "dict": {"a": {"b": [1, {"c": ()}]}, 1: 2, (1, 2): 3},
    "ordered": collections.OrderedDict([("z", 1), ("a", 2)]), "counter": collections.Counter("abca"),
    "datetime": datetime.datetime(2024, 5, 17, 12, 30, 1, 500), "date": datetime.date(2020, 1, 2),
    "timedelta": datetime.timedelta(days=3, seconds=7), "slice": slice(1, 10, 2),
    "shared": (lambda x: [x, x, {"again": x}])([1, 2]),
}


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_plain_values_read_back_equal_in_every_protocol(protocol):
    data = pickle.dumps(VALUES, protocol=protocol)
    got, placeholders = restricted_load(io.BytesIO(data), "values.pkl")
    assert placeholders == set()
    assert got == pickle.loads(data)
    assert got["shared"][0] is got["shared"][1]  # memo references stay shared
    assert type(got["ordered"]) is collections.OrderedDict and list(got["ordered"]) == ["z", "a"]


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_torch_saves_in_every_protocol_read_bit_identically(tmp_path, protocol):
    tensors = {"f32": torch.randn(3, 4, generator=torch.Generator().manual_seed(protocol)),
               "f64": torch.arange(5, dtype=torch.float64) / 7, "i8": torch.arange(-3, 3, dtype=torch.int8),
               "view": torch.arange(20.0).reshape(4, 5)[1:3, ::2]}
    for legacy in (False, True):
        path = tmp_path / f"p{protocol}{'_legacy' if legacy else ''}.pt"
        torch.save(tensors, path, pickle_protocol=protocol, _use_new_zipfile_serialization=not legacy)
        ck = ckptlab.open(path)
        for key, want in tensors.items():
            got = ck.tensor(key)
            assert got.dtype == want.dtype and torch.equal(got, want), (path.name, key)


def test_the_machine_and_its_memo_go_when_the_load_returns():
    """No reference cycle keeps a machine alive: what the pickle made and did not return is
    freed at once (a million-object memo left to the cyclic collector costs a full pass)."""
    import gc

    data = b"\x80\x02cghostlib\nGhost\n)\x81q\x000N."  # a stood-in object, memoized, popped; returns None
    was = gc.isenabled()
    gc.disable()
    try:
        assert restricted_load(io.BytesIO(data), "ghost.pkl")[0] is None
        left = [o for o in gc.get_objects() if type(o).__name__ == "Ghost" and type(o).__module__ == "ckptlab.placeholders"]
    finally:
        if was:
            gc.enable()
    assert left == []
