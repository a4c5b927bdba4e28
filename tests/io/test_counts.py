"""Counts say what they count: floating vs integer elements in a file, parameters vs buffers
for a model definition, an optimizer's per-parameter state as one entry."""
from __future__ import annotations

import json

import pytest
import torch

import ckptlab
from ckptlab.cli import main
from ckptlab.io.containers import split_optimizer
from ckptlab.io.counts import counts
from ckptlab.io.model_target import model_target


def trained(tmp_path, layout: str):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8), torch.nn.Linear(8, 2))
    opt = torch.optim.Adam(model.parameters())
    model(torch.randn(5, 4)).sum().backward()
    opt.step()
    path = tmp_path / "train.pt"
    if layout == "plain":
        torch.save({"step": 1, "model_state": model.state_dict(), "optimizer_state": opt.state_dict()}, path)
    else:  # Lightning: a list of optimizer states
        torch.save({"state_dict": model.state_dict(), "optimizer_states": [opt.state_dict()], "epoch": 0}, path)
    return path, model, opt


def test_a_file_counts_floating_and_integer_elements(tmp_path):
    path, model, _ = trained(tmp_path, "plain")
    sd = model.state_dict()
    c = counts(ckptlab.open(path))
    assert c.floating == sum(v.numel() for v in sd.values() if v.is_floating_point())
    assert c.integer == sum(v.numel() for v in sd.values() if not v.is_floating_point()) == 1  # num_batches_tracked
    assert c.parameters is None and "parameter" not in c.describe()


def test_a_model_definition_tells_parameters_from_buffers():
    ck = model_target("sample_ckpts.models:ConvNet", {"in_chans": 3})
    real = ck.build()
    c = counts(ck)
    assert c.parameters == sum(p.numel() for p in real.parameters())
    assert c.buffers == sum(b.numel() for b in real.buffers())
    assert c.floating + c.integer == c.parameters + c.buffers
    assert f"{c.parameters:,} parameter + {c.buffers:,} buffer elements" in c.describe()


@pytest.mark.parametrize("layout, owner", [("plain", "optimizer_state"), ("lightning", "optimizer_states.0")])
def test_optimizer_state_is_one_entry_not_container_candidates(tmp_path, capsys, layout, owner):
    path, _, opt = trained(tmp_path, layout)
    weights, states = split_optimizer(ckptlab.open(path).candidates)
    assert [s.path for s in states] == [owner]
    assert states[0].entries == len(opt.state_dict()["state"])
    assert states[0].tensors == sum(len(s) for s in opt.state_dict()["state"].values())
    assert all(not c.path.startswith(owner) for c in weights)

    assert main(["inspect", str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["optimizer"] == [{"path": owner, "entries": states[0].entries, "tensors": states[0].tensors,
                                 "nbytes": states[0].nbytes}]
    assert out["total_params"] == out["elements"]["floating"] + out["elements"]["integer"]  # the contract's key stays
    assert main(["inspect", str(path)]) == 0
    text = capsys.readouterr().out
    assert f"optimizer state at {owner}: {states[0].entries} per-parameter entries" in text
    assert "other containers" not in text


def test_inspect_a_model_definition(capsys):
    assert main(["inspect", "sample_ckpts.models:ConvNet", "--model-kwargs", '{"in_chans": 4}']) == 0
    text = capsys.readouterr().out
    ck = model_target("sample_ckpts.models:ConvNet", {"in_chans": 4})
    assert counts(ck).describe() in text and "(8, 4, 3, 3)" in text
