"""Model definitions as checkpoints: specs, meta-device shapes, seeded values, refusals."""
from __future__ import annotations

import textwrap

import pytest
import torch

import ckptlab
from ckptlab.errors import ModelSpecError
from ckptlab.io.model_target import ModelSpec, build_model, model_target
from ckptlab.io.sources import as_checkpoint
from sample_ckpts import models

CONVNET = "sample_ckpts.models:ConvNet"


def test_keys_shapes_dtypes_match_the_real_model():
    ck = model_target(CONVNET, {"in_chans": 4})
    real = models.ConvNet(in_chans=4).state_dict()
    assert ck.format == "model"
    assert ck.metadata["spec"] == CONVNET
    assert ck.keys() == list(real)
    for key, value in real.items():
        assert ck.info(key).shape == tuple(value.shape)
        assert ck.info(key).dtype == value.dtype
    assert ck.info("conv1.weight").shape == (8, 4, 3, 3)


def test_kwargs_as_json_text():
    ck = model_target(CONVNET, '{"in_chans": 1, "num_classes": 3}')
    assert ck.info("conv1.weight").shape == (8, 1, 3, 3)
    assert ck.info("fc.weight").shape == (3, 16)


def test_meta_build_allocates_nothing_even_for_a_huge_model():
    # ~7.5e9 parameters: 30 GB on CPU, impossible here; on meta it is instant.
    ck = model_target("torch.nn:Linear", {"in_features": 100_000, "out_features": 75_000})
    assert ck.total_params == 100_000 * 75_000 + 75_000
    assert ck.info("weight").nbytes == 100_000 * 75_000 * 4


def test_values_are_seeded_materialised_once_and_leave_global_rng_alone():
    ck = model_target(CONVNET)
    torch.manual_seed(123)
    before = torch.get_rng_state()
    first = ck.tensor("conv1.weight")
    assert torch.equal(torch.get_rng_state(), before)
    torch.manual_seed(0)
    expected = models.ConvNet().state_dict()
    for key in ck.keys():
        assert torch.equal(ck.tensor(key), expected[key]), key
    assert torch.equal(first, ck.tensor("conv1.weight"))
    # Cached: the materialised model is built once; tensor() hands out copies.
    state = ck._materialiser.state()
    assert ck._materialiser.state() is state
    t = ck.tensor("conv1.weight")
    t.zero_()
    assert not torch.equal(ck.tensor("conv1.weight"), t)


def test_different_seed_gives_different_values():
    a = model_target(CONVNET, seed=0).tensor("conv1.weight")
    b = model_target(CONVNET, seed=1).tensor("conv1.weight")
    assert not torch.equal(a, b)


def test_build_model_equals_checkpoint_values():
    ck = model_target(CONVNET, {"in_chans": 4}, seed=5)
    model = ck.build()
    for key, value in model.state_dict().items():
        assert torch.equal(value, ck.tensor(key))
    assert build_model(CONVNET, device="meta").conv1.weight.is_meta


def test_tied_parameters_are_reported_as_aliases(tmp_path, monkeypatch):
    (tmp_path / "tied.py").write_text(textwrap.dedent("""
        from torch import nn
        class Tied(nn.Module):
            def __init__(self):
                super().__init__()
                self.emb = nn.Embedding(10, 4)
                self.out = nn.Linear(4, 10, bias=False)
                self.out.weight = self.emb.weight
    """))
    monkeypatch.chdir(tmp_path)
    ck = model_target("tied:Tied")
    assert ck.aliases() == [("emb.weight", "out.weight")]


def test_as_checkpoint_routes_specs_to_model_target():
    ck = as_checkpoint(CONVNET, kwargs={"in_chans": 4})
    assert ck.format == "model" and ck.info("conv1.weight").shape == (8, 4, 3, 3)


@pytest.mark.parametrize("spec, kwargs, fragment", [
    ("no_colon_here", {}, "is not 'package.module:callable'"),
    ("sample_ckpts.models:", {}, "is not 'package.module:callable'"),
    ("sample_ckpts.models:Conv-Net", {}, "is not a Python name"),
    ("bad module:ConvNet", {}, "not a dotted module name"),
    ("no_such_pkg_xyz.mod:Net", {}, "cannot import 'no_such_pkg_xyz.mod'"),
    ("sample_ckpts.models:NoSuchNet", {}, "has no attribute 'NoSuchNet'"),
    ("sample_ckpts.models:ConvNet", {"in_channels": 4}, "wrong kwargs ['in_channels']"),
    ("torch.nn:Linear", {"in_features": -1, "out_features": 2}, "building the model raised RuntimeError"),
    ("json:dumps", {"obj": 1}, "returned a str, not a torch.nn.Module"),
    ("sample_ckpts.models:__doc__", {}, "is a str, not callable"),
])
def test_one_line_errors(spec, kwargs, fragment):
    with pytest.raises(ModelSpecError) as info:
        model_target(spec, kwargs)
    message = str(info.value)
    assert fragment in message
    assert "\n" not in message


def test_bad_kwargs_json_is_one_line():
    with pytest.raises(ModelSpecError, match="not valid JSON"):
        model_target(CONVNET, "{in_chans: 4}")
    with pytest.raises(ModelSpecError, match="must be a JSON object, got list"):
        model_target(CONVNET, "[4]")


