"""Acceptance checks of the command line as a newcomer meets it (defects found by the
outside-in review, one test each)."""
from __future__ import annotations

import torch

from ckptlab.cli import main


def test_a_wrong_container_lists_weights_not_each_optimizer_entry(tmp_path, capsys):
    """A training file's Adam state is one entry, not ten container candidates: the error
    for a wrong ``--container`` names the model state and the optimizer state once."""
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    opt = torch.optim.Adam(model.parameters())
    model(torch.randn(2, 3)).sum().backward()
    opt.step()
    path = tmp_path / "train.pt"
    torch.save({"step": 1, "model_state": model.state_dict(), "optimizer_state": opt.state_dict()}, path)
    assert main(["inspect", str(path), "--container", "nope"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "'model_state'" in err and "optimizer_state.state." not in err, err
    assert "'optimizer_state' (optimizer state, 4 per-parameter entries)" in err, err
