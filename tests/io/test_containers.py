"""Finding the tensor mapping inside nested checkpoints, and what lies beside it."""
from __future__ import annotations

import argparse
import sys
import types

import pytest
import torch

import ckptlab
from ckptlab.errors import ContainerError


def _sd(n: int = 3, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {f"layer{i}.weight": torch.randn(2, 2, generator=g) for i in range(n)}


def _open(tmp_path, obj, **kw):
    path = tmp_path / "ck.pt"
    torch.save(obj, path)
    return ckptlab.open(path, **kw)


def test_model_weights_win_over_bigger_optimizer_state(sample):
    ck = ckptlab.open(sample("attention_net_ckpt.pt"))
    assert ck.container == "net" and len(ck) == 23
    paths = [c.path for c in ck.candidates]
    assert paths[0] == "net" and "optimizer.state.8" in paths
    biggest_single = max(ck.candidates, key=lambda c: c.nbytes / max(c.tensors, 1))
    assert biggest_single.path.startswith("optimizer.")  # the trap the ranking must avoid
    assert {(e.key, e.type) for e in ck.other} == {("epoch", "int"), ("optimizer", "dict"), ("config", "dict")}
    assert ck.extras["epoch"] == 30 and ck.extras["config"]["arch"] == "attention_net"
    assert "optimizer" not in ck.extras  # holds tensors: not a plain value


def test_another_candidate_can_be_chosen(sample):
    ck = ckptlab.open(sample("attention_net_ckpt.pt"), container="optimizer.state.8")
    assert ck.container == "optimizer.state.8"
    assert sorted(ck.keys()) == ["exp_avg", "exp_avg_sq", "step"]
    assert ck.info("exp_avg").shape == (16, 16, 3, 3)


def test_an_unknown_container_lists_the_candidates(sample):
    with pytest.raises(ContainerError, match=r"no tensor mapping at 'model'; candidates: 'net', 'optimizer"):
        ckptlab.open(sample("attention_net_ckpt.pt"), container="model")


def test_lightning_checkpoint(sample):
    ck = ckptlab.open(sample("convnet_rgb_lightning.ckpt"))
    plain = ckptlab.open(sample("convnet_rgb.pt"))
    assert ck.container == "state_dict"
    assert ck.keys() == [f"model.{k}" for k in plain.keys()]
    assert ck.extras["hyper_parameters"] == {"in_chans": 3, "num_classes": 10, "lr": 0.01}
    assert ck.extras["global_step"] == 700


def test_flat_state_dict_with_a_non_tensor_entry(tmp_path):
    ck = _open(tmp_path, {**_sd(), "version": 2})
    assert ck.container == "" and ck.keys() == list(_sd())
    assert [(e.key, e.type) for e in ck.other] == [("version", "int")]
    assert ck.extras == {"version": 2}


@pytest.mark.parametrize("form", ["dict", "OrderedDict", "safetensors"])
def test_a_flat_mapping_reads_as_the_tree_search_reads_it(tmp_path, form):
    """Flat files skip the tree search: the result is the one ``find`` gives (one candidate,
    the top level, nothing beside it), and another container is refused naming it."""
    from collections import OrderedDict

    from safetensors.torch import save_file

    from ckptlab.io import containers, formats

    state = {**_sd(4), "empty": torch.empty(0, 3), "steps": torch.tensor(7)}
    path = tmp_path / ("ck.safetensors" if form == "safetensors" else "ck.pt")
    save_file(state, str(path)) if form == "safetensors" else torch.save(
        OrderedDict(state) if form == "OrderedDict" else state, path)
    ck = ckptlab.open(path)
    searched = containers.find(dict(formats.read(path).root))
    assert ck.candidates == tuple(f.candidate() for f in searched) == (
        containers.Candidate("", 6, sum(t.numel() * t.element_size() for t in state.values())),)
    assert (ck.container, ck.other, ck.beside, ck.extras) == ("", (), (), {})
    assert sorted(ck.keys()) == sorted(state) and all(torch.equal(ck.tensor(k), state[k]) for k in state)
    with pytest.raises(ContainerError, match=r"no tensor mapping at 'model'; candidates: \(top level\)"):
        ckptlab.open(path, container="model")


def test_nested_parts_read_as_one_dotted_state_dict(tmp_path):
    ck = _open(tmp_path, {"backbone": {"conv.weight": torch.ones(2), "bn": {"bias": torch.zeros(2)}},
                          "head": {"fc.weight": torch.ones(3)}})
    assert ck.container == ""
    assert ck.keys() == ["backbone.conv.weight", "backbone.bn.bias", "head.fc.weight"]
    assert {"backbone", "head"} <= {c.path for c in ck.candidates}


@pytest.mark.parametrize("first, second, expected", [("model_ema", "model", "model"),
                                                     ("state_dict_ema", "state_dict", "state_dict")])
def test_alternatives_are_not_merged_and_known_names_break_ties(tmp_path, first, second, expected):
    ck = _open(tmp_path, {first: _sd(seed=1), second: _sd(seed=2), "epoch": 1})
    assert ck.container == expected and ck.keys() == list(_sd())
    assert {first, second} == {c.path for c in ck.candidates}


def test_more_tensors_beat_a_known_name(tmp_path):
    ck = _open(tmp_path, {"model": _sd(2), "generator": _sd(5)})
    assert ck.container == "generator"


def test_tensors_in_lists(tmp_path):
    ck = _open(tmp_path, {"models": [_sd(2), _sd(4)]})
    assert ck.container == "models.1" and len(ck) == 4


def test_ddp_prefix_is_kept_as_is(sample):
    ck = ckptlab.open(sample("convnet_rgb_ddp.pt"))
    assert ck.container == "" and all(k.startswith("module.") for k in ck.keys())


# -- objects of classes ckptlab never imports ----------------------------------------------
class TinyNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)
        self.bn = torch.nn.BatchNorm2d(4)
        self.register_buffer("scratch", torch.zeros(1), persistent=False)
        self.head = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))

    def __setstate__(self, state):  # pragma: no cover - must never run
        raise AssertionError("the model class was called while opening")


