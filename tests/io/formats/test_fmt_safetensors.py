"""safetensors: header-only listing, exact spans, metadata, every dtype the format has."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file
from tensor_cases import random_tensor, same_bytes

import ckptlab
from ckptlab.io.formats.safetensors_fmt import DTYPES


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    tensors = {f"dtype.{code}": random_tensor(dtype, (3, 5), seed=i) for i, (code, dtype) in enumerate(DTYPES.items())}
    tensors.update(scalar=torch.tensor(2.5), empty=torch.empty(0, 4), column=torch.arange(12.0).reshape(3, 4))
    path = tmp_path_factory.mktemp("st") / "all.safetensors"
    save_file(tensors, str(path), metadata={"format": "pt", "epoch": "3"})
    return path, tensors


def test_header_gives_keys_shapes_dtypes_and_metadata(saved, reads):
    path, tensors = saved
    ck = ckptlab.open(path)
    assert ck.format == "safetensors"
    assert sorted(ck.keys()) == sorted(tensors)
    for key, t in tensors.items():
        assert (ck.info(key).shape, ck.info(key).dtype, ck.info(key).nbytes) == (
            tuple(t.shape), t.dtype, t.numel() * t.element_size())
    assert ck.metadata == {"format": "pt", "epoch": "3"}
    assert reads == []


def test_values_are_byte_exact_and_read_span_by_span(saved, reads):
    path, tensors = saved
    ck = ckptlab.open(path)
    for key, t in tensors.items():
        assert same_bytes(ck.tensor(key), t), key
    assert sorted(n for _, _, n in reads if n) == sorted(t.numel() * t.element_size() for t in tensors.values()
                                                          if t.numel())


def test_the_bundled_sample_matches_its_torch_twin(sample):
    st = ckptlab.open(sample("convnet_rgb.safetensors"))
    pt = ckptlab.open(sample("convnet_rgb.pt"))
    assert sorted(st.keys()) == sorted(pt.keys())
    for key in pt.keys():
        assert torch.equal(st.tensor(key), pt.tensor(key))


def test_opening_makes_no_tensor_object_until_one_is_asked_for(saved):
    """The header stays a table: ``info`` answers from it, and each key's LazyTensor is made
    once, when first asked for, and is the same object after (so ties stay recognisable)."""
    from ckptlab.io.formats.base import TensorTable

    path, tensors = saved
    ck = ckptlab.open(path)
    table = ck._tensors
    assert type(table) is TensorTable and table._made == {}
    assert [ck.info(k) for k in ck.keys()] and table._made == {}
    first = ck.lazy("column")
    assert ck.lazy("column") is first and first.info == ck.info("column") and list(table._made) == ["column"]
    assert ck.total_bytes == sum(t.numel() * t.element_size() for t in tensors.values())
    with pytest.raises(ckptlab.CheckpointError, match="no tensor named 'ghost'"):
        ck.info("ghost")


def test_keys_come_in_file_order_and_each_reads_its_own_span(tmp_path):
    """A header may list its tensors in any order: keys come in the order of their bytes in
    the file, and each tensor reads the span its ``data_offsets`` name (parsed when the
    first tensor is made, after the library validated the header)."""
    import json
    import struct

    values = {"z.second": torch.tensor([3.0, 4.0]), "a.first": torch.tensor([1.0, 2.0]),
              "m.empty": torch.empty(0, dtype=torch.float32)}
    header = json.dumps({"z.second": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]},
                         "m.empty": {"dtype": "F32", "shape": [0], "data_offsets": [16, 16]},
                         "a.first": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                         "__metadata__": {"k": "v"}}).encode()
    header += b" " * (-len(header) % 8)
    path = tmp_path / "order.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + values["a.first"].numpy().tobytes()
                     + values["z.second"].numpy().tobytes())
    ck = ckptlab.open(path)
    assert ck.keys() == ["a.first", "z.second", "m.empty"] and ck.metadata == {"k": "v"}
    assert all(torch.equal(ck.tensor(k), v) for k, v in values.items())
    assert ck.lazy("z.second").file_span == (str(path), 8 + len(header) + 8, 8)
