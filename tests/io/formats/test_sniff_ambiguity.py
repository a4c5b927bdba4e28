"""A safetensors header length can begin with pickle's magic bytes; content must still win."""
import torch
from safetensors.torch import save_file

import ckptlab


def test_safetensors_whose_length_looks_like_a_pickle_opens(tmp_path):
    path = tmp_path / "t.safetensors"
    for pad in range(1200, 1500):  # find the metadata length that makes the header 0x580 bytes
        save_file({"w": torch.arange(3.0)}, path, metadata={"x": "a" * pad})
        if path.read_bytes()[:2] == b"\x80\x05":
            break
    assert path.read_bytes()[:2] == b"\x80\x05"
    ck = ckptlab.open(path)
    assert ck.format == "safetensors"
    assert torch.equal(ck.tensor("w"), torch.arange(3.0))
