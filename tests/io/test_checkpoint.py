"""The Checkpoint view over opened files: totals, aliases, errors, laziness."""
from __future__ import annotations

import pytest
import torch

import ckptlab
from ckptlab.errors import CheckpointError
from ckptlab.io.checkpoint import Checkpoint


def test_totals_match_the_saved_tensors(sample):
    ck = ckptlab.open(sample("font_unet_self_attention.pt"))
    sd = torch.load(sample("font_unet_self_attention.pt"), weights_only=True)
    assert len(ck) == len(sd) and list(ck) == list(sd)
    assert ck.total_params == sum(t.numel() for t in sd.values())
    assert ck.total_bytes == sum(t.numel() * t.element_size() for t in sd.values())
    assert all(key in ck for key in sd) and "nope" not in ck


def test_unknown_key_names_the_key_and_file(sample):
    ck = ckptlab.open(sample("smallnet.pt"))
    with pytest.raises(CheckpointError, match=r"smallnet.pt: no tensor named 'fc9.weight'"):
        ck.tensor("fc9.weight")


def test_tied_weights_survive_a_round_trip_through_a_file(tmp_path):
    model = torch.nn.Sequential(torch.nn.Embedding(5, 3), torch.nn.Linear(3, 5, bias=False))
    model[1].weight = model[0].weight
    path = tmp_path / "tied.pt"
    torch.save(model.state_dict(), path)
    opened = ckptlab.open(path)
    assert opened.aliases() == [("0.weight", "1.weight")] == Checkpoint.from_module(model).aliases()


def test_lazy_handles_and_repr(sample):
    ck = ckptlab.open(sample("attention_net_ckpt.pt"))
    handle = ck.lazy("conv1.weight")
    assert handle.info == ck.info("conv1.weight")
    assert torch.equal(handle.load(), ck.tensor("conv1.weight"))
    assert "container='net'" in repr(ck) and "tensors=23" in repr(ck)
    assert ck.name.endswith("attention_net_ckpt.pt")
