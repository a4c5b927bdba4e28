"""The legacy (pre-1.6) torch format, written by ``_use_new_zipfile_serialization=False``."""
from __future__ import annotations

import pytest
import torch
from tensor_cases import (
    assert_matches_torch_load,
    dtype_cases,
    layout_cases,
    savable_dtypes,
)

import ckptlab


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    tensors = {**dtype_cases(savable_dtypes(legacy=True)), **layout_cases()}
    path = tmp_path_factory.mktemp("legacy") / "all.pt"
    torch.save(tensors, path, _use_new_zipfile_serialization=False)
    return path, tensors


def test_opens_lazily_with_exact_metadata(saved, reads):
    path, tensors = saved
    ck = ckptlab.open(path)
    assert ck.format == "torch-legacy"
    assert ck.keys() == list(tensors)
    for key, t in tensors.items():
        assert (ck.info(key).shape, ck.info(key).dtype) == (tuple(t.shape), t.dtype)
    assert reads == []


def test_values_and_strides_match_torch_load(saved):
    path, tensors = saved
    assert_matches_torch_load(path, tensors)
    assert ("tied.a", "tied.b") in ckptlab.open(path).aliases()


def test_storages_are_found_by_seeking_over_size_headers(tmp_path, reads):
    a, b = torch.arange(10, dtype=torch.int64), torch.ones(3, dtype=torch.float16)
    path = tmp_path / "two.pt"
    torch.save({"a": a, "b": b}, path, _use_new_zipfile_serialization=False)
    ck = ckptlab.open(path)
    assert torch.equal(ck.tensor("b"), b) and torch.equal(ck.tensor("a"), a)
    assert [n for _, _, n in reads] == [6, 80]  # exactly each tensor's bytes


def test_a_whole_model_in_legacy_format(tmp_path):
    model = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.BatchNorm1d(3))
    path = tmp_path / "model.pt"
    torch.save(model, path, _use_new_zipfile_serialization=False)
    ck = ckptlab.open(path)
    assert ck.keys() == list(model.state_dict())
    assert "torch.nn.modules.container.Sequential" in ck.placeholders
    for key, value in model.state_dict().items():
        assert torch.equal(ck.tensor(key), value)
