"""Acceptance checks of stats/diff as a user meets them (defects found by the outside-in
review, one test each)."""
from __future__ import annotations

import json

import torch
from safetensors.torch import save_file

import ckptlab


def test_a_pair_whose_figures_are_undefined_says_why(tmp_path):
    """One NaN in A makes max_abs / rel_l2 / cosine undefined (None, valid JSON); the pair
    then says why in its note instead of showing blanks with no reason."""
    b = {"w": torch.arange(12, dtype=torch.float32), "v": torch.ones(4)}
    a = {k: v.clone() for k, v in b.items()}
    a["w"][5] = float("nan")
    a["v"][0] = float("inf")
    save_file(a, tmp_path / "a.safetensors")
    save_file(b, tmp_path / "b.safetensors")
    d = ckptlab.diff(tmp_path / "a.safetensors", tmp_path / "b.safetensors")
    out = json.loads(json.dumps(d.to_dict(), allow_nan=False))
    for pair in out["pairs"]:
        assert pair["equal"] is False and pair["max_abs"] is None
        assert "NaN" in pair["note"] and "Inf" in pair["note"], pair
