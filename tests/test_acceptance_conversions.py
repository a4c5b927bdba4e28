"""Acceptance checks of the conversions as a user meets them through the public API
(defects found by the outside-in review, one test each)."""
from __future__ import annotations

import torch

import ckptlab
from tests.recipe.test_known_conversions import TOL, reseeded, tokens
from tests.zoo import hf, llama


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


def test_param_groups_refuses_a_report_made_for_another_model(tmp_path):
    """A report whose pretrained keys name nothing in the model (made for another model, or
    a prefix apart) would put every parameter in the "new" group at lr x 10, silently."""
    import pytest

    from ckptlab.errors import CheckpointError

    source = {f"module.{k}": v for k, v in torch.nn.Linear(3, 2).state_dict().items()}
    wrapped = torch.nn.Sequential(torch.nn.Linear(3, 2))
    report = ckptlab.remap(source, {"0.weight": torch.zeros(2, 3), "0.bias": torch.zeros(2)},
                           tmp_path / "out.safetensors", recipe={"rules": [{"strip_prefix": "module."},
                                                                         {"add_prefix": "0."}]})
    assert len(ckptlab.param_groups(wrapped, report)) == 1  # the model it was made for: all pretrained
    with pytest.raises(CheckpointError, match="none of the 2 pretrained keys"):
        ckptlab.param_groups(torch.nn.Linear(3, 2), report)  # keys '0.weight', '0.bias' are not its names
    assert ckptlab.param_groups(torch.nn.Linear(3, 2), [])[0]["name"] == "new"  # nothing pretrained: fine


def test_auto_all_into_a_deeper_nanogpt_applies_one_of_two_overlapping_transposes():
    """GPT-2 (2 blocks) -> a 3-block nanoGPT, auto="all": the known conversion (medium here:
    block 2 stays missing) and the structural transposes both suggest the same entries;
    applying both made the second's entries match nothing and align raised ConvertError
    ("convert 5: ... matches no source key") about a recipe the user never wrote."""
    from tests.zoo import gpt

    al = ckptlab.align(hf.gpt2(), gpt.nanogpt(n_layer=3), auto="all")
    assert al.summary["converted"] == 8 and al.summary["mismatch"] == 0
    assert sum(s.applied for s in al.suggestions if "convert" in s.rule) == 1
