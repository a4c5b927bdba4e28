"""The exported script: standalone, and bit for bit what ``ckptlab.remap`` writes."""
from __future__ import annotations

import ast
import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import ckptlab
from ckptlab.io.model_target import model_target
from ckptlab.models.codegen import snippet
from ckptlab.models.finetune import param_groups
from sample_ckpts import models
from tests.paths import ROOT
from tests.run_script import run_script

SAMPLES = ROOT / "sample_ckpts"
M = "sample_ckpts.models:"

# (name, source, target, target kwargs, recipe, auto): one per story, then every adapter and rule kind.
CASES = [
    ("attention-swap", "font_unet_self_attention.pt", M + "FontUNet", {"attention": "linear"}, None, "high"),
    ("rgb-to-rgba", "convnet_rgb.pt", M + "ConvNet", {"in_chans": 4}, None, "all"),
    ("rgba-safetensors-repeat", "convnet_rgb.safetensors", "convnet_rgba.pt", None,
     {"adapt": {"conv1.weight": {"op": "pad", "fill": "repeat"}}}, "none"),
    ("ddp-prefix", "convnet_rgb_ddp.pt", "convnet_rgba.pt", None,
     {"adapt": {"conv1.weight": {"op": "pad", "dim": 1, "fill": "mean"}}}, "high"),
    ("lightning-container", "convnet_rgb_lightning.ckpt", M + "ConvNet", {}, None, "high"),
    ("fine-tune-projector", "projector.pt", "classifier_100.pt", None, None, "all"),
    ("fine-tune-truncate-keep", "classifier_100.pt", M + "Classifier", {"num_classes": 10},
     {"rules": [{"keep": "backbone|fc"}], "adapt": {"fc.weight": {"op": "truncate"}, "fc.bias": {"op": "truncate"}}},
     "none"),
    ("warm-start", "smallnet.pt", M + "WarmStartNet", {},
     {"rules": [{"replace": {"pattern": r"^conv1\.", "with": "backbone_conv."}}, {"drop": r"^fc\."}]}, "high"),
    ("wrapper-prefix", "attention_net_ckpt.pt", M + "AttentionWrapper", {}, None, "high"),
    ("grey-sum-map-reinit", "convnet_rgb.pt", M + "ConvNet", {"in_chans": 1, "num_classes": 12},
     {"map": {"bn2.weight": "bn1.weight", "bn2.bias": "bn1.bias"},
      "adapt": {"conv1.weight": {"op": "sum"}, "fc.weight": {"op": "resize", "fill": "init"},
                "fc.bias": {"op": "reinit"}, "bn2.weight": {"op": "resize", "fill": "zeros"},
                "bn2.bias": {"op": "pad", "fill": "mean"}}}, "none"),
]


def _target(target: str, kwargs):
    return model_target(target, kwargs) if ":" in target else SAMPLES / target


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT)            # the user's model code is importable; ckptlab is not needed
    return env


def _assert_same_state(got: dict, expected: dict, ordered: bool = True) -> None:
    assert list(got) == list(expected) if ordered else sorted(got) == sorted(expected)
    for key, value in expected.items():
        assert got[key].dtype == value.dtype, key
        assert got[key].shape == value.shape, key
        assert torch.equal(got[key], value), key


REAL_PROCESS = "grey-sum-map-reinit"   # this case's script runs in a python of its own: it stands alone


def _run_in_a_new_python(script: Path) -> tuple[int, str]:
    proc = subprocess.run([sys.executable, str(script)], cwd=ROOT, env=_env(), capture_output=True, text=True,
                          timeout=300)
    return proc.returncode, proc.stderr


