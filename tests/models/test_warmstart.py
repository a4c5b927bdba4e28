"""load_into: in-place warm starts with the rules of remap, and never a silent empty load."""
from __future__ import annotations

import copy
import warnings

import pytest
import torch
from torch import nn

import ckptlab
from ckptlab.errors import CheckpointError, MergeError
from ckptlab.models.warmstart import CkptlabWarning, load_into
from sample_ckpts import models
from tests.paths import SAMPLES


def _sd(name: str, container: str | None = None) -> dict[str, torch.Tensor]:
    obj = torch.load(SAMPLES / name, weights_only=True)
    return obj[container] if container else obj


def test_story5_wrapper_loads_all_23_keys_equal_to_the_source():
    model = models.AttentionWrapper()
    params_before = {name: p for name, p in model.named_parameters()}
    with warnings.catch_warnings():
        warnings.simplefilter("error", CkptlabWarning)      # a good load must not warn
        report = ckptlab.load_into(model, SAMPLES / "attention_net_ckpt.pt")
    source = _sd("attention_net_ckpt.pt", "net")
    assert len(source) == 23 and len(report.pretrained) == 23
    state = model.state_dict()
    for key, value in source.items():
        assert torch.equal(state["attention_map." + key], value), key
    assert any(v.abs().sum() > 0 for v in source.values() if v.is_floating_point())
    # same tensor objects: an optimizer built before the load still trains the loaded weights
    assert all(p is params_before[n] for n, p in model.named_parameters())
    assert sorted(report.missing) == ["backbone.bias", "backbone.weight", "head.bias", "head.weight"]


def test_empty_load_warns_loudly_and_changes_nothing():
    model = models.AttentionWrapper()
    before = copy.deepcopy(model.state_dict())
    with pytest.warns(CkptlabWarning, match="NOTHING was loaded: 0 of 27 keys fed"):
        report = load_into(model, SAMPLES / "attention_net_ckpt.pt", recipe={"container": "net"}, auto="none")
    assert report.pretrained == []
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key])
    assert issubclass(CkptlabWarning, UserWarning)


def test_near_empty_load_warns():
    model = models.AttentionWrapper()
    source = {k: v for k, v in _sd("attention_net_ckpt.pt", "net").items() if k.startswith("conv1.")}
    with pytest.warns(CkptlabWarning, match="only 2 of 27 target keys are fed"):
        report = load_into(model, {"attention_map." + k: v for k, v in source.items()})
    assert len(report.loaded) == 2


def test_story4_rename_and_a_fresh_head():
    model = models.WarmStartNet()
    head_before = copy.deepcopy(model.new_fc.state_dict())
    recipe = {"rules": [{"replace": {"pattern": r"^conv1\.", "with": "backbone_conv."}}]}
    report = load_into(model, SAMPLES / "smallnet.pt", recipe=recipe)
    source = _sd("smallnet.pt")
    assert torch.equal(model.backbone_conv.weight, source["conv1.weight"])
    assert torch.equal(model.bn2.running_var, source["bn2.running_var"])
    for key, value in model.new_fc.state_dict().items():
        assert torch.equal(value, head_before[key])
    assert sorted(report.missing) == ["new_fc.bias", "new_fc.weight"]
    assert sorted(report.unused) == ["fc.bias", "fc.weight"]
    assert report.row("backbone_conv.weight").status == "renamed"


def test_mismatch_blocks_and_copies_nothing_unless_keep_target():
    model = models.ConvNet(in_chans=4)
    before = copy.deepcopy(model.state_dict())
    with pytest.raises(MergeError, match="shape mismatch at 'conv1.weight'"):
        load_into(model, SAMPLES / "convnet_rgb.pt")
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    report = load_into(model, SAMPLES / "convnet_rgb.pt", on_mismatch="keep-target")
    assert torch.equal(model.conv1.weight, before["conv1.weight"])
    assert torch.equal(model.conv2.weight, _sd("convnet_rgb.pt")["conv2.weight"])
    assert report.row("conv1.weight").status == "mismatch"


def test_adapter_recipe_rgb_to_rgba():
    model = models.ConvNet(in_chans=4)
    report = load_into(model, SAMPLES / "convnet_rgb.pt",
                       recipe={"adapt": {"conv1.weight": {"op": "pad", "dim": 1, "fill": "zeros"}}})
    w = _sd("convnet_rgb.pt")["conv1.weight"]
    assert torch.equal(model.conv1.weight[:, :3], w)
    assert torch.equal(model.conv1.weight[:, 3], torch.zeros_like(w[:, 0]))
    assert report.adapted == ["conv1.weight"]


def test_same_tensors_as_remap(tmp_path):
    """load_into and remap follow one plan: the model ends up holding remap's file."""
    recipe = {"rules": [{"replace": {"pattern": r"^conv1\.", "with": "backbone_conv."}}]}
    model = models.WarmStartNet()
    target = copy.deepcopy(model)
    ckptlab.remap(SAMPLES / "smallnet.pt", target, tmp_path / "out.safetensors", recipe=recipe)
    load_into(model, SAMPLES / "smallnet.pt", recipe=recipe)
    from safetensors.torch import load_file
    written = load_file(tmp_path / "out.safetensors")
    assert written.keys() == model.state_dict().keys()
    for key, value in model.state_dict().items():
        assert torch.equal(value, written[key]), key