MODEL_FILE = """
import pathlib
pathlib.Path(__file__).with_name("marker").write_text("ran")
from torch import nn

def make(width=3):
    return nn.Linear(width, 2)

def explode():
    raise ValueError("boom\\nsecond line")
"""


def test_file_spec_is_refused_without_the_flag_and_does_not_run(tmp_path, monkeypatch):
    (tmp_path / "m.py").write_text(MODEL_FILE)
    monkeypatch.delenv("CKPTLAB_ALLOW_CODE", raising=False)
    spec = f"{tmp_path / 'm.py'}:make"
    with pytest.raises(ModelSpecError, match="--allow-code or set CKPTLAB_ALLOW_CODE=1"):
        model_target(spec)
    with pytest.raises(ModelSpecError):
        as_checkpoint(spec)
    # An explicit False refuses even when the environment allows.
    monkeypatch.setenv("CKPTLAB_ALLOW_CODE", "1")
    with pytest.raises(ModelSpecError, match="refused"):
        model_target(spec, allow_code=False)
    assert not (tmp_path / "marker").exists()


def test_file_spec_runs_with_the_flag_or_the_environment(tmp_path, monkeypatch):
    (tmp_path / "m.py").write_text(MODEL_FILE)
    spec = f"{tmp_path / 'm.py'}:make"
    monkeypatch.delenv("CKPTLAB_ALLOW_CODE", raising=False)
    ck = model_target(spec, {"width": 5}, allow_code=True)
    assert (tmp_path / "marker").read_text() == "ran"
    assert ck.info("weight").shape == (2, 5)
    monkeypatch.setenv("CKPTLAB_ALLOW_CODE", "1")
    assert model_target(spec).info("weight").shape == (2, 3)
    with pytest.raises(ModelSpecError, match=r"raised ValueError: boom$"):
        model_target(f"{tmp_path / 'm.py'}:explode")


def test_file_that_fails_at_import_gives_one_line(tmp_path):
    (tmp_path / "broken.py").write_text("import torch\nraise ImportError('needs timm')\n")
    with pytest.raises(ModelSpecError, match="running model file raised ImportError: needs timm"):
        model_target(f"{tmp_path / 'broken.py'}:Net", allow_code=True)
    with pytest.raises(ModelSpecError, match="does not exist"):
        model_target(f"{tmp_path / 'absent.py'}:Net", allow_code=True)


def test_constructor_that_cannot_run_on_meta_is_built_for_real_once(tmp_path, monkeypatch):
    (tmp_path / "itemnet.py").write_text(textwrap.dedent("""
        import torch
        from torch import nn
        BUILDS = []
        class ItemNet(nn.Module):
            def __init__(self, depth=3):
                super().__init__()
                BUILDS.append(1)
                rates = [x.item() for x in torch.linspace(0, 0.1, depth)]   # fails on meta
                self.blocks = nn.ModuleList(nn.Linear(4, 4) for _ in rates)
    """))
    monkeypatch.chdir(tmp_path)
    ck = model_target("itemnet:ItemNet", {"depth": 2}, seed=3)
    import itemnet
    assert ck.metadata["built_on"] == "cpu"
    assert ck.keys() == ["blocks.0.weight", "blocks.0.bias", "blocks.1.weight", "blocks.1.bias"]
    builds = len(itemnet.BUILDS)
    torch.manual_seed(3)
    expected = itemnet.ItemNet(depth=2).state_dict()
    assert all(torch.equal(ck.tensor(k), v) for k, v in expected.items())
    assert len(itemnet.BUILDS) == builds + 1              # only the reference build above: values cached
    assert model_target(CONVNET).metadata["built_on"] == "meta"


def test_a_constructor_that_cannot_run_on_meta_is_seen_after_transformers_loaded_a_model(tmp_path, monkeypatch):
    """transformers swaps torch.linspace for a wrapper while it builds a model; if torch first
    lists its device-redirected constructors then, the list keeps the wrapper for the whole
    process and torch.linspace makes real tensors under the meta device from then on."""
    from transformers.initialization import meta_device_safe_creation_ops
    import torch.utils._device as device_context

    (tmp_path / "dropnet.py").write_text(textwrap.dedent("""
        import torch
        from torch import nn
        class DropNet(nn.Module):
            def __init__(self, depth=3):
                super().__init__()
                rates = [x.item() for x in torch.linspace(0, 0.1, depth)]   # fails on meta
                self.blocks = nn.ModuleList(nn.Linear(4, 4) for _ in rates)
    """))
    monkeypatch.chdir(tmp_path)
    device_context._device_constructors.cache_clear()
    with meta_device_safe_creation_ops(), torch.device("meta"):
        torch.empty(1)                                        # the list is made with the wrapper in it
    try:
        assert torch.linspace not in device_context._device_constructors()
        ck = model_target("dropnet:DropNet", {"depth": 2})
        assert ck.metadata["built_on"] == "cpu"
        assert ck.keys() == ["blocks.0.weight", "blocks.0.bias", "blocks.1.weight", "blocks.1.bias"]
    finally:
        device_context._device_constructors.cache_clear()


def test_spec_parse():
    assert ModelSpec.parse("a.b:C") == ModelSpec("a.b:C", "a.b", "C", False)
    assert ModelSpec.parse("dir/m.py:Factory.build").is_file
    assert ckptlab.ModelSpecError is ModelSpecError