@pytest.mark.parametrize("name, source, target, kwargs, recipe, auto", CASES, ids=[c[0] for c in CASES])
def test_snippet_reproduces_remap_bit_for_bit(tmp_path, name, source, target, kwargs, recipe, auto):
    alignment = ckptlab.align(SAMPLES / source, _target(target, kwargs), recipe=recipe, auto=auto)
    ckptlab.remap(SAMPLES / source, _target(target, kwargs), tmp_path / "expected.pt",
                  recipe=alignment.effective_recipe, auto="none")
    script = tmp_path / "remap_checkpoint.py"
    script.write_text(snippet(alignment, out=str(tmp_path / "got.pt")))
    if name == REAL_PROCESS:
        returncode, stderr = _run_in_a_new_python(script)
    else:
        returncode, _, stderr = run_script(script)
    assert alignment.summary["mismatch"] == 0 and alignment.summary["conflict"] == 0
    assert returncode == 0, stderr
    got = torch.load(tmp_path / "got.pt", weights_only=True)
    _assert_same_state(got, torch.load(tmp_path / "expected.pt", weights_only=True))
    if alignment.summary["adapted"] or alignment.summary["renamed"]:
        assert any(not torch.equal(got[k], alignment.target.tensor(k)) for k in alignment.fed)


def test_snippet_imports_only_torch_and_the_users_model():
    alignment = ckptlab.align(SAMPLES / "convnet_rgb.safetensors", model_target(M + "ConvNet", {"in_chans": 4}),
                              auto="all")
    tree = ast.parse(snippet(alignment))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module)
    assert imported == {"argparse", "re", "torch", "safetensors.torch", "sample_ckpts.models"}
    assert "ckptlab" not in " ".join(imported)


def test_only_the_adapters_used_are_inlined():
    alignment = ckptlab.align(SAMPLES / "convnet_rgb.pt", model_target(M + "ConvNet", {"in_chans": 4}), auto="all")
    text = snippet(alignment)
    assert "def pad_zeros" in text
    for absent in ("def pad_mean", "def pad_repeat", "def truncate", "def sum_groups", "def resize"):
        assert absent not in text
    no_adapt = snippet(ckptlab.align(SAMPLES / "smallnet.pt", SAMPLES / "smallnet.pt"))
    assert "def adapt" not in no_adapt


def test_recipe_only_snippet_takes_paths_on_the_command_line(tmp_path):
    recipe = {"rules": [{"strip_prefix": "module."}], "adapt": {"conv1.weight": {"op": "pad", "fill": "zeros"}}}
    script = tmp_path / "s.py"
    script.write_text(snippet(recipe))
    out = tmp_path / "got.safetensors"
    proc = subprocess.run([sys.executable, str(script), "--source", str(SAMPLES / "convnet_rgb_ddp.pt"),
                           "--target", str(SAMPLES / "convnet_rgba.pt"), "--out", str(out)],
                          cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    expected = tmp_path / "expected.safetensors"
    ckptlab.remap(SAMPLES / "convnet_rgb_ddp.pt", SAMPLES / "convnet_rgba.pt", expected, recipe=recipe, auto="none")
    from safetensors.torch import load_file
    _assert_same_state(load_file(out), load_file(expected), ordered=False)  # safetensors sorts keys
    missing = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True,
                             timeout=120)
    assert missing.returncode == 2 and "--source" in missing.stderr


def test_snippet_param_groups_match_ckptlab(tmp_path):
    source, target = SAMPLES / "classifier_10.pt", model_target(M + "Classifier", {"num_classes": 100})
    alignment = ckptlab.align(source, target, recipe={"rules": [{"drop": "^fc"}]})
    script = tmp_path / "s.py"
    script.write_text(snippet(alignment, lr=0.02, new_lr_mult=5.0, freeze=r"^backbone\.0\."))
    namespace = runpy.run_path(str(script))              # defines, does not run main()
    ours, theirs = models.Classifier(100), models.Classifier(100)
    got = namespace["param_groups"](ours)
    report = ckptlab.load_into(theirs, source, recipe={"rules": [{"drop": "^fc"}]})
    expected = param_groups(theirs, report, lr=0.02, new_lr_mult=5.0, freeze=r"^backbone\.0\.")
    names = {m: {id(p): n for n, p in m.named_parameters()} for m in (ours, theirs)}
    assert [(g["name"], g["lr"], [names[ours][id(p)] for p in g["params"]]) for g in got] == \
           [(g["name"], g["lr"], [names[theirs][id(p)] for p in g["params"]]) for g in expected]
    assert not ours.backbone[0].weight.requires_grad
