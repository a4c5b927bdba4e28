"""``--keep-extras`` keeps every non-tensor entry of the source, or names what it could not keep.

A training checkpoint's optimizer state (tensors in nested dicts) comes back bit for bit in a
.pt; a Lightning-style file's hyper-parameters, objects of classes ckptlab never imports,
are named as not kept (a .pt output holds only what ``torch.load(weights_only=True)`` reads,
never a class by name), while everything else of the file comes back. A .safetensors output
keeps plain values as metadata and names the rest on stderr and in the report.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

import ckptlab
from ckptlab.cli import main


@pytest.fixture
def cli(capfd):
    """``ckptlab ARGS`` through ``main`` in this process (fd capture): a CompletedProcess."""
    def run(*args) -> subprocess.CompletedProcess:
        code = main([str(a) for a in args])
        out, err = capfd.readouterr()
        return subprocess.CompletedProcess(["ckptlab", *map(str, args)], code, out, err)
    return run


@pytest.fixture
def training_ckpt(tmp_path) -> tuple[Path, dict]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8), torch.nn.Linear(8, 2))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(2):
        model(torch.randn(5, 4)).sum().backward()
        opt.step()
    saved = {"step": 2, "model_state": model.state_dict(), "optimizer_state": opt.state_dict(),
             "note": "run-7", "history": [0.5, 0.25]}
    path = tmp_path / "train.pt"
    torch.save(saved, path)
    return path, saved


def assert_same_tree(got, want, where="(top level)"):
    if isinstance(want, torch.Tensor):
        assert isinstance(got, torch.Tensor) and got.dtype == want.dtype and torch.equal(got, want), where
    elif isinstance(want, dict):
        assert isinstance(got, dict) and set(got) == set(want), (where, list(got), list(want))  # order: cosmetic
        for k in want:
            assert_same_tree(got[k], want[k], f"{where}.{k}")
    elif isinstance(want, (list, tuple)):
        assert type(got) is type(want) and len(got) == len(want), where
        for i, (g, w) in enumerate(zip(got, want)):
            assert_same_tree(g, w, f"{where}.{i}")
    else:
        assert got == want, where


def test_optimizer_state_comes_back_bit_for_bit_in_a_pt(cli, training_ckpt, tmp_path):
    path, saved = training_ckpt
    out = tmp_path / "out.pt"
    proc = cli("remap", path, path, "-o", out, "--keep-extras", "--no-progress")
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert "every extra entry kept" in proc.stdout
    back = torch.load(out, weights_only=True)
    assert_same_tree({k: back[k] for k in ("step", "optimizer_state", "note", "history")},
                     {k: saved[k] for k in ("step", "optimizer_state", "note", "history")})
    assert_same_tree({k: back[k] for k in saved["model_state"]}, saved["model_state"])


def test_nest_writes_the_file_back_in_its_own_layout(training_ckpt, tmp_path):
    path, saved = training_ckpt
    out = tmp_path / "out.pt"
    rep = ckptlab.remap(path, path, out, keep_extras=True, nest=True)
    assert rep.extras_not_kept == []
    assert_same_tree(torch.load(out, weights_only=True), saved)


def test_safetensors_keeps_what_fits_as_metadata_and_names_the_rest(cli, training_ckpt, tmp_path):
    path, saved = training_ckpt
    out, report = tmp_path / "out.safetensors", tmp_path / "report.json"
    proc = cli("remap", path, path, "-o", out, "--keep-extras", "--no-progress", "--report", report)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.startswith("ckptlab: warning: --keep-extras could not keep 1 entry: optimizer_state (it holds tensors")
    assert "write .pt to keep it" in proc.stderr and "except 1" in proc.stdout
    with safe_open(out, "pt") as f:
        meta = f.metadata()
    assert meta["note"] == "run-7" and json.loads(meta["step"]) == 2 and json.loads(meta["history"]) == [0.5, 0.25]
    assert "optimizer_state" not in meta
    assert [s.split(" ")[0] for s in json.loads(report.read_text())["extras_not_kept"]] == ["optimizer_state"]


# -- a Lightning-style file whose hyper-parameters are objects of classes ckptlab never imports --
FAKE_PKG = '''
class DictConfig:                       # like omegaconf's: no default constructor, state via BUILD
    def __init__(self, content):
        self._content = dict(content)
        self._flags = {"readonly": False}
    def __eq__(self, other):
        return type(other) is DictConfig and vars(self) == vars(other)

class AttributeDict(dict):              # like Lightning's: a dict subclass with attributes
    def __eq__(self, other):
        return type(other) is AttributeDict and dict.__eq__(self, other) and vars(self) == vars(other)

class Version:                          # a class with its own __reduce__: (cls, args)
    def __init__(self, text):
        self.text = text
    def __reduce__(self):
        return (Version, (self.text,))
    def __eq__(self, other):
        return type(other) is Version and other.text == self.text
'''

MAKE = textwrap.dedent('''
    import sys, torch
    from fakelib import AttributeDict, DictConfig, Version
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    net(torch.randn(2, 3, 8, 8)).sum().backward(); opt.step()
    hp = AttributeDict(lr=0.1, layers=[4, 4])
    hp.name = "hp"
    cfg = DictConfig({"model": {"width": 4}, "seed": 0})
    torch.save({"epoch": 3, "global_step": 30, "pytorch-lightning_version": Version("2.4.0"),
                "state_dict": {f"model.{k}": v for k, v in net.state_dict().items()},
                "hyper_parameters": hp, "hparams_config": cfg, "shared": [cfg, cfg],
                "optimizer_states": [opt.state_dict()], "lr_schedulers": []}, sys.argv[1])
''')

CHECK = textwrap.dedent('''
    import sys, torch
    b = torch.load(sys.argv[2], weights_only=True)
    assert "fakelib" not in sys.modules
    a = torch.load(sys.argv[1], weights_only=False)
    assert set(b) == {"epoch", "global_step", "state_dict", "optimizer_states", "lr_schedulers"}, list(b)
    assert (b["epoch"], b["global_step"], b["lr_schedulers"]) == (3, 30, [])
    for k, v in a["state_dict"].items():
        assert torch.equal(v, b["state_dict"][k]), k
    sa, sb = a["optimizer_states"][0], b["optimizer_states"][0]
    assert sa["param_groups"] == sb["param_groups"]
    for p, state in sa["state"].items():
        assert torch.equal(state["momentum_buffer"], sb["state"][p]["momentum_buffer"])
    print("same")
''')

NOT_KEPT = {"pytorch-lightning_version", "hyper_parameters", "hparams_config", "shared"}

def test_a_lightning_file_keeps_its_data_and_names_its_hyper_parameter_objects(cli, tmp_path):
    lib = tmp_path / "lib"
    (lib / "fakelib").mkdir(parents=True)
    (lib / "fakelib" / "__init__.py").write_text(FAKE_PKG)
    env = {**os.environ, "PYTHONPATH": str(lib)}
    src, out = tmp_path / "run.ckpt", tmp_path / "out.ckpt"
    subprocess.run([sys.executable, "-c", MAKE, src], env=env, check=True, cwd=tmp_path)

    ck = ckptlab.open(src)  # the classes are never imported: inert placeholders
    assert "fakelib" not in sys.modules and "fakelib.DictConfig" in ck.placeholders
    proc = cli("remap", src, src, "-o", out, "--keep-extras", "--nest", "--no-progress", "--json")
    assert proc.returncode == 0, proc.stderr
    assert "weights_only=True" in proc.stderr and "an object of class 'fakelib.DictConfig'" in proc.stderr
    assert {s.split(" ")[0] for s in json.loads(proc.stdout)["extras_not_kept"]} == NOT_KEPT
    assert "fakelib" not in sys.modules
    check = subprocess.run([sys.executable, "-c", CHECK, src, out], env=env, capture_output=True, text=True,
                           cwd=tmp_path)
    assert check.stdout.strip() == "same", check.stderr

    flat = tmp_path / "flat.safetensors"
    rep = ckptlab.remap(src, src, flat, keep_extras=True)
    not_kept = {s.split(" ")[0] for s in rep.extras_not_kept}
    assert not_kept == NOT_KEPT | {"optimizer_states"}
    assert any("an object of class fakelib.DictConfig" in s for s in rep.extras_not_kept)
    with safe_open(flat, "pt") as f:
        assert {k: f.metadata()[k] for k in ("epoch", "global_step", "lr_schedulers")} == \
            {"epoch": "3", "global_step": "30", "lr_schedulers": "[]"}


def test_an_entry_inside_a_nested_container_needs_nest_and_says_so(tmp_path):
    path = tmp_path / "nested.pt"
    torch.save({"model": {"state_dict": {"w": torch.ones(2)}, "ema_decay": 0.999}, "epoch": 1}, path)
    rep = ckptlab.remap(path, path, tmp_path / "flat.pt", keep_extras=True)
    assert rep.extras_not_kept == ["model.ema_decay (it sits inside 'model' beside the weights: "
                                   "--nest keeps the file's layout)"]
    back = torch.load(tmp_path / "flat.pt", weights_only=True)
    assert back["epoch"] == 1 and torch.equal(back["w"], torch.ones(2))
    rep = ckptlab.remap(path, path, tmp_path / "nested_out.pt", keep_extras=True, nest=True)
    assert rep.extras_not_kept == []
    back = torch.load(tmp_path / "nested_out.pt", weights_only=True)
    assert back["model"]["ema_decay"] == 0.999 and torch.equal(back["model"]["state_dict"]["w"], torch.ones(2))
