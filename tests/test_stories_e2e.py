"""The five stories of DESIGN.md end to end, with a model definition as the TARGET.

Each story goes through the Python API (align / remap / load_into / verify / param_groups)
and the CLI (``ckptlab align|remap|verify``), and is checked against the source file's
own tensors, read by torch itself.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

import ckptlab
from ckptlab.cli import main
from ckptlab.io.model_target import model_target
from ckptlab.models.function_check import compare_function
from ckptlab.models.load_check import load_report
from ckptlab.models.speed import compare_speed
from ckptlab.models.warmstart import CkptlabWarning
from sample_ckpts import models
from tests.paths import ROOT

SAMPLES = ROOT / "sample_ckpts"
M = "sample_ckpts.models:"


def _sd(name: str, container: str | None = None) -> dict[str, torch.Tensor]:
    obj = torch.load(SAMPLES / name, weights_only=True)
    return obj[container] if container else obj


def _cli(capsys, *argv: str) -> tuple[int, dict]:
    code = main(list(argv))
    out = capsys.readouterr().out
    return code, json.loads(out)


def _verify_ok(capsys, ckpt: Path, spec: str, kwargs: dict) -> None:
    code, out = _cli(capsys, "verify", str(ckpt), "--model", spec, "--model-kwargs", json.dumps(kwargs), "--json")
    assert (code, out) == (0, {"missing": [], "unexpected": [], "mismatched": [], "ok": True})


# -- 1. attention swap -------------------------------------------------------------------
LINEAR = {"attention": "linear"}


def test_story1_attention_swap_api(tmp_path):
    target = model_target(M + "FontUNet", LINEAR)
    alignment = ckptlab.align(SAMPLES / "font_unet_self_attention.pt", target)
    source = _sd("font_unet_self_attention.pt")
    attention = [k for k in target.keys() if ".attn." in k]
    others = [k for k in target.keys() if ".attn." not in k]
    assert attention and all(alignment.row(k).status == "missing" for k in attention)
    assert all(alignment.row(k).status == "exact" for k in others)
    assert sorted(r.source for r in alignment.by_status("unused")) == sorted(k for k in source if ".attn." in k)

    model = models.FontUNet(**LINEAR)
    fresh = {k: v.clone() for k, v in model.state_dict().items() if ".attn." in k}
    report = ckptlab.load_into(model, SAMPLES / "font_unet_self_attention.pt")
    state = model.state_dict()
    assert sorted(report.loaded) == sorted(others)
    assert all(torch.equal(state[k], source[k]) for k in others)
    assert all(torch.equal(state[k], fresh[k]) for k in attention)       # attention starts fresh

    speed = compare_speed({"self": model_target(M + "FontUNet", {"attention": "self"}), "linear": target},
                          sizes=[32, 64], budget_s=1.0, min_pairs=3)
    for point in speed.points:
        assert set(point.median_ms) == {"self", "linear"} and all(v > 0 for v in point.median_ms.values())
        assert point.memory_ratio < 1.0     # no (hw x hw) attention map


def test_story1_attention_swap_cli(capsys, tmp_path):
    out = tmp_path / "linear.safetensors"
    code, report = _cli(capsys, "remap", str(SAMPLES / "font_unet_self_attention.pt"), M + "FontUNet",
                        "--target-kwargs", json.dumps(LINEAR), "-o", str(out), "--json", "--no-progress")
    assert code == 0
    missing = [r["target"] for r in report["rows"] if r["status"] == "missing"]
    assert missing and all(".attn." in k for k in missing)
    _verify_ok(capsys, out, M + "FontUNet", LINEAR)


# -- 2. RGB -> RGBA ----------------------------------------------------------------------
RGBA = {"in_chans": 4}


def test_story2_rgb_to_rgba_function_preserved(capsys, tmp_path):
    out = tmp_path / "rgba.pt"
    code, _ = _cli(capsys, "remap", str(SAMPLES / "convnet_rgb.pt"), M + "ConvNet", "--target-kwargs",
                   json.dumps(RGBA), "--auto", "all", "-o", str(out), "--json", "--no-progress")
    assert code == 0
    _verify_ok(capsys, out, M + "ConvNet", RGBA)
    merged = torch.load(out, weights_only=True)
    rgb = _sd("convnet_rgb.pt")
    assert torch.equal(merged["conv1.weight"][:, :3], rgb["conv1.weight"])
    assert torch.equal(merged["conv1.bias"], rgb["conv1.bias"])
    result = compare_function(M + "ConvNet", SAMPLES / "convnet_rgb.pt", model_target(M + "ConvNet", RGBA), out)
    assert result.equal and result.max_abs_diff == 0.0
    assert {f["fill"] for f in result.fills} == {"zeros", "random-0", "random-1", "random-2"}


def test_story2_rgb_to_rgba_api_without_the_flag_fails_loudly():
    with pytest.raises(ckptlab.MergeError, match="shape mismatch at 'conv1.weight'"):
        ckptlab.load_into(models.ConvNet(**RGBA), SAMPLES / "convnet_rgb.pt", auto="none")
    model = models.ConvNet(**RGBA)
    report = ckptlab.load_into(model, SAMPLES / "convnet_rgb.pt",
                               recipe={"adapt": {"conv1.weight": {"op": "pad", "dim": 1}}})
    assert report.adapted == ["conv1.weight"] and len(report.loaded) == 15
    assert compare_function(M + "ConvNet", SAMPLES / "convnet_rgb.pt", model, None).equal


# -- 3. fine-tune ------------------------------------------------------------------------
def _step(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
    x = torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    optimizer.zero_grad()
    model(x).logsumexp(1).mean().backward()
    optimizer.step()


def test_story3_backbone_only_frozen_and_head_lr(tmp_path):
    model = models.Classifier(100)
    report = ckptlab.load_into(model, SAMPLES / "classifier_10.pt", recipe={"rules": [{"keep": "backbone"}]})
    assert sorted(report.missing) == ["fc.bias", "fc.weight"]
    assert all(k.startswith("backbone.") for k in report.pretrained)

    groups = ckptlab.param_groups(model, report, lr=1e-3, freeze_loaded=True)
    optimizer = torch.optim.SGD(groups, momentum=0.9)
    backbone = {n: p.detach().clone() for n, p in model.backbone.named_parameters()}
    head = model.fc.weight.detach().clone()
    model.train()
    _step(model, optimizer)
    assert all(torch.equal(p, backbone[n]) for n, p in model.backbone.named_parameters())
    assert not torch.equal(model.fc.weight, head)


def test_story3_projector_grow_head_and_lr_ratio(capsys, tmp_path):
    target = model_target(M + "Classifier", {"num_classes": 100})
    alignment = ckptlab.align(SAMPLES / "projector.pt", target, auto="all")
    assert alignment.effective_recipe.rules[0].to_dict() == {"strip_prefix": "classifier."}
    assert {r.target for r in alignment.by_status("adapted")} == {"fc.weight", "fc.bias"}
    model = models.Classifier(100)
    report = ckptlab.load_into(model, SAMPLES / "projector.pt", auto="all")
    source = _sd("projector.pt")
    assert torch.equal(model.fc.weight[:10], source["classifier.fc.weight"])        # grown: old rows kept

    groups = ckptlab.param_groups(model, report, lr=0.01, new_lr_mult=10.0, freeze=r"^backbone\.0\.")
    assert {g["name"]: g["lr"] for g in groups} == {"pretrained": 0.01, "new": pytest.approx(0.1)}
    names = {id(p): n for n, p in model.named_parameters()}
    assert sorted(report.new_rows) == ["fc.bias", "fc.weight"]                  # grown: its new rows are untrained
    assert sorted(names[id(p)] for p in groups[1]["params"]) == ["fc.bias", "fc.weight"]
    model2 = models.Classifier(100)
    report2 = ckptlab.load_into(model2, SAMPLES / "projector.pt", recipe={"rules": [{"strip_prefix": "classifier."},
                                                                               {"drop": "^fc"}]})
    optimizer = torch.optim.SGD(ckptlab.param_groups(model2, report2, lr=0.01, new_lr_mult=10.0), lr=0.01)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    lrs = {g["name"]: g["lr"] for g in optimizer.param_groups}
    assert lrs["new"] == pytest.approx(10 * lrs["pretrained"])
    _step(model2, optimizer)
    scheduler.step()
    after = {g["name"]: g["lr"] for g in optimizer.param_groups}
    assert after["pretrained"] == pytest.approx(0.005) and after["new"] == pytest.approx(0.05)

    out = tmp_path / "cls100.pt"
    code, _ = _cli(capsys, "remap", str(SAMPLES / "projector.pt"), M + "Classifier", "--target-kwargs",
                   '{"num_classes": 100}', "--auto", "all", "-o", str(out), "--json", "--no-progress")
    assert code == 0
    _verify_ok(capsys, out, M + "Classifier", {"num_classes": 100})


# -- 4. warm start -----------------------------------------------------------------------
def test_story4_warm_start_auto_all_and_explicit_recipe(capsys, tmp_path):
    source = _sd("smallnet.pt")
    for recipe, auto in ((None, "all"), ({"rules": [{"replace": {"pattern": r"^conv1\.", "with": "backbone_conv."}}]},
                                          "none")):
        model = models.WarmStartNet()
        head = {k: v.clone() for k, v in model.new_fc.state_dict().items()}
        report = ckptlab.load_into(model, SAMPLES / "smallnet.pt", recipe=recipe, auto=auto)
        assert torch.equal(model.backbone_conv.weight, source["conv1.weight"])
        assert torch.equal(model.bn1.running_mean, source["bn1.running_mean"])
        assert all(torch.equal(v, head[k]) for k, v in model.new_fc.state_dict().items())   # fresh head
        assert sorted(report.missing) == ["new_fc.bias", "new_fc.weight"]
        assert sorted(report.unused) == ["fc.bias", "fc.weight"]

    recipe_file = tmp_path / "recipe.yaml"
    recipe_file.write_text("rules:\n  - replace: {pattern: '^conv1\\.', with: 'backbone_conv.'}\n  - drop: '^fc\\.'\n")
    code, align_out = _cli(capsys, "align", str(SAMPLES / "smallnet.pt"), M + "WarmStartNet", "--recipe",
                           str(recipe_file), "--auto", "none", "--json")
    assert code == 0
    assert align_out["summary"]["renamed"] == 2 and align_out["summary"]["missing"] == 2
    out = tmp_path / "warm.pth"
    code, _ = _cli(capsys, "remap", str(SAMPLES / "smallnet.pt"), M + "WarmStartNet", "--recipe", str(recipe_file),
                   "-o", str(out), "--json", "--no-progress")
    assert code == 0
    _verify_ok(capsys, out, M + "WarmStartNet", {})
    assert load_report(SAMPLES / "smallnet.pt", M + "WarmStartNet")["missing"][:2] == [
        "backbone_conv.weight", "backbone_conv.bias"]


# -- 5. the silent empty load ------------------------------------------------------------
def test_story5_wrapper_api():
    source = _sd("attention_net_ckpt.pt", "net")
    model = models.AttentionWrapper()
    with warnings.catch_warnings():
        warnings.simplefilter("error", CkptlabWarning)
        report = ckptlab.load_into(model, SAMPLES / "attention_net_ckpt.pt")
    assert len(report.pretrained) == len(source) == 23
    state = model.state_dict()
    for key, value in source.items():
        assert torch.equal(state["attention_map." + key], value)
    assert all(state["attention_map." + k].abs().sum() > 0 for k in source if k.endswith("weight"))
    groups = ckptlab.param_groups(model, report, freeze_loaded=True)
    assert all(not p.requires_grad for p in model.attention_map.parameters())
    trained = {id(p) for g in groups for p in g["params"]}
    assert trained == {id(p) for p in (*model.backbone.parameters(), *model.head.parameters())}
    # the story's original bug, caught: a plain strict=False load feeds nothing and says nothing
    result = models.AttentionWrapper().load_state_dict(source, strict=False)
    assert len(result.unexpected_keys) == 23
    with pytest.warns(CkptlabWarning, match="NOTHING was loaded"):
        ckptlab.load_into(models.AttentionWrapper(), SAMPLES / "attention_net_ckpt.pt",
                          recipe={"container": "net"}, auto="none")


def test_story5_wrapper_cli_subprocess(tmp_path):
    out = tmp_path / "wrapper.pt"
    env = {k: v for k, v in os.environ.items() if k != "CKPTLAB_ALLOW_CODE"}
    run = lambda *a: subprocess.run([sys.executable, "-m", "ckptlab", *a], cwd=ROOT, env=env,  # noqa: E731
                                    capture_output=True, text=True, timeout=120)
    remap = run("remap", str(SAMPLES / "attention_net_ckpt.pt"), M + "AttentionWrapper", "-o", str(out),
                "--json", "--no-progress")
    assert remap.returncode == 0, remap.stderr
    rows = json.loads(remap.stdout)["rows"]
    assert sum(r["status"] in ("exact", "renamed") for r in rows) == 23
    verify = run("verify", str(out), "--model", M + "AttentionWrapper", "--json")
    assert verify.returncode == 0 and json.loads(verify.stdout)["ok"] is True
    merged, source = torch.load(out, weights_only=True), _sd("attention_net_ckpt.pt", "net")
    assert all(torch.equal(merged["attention_map." + k], v) for k, v in source.items())
