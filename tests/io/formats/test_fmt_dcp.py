"""torch.distributed.checkpoint folders, saved single-process with ``no_dist=True``."""
from __future__ import annotations

import pytest
import torch
import torch.distributed.checkpoint as dcp
from tensor_cases import random_tensor, same_bytes

import ckptlab


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dcp") / "ckpt"
    state = {
        "model": {f"{name}.weight": random_tensor(dtype, (3, 4), seed=i) for i, (name, dtype) in enumerate(
            [("f32", torch.float32), ("bf16", torch.bfloat16), ("i64", torch.int64), ("b", torch.bool)])},
        "step": 12,
        "tag": "run-7",
    }
    state["model"]["scalar"] = torch.tensor(1.5)
    state["model"]["view"] = torch.arange(20.0).reshape(4, 5)[1:3]
    dcp.save(state, checkpoint_id=str(folder), no_dist=True)
    return folder, state


def test_keys_shapes_dtypes_from_the_metadata(saved, reads):
    folder, state = saved
    ck = ckptlab.open(folder)
    assert ck.format == "dcp" and ck.container == "model"
    assert ck.keys() == list(state["model"])
    for key, t in state["model"].items():
        assert (ck.info(key).shape, ck.info(key).dtype) == (tuple(t.shape), t.dtype)
    assert reads == []


def test_values_read_back_exactly(saved):
    folder, state = saved
    ck = ckptlab.open(folder)
    for key, t in state["model"].items():
        assert same_bytes(ck.tensor(key), t), key


def test_non_tensor_values_are_listed_and_kept(saved):
    folder, _ = saved
    ck = ckptlab.open(folder)
    assert {(e.key, e.type) for e in ck.other} == {("step", "int"), ("tag", "str")}
    assert ck.extras == {"step": 12, "tag": "run-7"}


def test_a_folder_without_metadata_is_refused(tmp_path):
    (tmp_path / "__0_0.distcp").write_bytes(b"x")
    with pytest.raises(ckptlab.UnreadableFileError, match="no .metadata"):
        ckptlab.open(tmp_path)


def test_a_tensor_split_into_chunks_is_assembled():
    from ckptlab.io.formats.storage import lazy_from_chunks
    from ckptlab.io.tensor_info import TensorInfo

    whole = torch.arange(24.0).reshape(4, 6)
    pieces = [((0, 0), whole[:2]), ((2, 0), whole[2:, :4]), ((2, 4), whole[2:, 4:])]
    lazies = [(off, ckptlab.Checkpoint.from_mapping({"p": p.clone()}).lazy("p")) for off, p in pieces]
    lazy = lazy_from_chunks(TensorInfo((4, 6), torch.float32, 96), lazies, "w")
    assert torch.equal(lazy.load(), whole)