class DictConfig:
    """omegaconf-like: custom state with nested node objects."""

    def __init__(self, content):
        self._content = content

    def __setstate__(self, state):  # pragma: no cover - must never run
        raise AssertionError("DictConfig.__setstate__ ran")


@pytest.fixture
def ghost(monkeypatch):
    """Make classes picklable as ``name.<Class>``; the test then deletes that module again."""
    def make(name, *classes):
        module = types.ModuleType(name)
        for cls in classes:
            monkeypatch.setattr(cls, "__module__", name)
            setattr(module, cls.__name__, cls)
        monkeypatch.setitem(sys.modules, name, module)
    return make


def test_a_whole_pickled_model_opens_without_importing_its_class(tmp_path, ghost):
    torch.manual_seed(0)
    model = TinyNet()
    ghost("ghost_models", TinyNet)
    path = tmp_path / "model.pt"
    torch.save({"model": model, "epoch": 4}, path)
    del sys.modules["ghost_models"]
    with pytest.raises(Exception):
        torch.load(path, weights_only=False)  # torch itself needs the class
    ck = ckptlab.open(path)
    assert "ghost_models" not in sys.modules
    assert ck.container == "model"
    assert ck.keys() == list(model.state_dict())  # the non-persistent buffer stays out
    assert "ghost_models.TinyNet" in ck.placeholders
    assert "torch.nn.modules.conv.Conv2d" in ck.placeholders
    for key, value in model.state_dict().items():
        assert torch.equal(ck.tensor(key), value)
    assert ck.extras == {"epoch": 4}


def test_hyper_parameters_of_foreign_classes_become_placeholders(tmp_path, ghost):
    ghost("ghost_omegaconf", DictConfig)
    hparams = {"args": argparse.Namespace(lr=0.1, depth=3), "cfg": DictConfig({"width": 64})}
    path = tmp_path / "lightning.ckpt"
    torch.save({"state_dict": _sd(), "hyper_parameters": hparams, "epoch": 2}, path)
    del sys.modules["ghost_omegaconf"]
    ck = ckptlab.open(path)
    assert ck.container == "state_dict" and ck.keys() == list(_sd())
    assert set(ck.placeholders) == {"argparse.Namespace", "ghost_omegaconf.DictConfig"}
    assert ("hyper_parameters", "dict") in {(e.key, e.type) for e in ck.other}
    assert "hyper_parameters" not in ck.extras  # holds placeholders: never written back
    assert ck.extras == {"epoch": 2}


def test_old_pickle_protocols_and_numpy_values(tmp_path):
    import numpy as np

    obj = {"w": torch.arange(4.0), "args": argparse.Namespace(lr=0.5), "hist": np.arange(3.0),
           "best": np.float64(0.25)}
    path = tmp_path / "p1.pt"
    torch.save(obj, path, pickle_protocol=1)  # user classes go through copyreg._reconstructor
    ck = ckptlab.open(path)
    assert torch.equal(ck.tensor("w"), obj["w"])
    assert ck.placeholders == ("argparse.Namespace",)
    assert {(e.key, e.type) for e in ck.other} == {("args", "argparse.Namespace"), ("hist", "ndarray"),
                                                   ("best", "float64")}
