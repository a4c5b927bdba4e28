"""Sharded sets: model.safetensors.index.json and pytorch_model.bin.index.json."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

import ckptlab
from ckptlab.errors import UnreadableFileError


def _state() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {f"layers.{i}.{name}": torch.randn(4, 3, generator=g) for i in range(3) for name in ("weight", "bias")}


def _write_set(folder, kind: str) -> tuple[str, dict]:
    state = _state()
    keys = list(state)
    shards = {f"part-1.{kind}": keys[:3], f"part-2.{kind}": keys[3:]}
    for name, part in shards.items():
        subset = {k: state[k] for k in part}
        save_file(subset, str(folder / name)) if kind == "safetensors" else torch.save(subset, folder / name)
    index = "model.safetensors.index.json" if kind == "safetensors" else "pytorch_model.bin.index.json"
    weight_map = {k: name for name, part in shards.items() for k in part}
    (folder / index).write_text(json.dumps({"metadata": {"total_size": 288}, "weight_map": weight_map}))
    return index, state


@pytest.mark.parametrize("kind, fmt", [("safetensors", "sharded-safetensors"), ("bin", "sharded-torch")])
def test_both_index_kinds_open_as_one_mapping(tmp_path, reads, kind, fmt):
    index, state = _write_set(tmp_path, kind)
    ck = ckptlab.open(tmp_path / index)
    assert ck.format == fmt
    assert ck.keys() == list(state)
    assert ck.metadata["total_size"] == "288" and ck.metadata["shards"] == "2"
    assert reads == []
    for key, value in state.items():
        assert torch.equal(ck.tensor(key), value)


def test_a_folder_with_one_index_opens_it(tmp_path):
    _write_set(tmp_path, "safetensors")
    assert ckptlab.open(tmp_path).format == "sharded-safetensors"


def test_a_safetensors_set_stays_one_table_of_its_shards_tensors(tmp_path):
    from ckptlab.io.formats.base import TensorTable

    index, state = _write_set(tmp_path, "safetensors")
    ck = ckptlab.open(tmp_path / index)
    assert type(ck._tensors) is TensorTable and list(ck.keys()) == list(state)
    assert all(ck.info(k).shape == tuple(t.shape) for k, t in state.items())
    assert ck.lazy("layers.2.bias") is ck.lazy("layers.2.bias")
    assert all(torch.equal(ck.tensor(k), t) for k, t in state.items())


def test_index_naming_a_key_its_shard_lacks(tmp_path):
    index, _ = _write_set(tmp_path, "safetensors")
    data = json.loads((tmp_path / index).read_text())
    data["weight_map"]["ghost.weight"] = "part-1.safetensors"
    (tmp_path / index).write_text(json.dumps(data))
    with pytest.raises(UnreadableFileError, match="ghost.weight"):
        ckptlab.open(tmp_path / index)


@pytest.mark.parametrize("shard", ["missing.safetensors", "../outside.safetensors", "/etc/passwd"])
def test_bad_shard_names_are_refused(tmp_path, shard):
    (tmp_path / "m.index.json").write_text(json.dumps({"weight_map": {"a": shard}}))
    with pytest.raises(UnreadableFileError, match="shard"):
        ckptlab.open(tmp_path / "m.index.json")


def test_an_index_without_weight_map(tmp_path):
    (tmp_path / "m.index.json").write_text(json.dumps({"metadata": {}}))
    with pytest.raises(UnreadableFileError, match="weight_map"):
        ckptlab.open(tmp_path / "m.index.json")
