"""Param groups and freeze plans: real optimizers, real schedulers, real gradient steps."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from ckptlab.errors import RecipeError
from ckptlab.models.finetune import param_groups, plan
from sample_ckpts import models
from tests.paths import SAMPLES


def _classifier_and_pretrained() -> tuple[nn.Module, list[str]]:
    """Classifier(100) and the keys classifier_10.pt can fill (same name, same shape)."""
    model = models.Classifier(100)
    sd = torch.load(SAMPLES / "classifier_10.pt", weights_only=True)
    own = model.state_dict()
    fitting = [k for k in own if k in sd and sd[k].shape == own[k].shape]
    model.load_state_dict({k: sd[k] for k in fitting}, strict=False)
    return model, fitting


def _train_step(model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
    model.train()
    x = torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    loss = model(x).logsumexp(1).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


def test_groups_split_pretrained_and_new_with_the_multiplier():
    model, pretrained = _classifier_and_pretrained()
    groups = param_groups(model, pretrained, lr=0.01, new_lr_mult=10.0)
    assert [g["name"] for g in groups] == ["pretrained", "new"]
    assert groups[0]["lr"] == 0.01 and groups[1]["lr"] == pytest.approx(0.1)
    names = {id(p): n for n, p in model.named_parameters()}
    assert sorted(names[id(p)] for p in groups[1]["params"]) == ["fc.bias", "fc.weight"]
    assert sorted(names[id(p)] for p in groups[0]["params"]) == sorted(k for k in pretrained if k in
                                                                        dict(model.named_parameters()))
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))


def test_a_report_from_load_into_gives_the_same_groups():
    import ckptlab

    _, pretrained = _classifier_and_pretrained()
    model = models.Classifier(100)
    report = ckptlab.load_into(model, SAMPLES / "classifier_10.pt", recipe={"rules": [{"drop": "^fc"}]})
    assert sorted(report.pretrained) == sorted(pretrained)
    assert [(g["name"], len(g["params"])) for g in param_groups(model, report)] == \
           [(g["name"], len(g["params"])) for g in param_groups(model, pretrained)]


@pytest.mark.parametrize("make_optimizer", [
    lambda g: torch.optim.SGD(g, momentum=0.9, weight_decay=1e-2),
    lambda g: torch.optim.AdamW(g, weight_decay=0.1),
    lambda g: torch.optim.Adam(g),
])
def test_frozen_backbone_gets_no_step_and_head_trains(make_optimizer):
    model, pretrained = _classifier_and_pretrained()
    groups = param_groups(model, pretrained, lr=0.05, freeze_loaded=True)
    assert [g["name"] for g in groups] == ["new"]
    optimizer = make_optimizer(groups)
    backbone_before = {k: v.clone() for k, v in model.backbone.state_dict().items() if "running" not in k
                       and "num_batches" not in k}
    head_before = model.fc.weight.detach().clone()
    _train_step(model, optimizer)
    for key, value in model.backbone.state_dict().items():
        if key in backbone_before:
            assert torch.equal(value, backbone_before[key]), key
    assert all(not p.requires_grad for p in model.backbone.parameters())
    assert all(p.grad is None for p in model.backbone.parameters())
    assert not torch.equal(model.fc.weight, head_before)


def test_freeze_by_regex_and_an_invalid_regex():
    model, pretrained = _classifier_and_pretrained()
    groups = param_groups(model, pretrained, freeze=r"^backbone\.0\.")
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    assert frozen == ["backbone.0.weight", "backbone.0.bias"]
    in_groups = {id(p) for g in groups for p in g["params"]}
    assert all(id(p) not in in_groups for n, p in model.named_parameters() if n in frozen)
    with pytest.raises(RecipeError, match="freeze pattern '\\(' is not a valid regex"):
        param_groups(model, pretrained, freeze="(")


@pytest.mark.parametrize("make_scheduler", [
    lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=1, gamma=0.1),
    lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=10),
    lambda o: torch.optim.lr_scheduler.LambdaLR(o, lambda epoch: 0.5 ** epoch),
])
def test_lr_ratio_holds_under_a_scheduler(make_scheduler):
    model, pretrained = _classifier_and_pretrained()
    optimizer = torch.optim.SGD(param_groups(model, pretrained, lr=0.01, new_lr_mult=10.0), lr=0.01)
    scheduler = make_scheduler(optimizer)
    for _ in range(3):
        _train_step(model, optimizer)
        scheduler.step()
    lrs = {g["name"]: g["lr"] for g in optimizer.param_groups}
    assert lrs["pretrained"] < 0.01                      # the schedule did act
    assert lrs["new"] / lrs["pretrained"] == pytest.approx(10.0)


def test_tied_parameter_appears_once_and_is_pretrained_by_either_name():
    class TiedLM(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(10, 4)
            self.body = nn.Linear(4, 4)
            self.lm_head = nn.Linear(4, 10, bias=False)
            self.lm_head.weight = self.embed.weight
    model = TiedLM()
    groups = param_groups(model, ["lm_head.weight"])          # only the alias name was loaded
    by_name = {g["name"]: g["params"] for g in groups}
    assert len(by_name["pretrained"]) == 1 and by_name["pretrained"][0] is model.embed.weight
    assert sum(len(p) for p in by_name.values()) == 3      # embed/lm_head once, body weight + bias
    torch.optim.Adam(groups)                                 # a duplicate would raise here
    summary = plan(model, ["lm_head.weight"])
    assert summary.tied == [("embed.weight", "lm_head.weight")]


def test_plan_summary_matches_the_groups_and_changes_nothing():
    model, pretrained = _classifier_and_pretrained()
    summary = plan(model, pretrained, lr=1e-3, freeze_loaded=True)
    assert all(p.requires_grad for p in model.parameters())     # plan() only describes
    assert summary.frozen_modules == ["backbone"]
    assert summary.frozen_params == sum(p.numel() for p in model.backbone.parameters())
    assert summary.groups == [{"name": "new", "lr": pytest.approx(1e-2), "tensors": 2,
                               "params": model.fc.weight.numel() + model.fc.bias.numel()}]
    assert summary.new_names == ["fc.weight", "fc.bias"]
    groups = param_groups(model, pretrained, lr=1e-3, freeze_loaded=True)
    assert [(g["name"], len(g["params"])) for g in groups] == [(g["name"], g["tensors"]) for g in summary.groups]
    assert summary.to_dict()["frozen_tensors"] == len(list(model.backbone.parameters()))


def test_already_frozen_parameters_stay_out():
    model, pretrained = _classifier_and_pretrained()
    model.fc.bias.requires_grad_(False)
    groups = param_groups(model, pretrained)
    assert all(p is not model.fc.bias for g in groups for p in g["params"])
    assert "fc.bias" in {n for n, p in model.named_parameters() if not p.requires_grad}


# -- new rows: a head grown by an adapter trains at the new rate ------------------------
GROW = {"op": "pad", "dim": 0, "fill": "init"}
GROWN_HEAD = {"adapt": {"fc.weight": GROW, "fc.bias": GROW}}


def _grown_alignment():
    import ckptlab

    return ckptlab.align(SAMPLES / "classifier_10.pt", SAMPLES / "classifier_100.pt", GROWN_HEAD, auto="none")


def test_new_rows_of_a_grown_head_and_none_for_new_input_channels():
    import ckptlab
    from ckptlab.align.new_rows import new_rows

    alignment = _grown_alignment()
    assert alignment.summary["adapted"] == 2
    grown = {n.key: n for n in new_rows(alignment)}
    assert sorted(grown) == ["fc.bias", "fc.weight"]
    assert (grown["fc.weight"].kept, grown["fc.weight"].total) == (10, 100)
    assert grown["fc.weight"].describe() == ("fc.weight: rows 10..99 new (pad dim 0 (fill init)), "
                                             "rows 0..9 pretrained")
    rgba = ckptlab.align(SAMPLES / "convnet_rgb.pt", SAMPLES / "convnet_rgba.pt",
                         {"adapt": {"conv1.weight": {"op": "pad", "dim": 1}}}, auto="none")
    assert rgba.summary["adapted"] == 1 and new_rows(rgba) == []      # new input channels, no new rows
    fresh = ckptlab.align(SAMPLES / "classifier_10.pt", SAMPLES / "classifier_100.pt",
                          {"adapt": {"fc.weight": {"op": "reinit"}, "fc.bias": {"op": "reinit"}}}, auto="none")
    assert [(n.key, n.kept, n.total) for n in new_rows(fresh)] == [("fc.weight", 0, 100), ("fc.bias", 0, 100)]


def test_pretrained_keys_leave_out_grown_tensors_unless_told_and_a_regex():
    from ckptlab.models.finetune import pretrained_keys

    alignment = _grown_alignment()
    backbone = [k for k in alignment.fed if k.startswith("backbone.")]
    assert sorted(pretrained_keys(alignment)) == sorted(backbone)
    assert sorted(pretrained_keys(alignment, grown_as_new=False)) == sorted(alignment.fed)
    assert pretrained_keys(alignment, r"^backbone\.0\.", grown_as_new=False) == [
        k for k in alignment.fed if not k.startswith("backbone.0.")]
    with pytest.raises(RecipeError, match="train-as-new pattern"):
        pretrained_keys(alignment, "(")


@pytest.mark.parametrize("via", ["alignment", "load_into", "remap"])
def test_grown_head_gets_the_head_rate_by_default(via, tmp_path):
    """Story 3's trap: accepting the head pad must not put the grown fc at the base rate."""
    import ckptlab

    model = models.Classifier(100)
    if via == "alignment":
        source = _grown_alignment()
    elif via == "load_into":
        source = ckptlab.load_into(model, SAMPLES / "classifier_10.pt", recipe=GROWN_HEAD)
        assert sorted(source.new_rows) == ["fc.bias", "fc.weight"] and "fc.weight" in source.pretrained
    else:
        source = ckptlab.remap(SAMPLES / "classifier_10.pt", SAMPLES / "classifier_100.pt",
                               tmp_path / "out.safetensors", recipe=GROWN_HEAD)
        assert ckptlab.Report.from_dict(source.to_dict()).new_rows == source.new_rows
    groups = param_groups(model, source, lr=0.01, new_lr_mult=10.0)
    names = {id(p): n for n, p in model.named_parameters()}
    new = next(g for g in groups if g["name"] == "new")
    assert new["lr"] == pytest.approx(0.1) and sorted(names[id(p)] for p in new["params"]) == ["fc.bias", "fc.weight"]
    summary = plan(model, source, lr=0.01)
    assert sorted(summary.new_names) == ["fc.bias", "fc.weight"]


def test_the_downloaded_script_trains_the_grown_head_at_the_new_rate_too():
    from ckptlab.models import codegen

    code = codegen.snippet(_grown_alignment())
    namespace: dict = {}
    exec(compile(code, "remap_checkpoint.py", "exec"), namespace)       # the script, as a user runs it
    model = models.Classifier(100)
    names = {id(p): n for n, p in model.named_parameters()}
    groups = {g["name"]: sorted(names[id(p)] for p in g["params"]) for g in namespace["param_groups"](model)}
    assert groups["new"] == ["fc.bias", "fc.weight"]
    assert all(n.startswith("backbone.") for n in groups["pretrained"])
