"""Acceptance checks of the conversions as a user meets them through the public API
(defects found by the outside-in review, one test each)."""
from __future__ import annotations

import torch

import ckptlab
from tests.models import hf, llama
from tests.test_known_conversions import TOL, reseeded, tokens


def test_load_into_an_hf_model_takes_the_heads_from_that_models_config(tmp_path):
    """``load_into(hf_model, meta_file)``: the rotary head count is in the model's config,
    as it is for ``align(meta_file, hf_model)``; it was lost (nothing loaded, "no suggestion")
    because load_into wrapped the model in a config-less Checkpoint first."""
    meta = reseeded(llama.llama(), seed=5)
    path = tmp_path / "consolidated.00.pth"
    torch.save(meta.state_dict(), path)  # a bare file: no params.json beside it
    h = reseeded(hf.llama())
    assert ckptlab.align(path, h).summary["converted"] == len(h.state_dict())
    report = ckptlab.load_into(h, path)
    assert report.summary["converted"] == len(h.state_dict())
    with torch.no_grad():
        assert (h(tokens()).logits - meta(tokens())).abs().max() <= TOL