def test_keeps_the_models_dtype():
    model = models.ConvNet().double()
    load_into(model, SAMPLES / "convnet_rgb.pt")
    w = _sd("convnet_rgb.pt")["conv1.weight"]
    assert model.conv1.weight.dtype == torch.float64
    assert torch.equal(model.conv1.weight, w.double())


def test_meta_model_is_refused():
    with torch.device("meta"):
        model = models.ConvNet()
    with pytest.raises(CheckpointError, match=r"on the meta device .*to_empty"):
        load_into(model, SAMPLES / "convnet_rgb.pt")


class _Tied(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(6, 4)
        self.lm_head = nn.Linear(4, 6, bias=False)
        self.lm_head.weight = self.embed.weight


def test_tied_weights_load_once_and_conflicting_values_warn():
    model = _Tied()
    w = torch.randn(6, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CkptlabWarning)
        load_into(model, {"embed.weight": w, "lm_head.weight": w.clone()})
    assert torch.equal(model.embed.weight, w) and model.lm_head.weight is model.embed.weight
    with pytest.warns(CkptlabWarning, match="'lm_head.weight' is tied to 'embed.weight'"):
        load_into(model, {"embed.weight": w, "lm_head.weight": w + 1})
    assert torch.equal(model.embed.weight, w + 1)


# -- incompatible_keys: what plain load_state_dict(strict=False) says -------------------
def _renamed(alignment: ckptlab.Alignment, source: dict) -> dict:
    """The source as a training script would rename it with the same recipe's rules."""
    renamed = alignment.effective_recipe.rename(list(source))
    return {new: source[old] for old, (new, _) in renamed.items() if new is not None}


def test_incompatible_keys_are_torchs_own_categories():
    """Projector -> Classifier(100) stripping 'classifier.' and dropping the first conv:
    the head is a size mismatch (torch raises), the dropped conv is missing, the projector
    unexpected; nothing mismatched is called missing."""
    from ckptlab.models.warmstart import incompatible_keys

    recipe = {"rules": [{"drop": r"^classifier\.backbone\.0\."}, {"strip_prefix": "classifier."}]}
    alignment = ckptlab.align(SAMPLES / "projector.pt", SAMPLES / "classifier_100.pt", recipe, auto="none")
    view = incompatible_keys(alignment)
    source, model = _sd("projector.pt"), models.Classifier(100)
    renamed = _renamed(alignment, source)
    with pytest.raises(RuntimeError) as raised:
        model.load_state_dict(renamed, strict=False)
    reported = sorted(line.split("size mismatch for ")[1].split(":")[0]
                      for line in str(raised.value).splitlines() if "size mismatch for" in line)
    assert reported == sorted(m["key"] for m in view.size_mismatch) == ["fc.bias", "fc.weight"]
    shapes = {m["key"]: (m["checkpoint_shape"], m["model_shape"]) for m in view.size_mismatch}
    assert view.raises and shapes["fc.weight"] == ([10, 16], [100, 16]) == (
        list(source["classifier.fc.weight"].shape), list(model.fc.weight.shape))
    fitting = {k: v for k, v in renamed.items() if k not in reported}
    result = model.load_state_dict(fitting, strict=False)
    assert sorted(view.missing_keys) == sorted(set(result.missing_keys) - set(reported))
    assert sorted(view.unexpected_keys) == sorted(result.unexpected_keys)
    assert view.missing_keys and view.unexpected_keys
    assert not set(view.missing_keys) & set(reported)
    assert sorted(view.dropped) == sorted(k for k in source if k.startswith("classifier.backbone.0."))
    assert view.to_dict()["raises"] is True


def test_incompatible_keys_adapted_and_conflicts():
    from ckptlab.models.warmstart import incompatible_keys

    grow = {"op": "pad", "dim": 0, "fill": "init"}
    grown = incompatible_keys(ckptlab.align(SAMPLES / "classifier_10.pt", SAMPLES / "classifier_100.pt",
                                            {"adapt": {"fc.weight": grow, "fc.bias": grow}}, auto="none"))
    assert sorted(grown.adapted) == ["fc.bias", "fc.weight"] and not grown.raises and not grown.missing_keys
    both = ckptlab.align({"a.weight": torch.zeros(2), "b.weight": torch.zeros(2)}, {"w.weight": torch.zeros(2)},
                         {"rules": [{"replace": {"pattern": "^[ab]\\.", "with": "w."}}]}, auto="none")
    view = incompatible_keys(both)
    assert view.conflicts == [{"key": "w.weight", "sources": ["a.weight", "b.weight"]}]
    assert not view.missing_keys and not view.unexpected_keys
