"""The stories end to end with the bundled samples: the remapped file loads, and each
adapter keeps the promise it makes about the model's behaviour."""
from __future__ import annotations

import json

import pytest
import torch

from ckptlab.merge.planning import remap
from sample_ckpts.models import Classifier, ConvNet
from tests.paths import SAMPLES


def load(path) -> dict[str, torch.Tensor]:
    if str(path).endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(path)
    return torch.load(path, weights_only=True)


def model_with(cls, state: dict[str, torch.Tensor], **kwargs) -> torch.nn.Module:
    model = cls(**kwargs)
    model.load_state_dict(state, strict=True)
    return model.eval()


def rgb_model() -> torch.nn.Module:
    return model_with(ConvNet, load(SAMPLES / "convnet_rgb.pt"), in_chans=3)


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
@pytest.mark.parametrize("source", ["convnet_rgb.pt", "convnet_rgb.safetensors"])
def test_rgb_to_rgba_zero_pad_gives_the_rgb_output_whatever_alpha_holds(tmp_path, suffix, source):
    out = tmp_path / f"rgba{suffix}"
    report = remap(SAMPLES / source, SAMPLES / "convnet_rgba.pt", out,
                   recipe={"adapt": {"conv1.weight": {"op": "pad", "dim": 1, "fill": "zeros"}}})
    assert report.adapted == ["conv1.weight"] and report.missing == []
    rgba, rgb = model_with(ConvNet, load(out), in_chans=4), rgb_model()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for alpha_scale in (0.0, 1.0, 1e3):
            x = torch.randn(3, 3, 16, 16, generator=g)
            alpha = torch.randn(3, 1, 16, 16, generator=g) * alpha_scale
            assert torch.equal(rgba(torch.cat([x, alpha], 1)), rgb(x))


def test_repeat_fill_keeps_the_first_conv_output_for_a_grey_input(tmp_path):
    """RGB -> 6 channels (a multiple of 3): one signal on every channel gives the RGB conv's output."""
    out = tmp_path / "six.pt"
    remap(SAMPLES / "convnet_rgb.pt", ConvNet(in_chans=6), out,
          recipe={"adapt": {"conv1.weight": {"op": "pad", "dim": 1, "fill": "repeat"}}})
    six, rgb = model_with(ConvNet, load(out), in_chans=6), rgb_model()
    grey = torch.randn(2, 1, 12, 12, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(six.conv1(grey.expand(2, 6, 12, 12)), rgb.conv1(grey.expand(2, 3, 12, 12)))
        torch.testing.assert_close(six(grey.expand(2, 6, 12, 12)), rgb(grey.expand(2, 3, 12, 12)))


def test_repeat_fill_on_rgba_tiles_and_rescales(tmp_path):
    out = tmp_path / "rgba.pt"
    remap(SAMPLES / "convnet_rgb.pt", SAMPLES / "convnet_rgba.pt", out,
          recipe={"adapt": {"conv1.weight": {"op": "pad", "dim": 1, "fill": "repeat"}}})
    w, w3 = load(out)["conv1.weight"], load(SAMPLES / "convnet_rgb.pt")["conv1.weight"]
    torch.testing.assert_close(w, torch.cat([w3, w3[:, :1]], 1) * 0.75)


def test_mean_fill_makes_the_new_channel_the_channel_mean(tmp_path):
    out = tmp_path / "rgba.safetensors"
    remap(SAMPLES / "convnet_rgb.pt", SAMPLES / "convnet_rgba.pt", out,
          recipe={"adapt": {"conv1.weight": {"op": "pad", "dim": 1, "fill": "mean"}}})
    w, w3 = load(out)["conv1.weight"], load(SAMPLES / "convnet_rgb.pt")["conv1.weight"]
    assert torch.equal(w[:, :3], w3)
    torch.testing.assert_close(w[:, 3], w3.mean(dim=1))
    model_with(ConvNet, load(out), in_chans=4)  # loads strict


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_head_10_to_100_with_init_keeps_the_source_rows_and_the_targets_new_rows(tmp_path, suffix):
    out = tmp_path / f"cls100{suffix}"
    spec = {"op": "pad", "dim": 0, "fill": "init"}
    report = remap(SAMPLES / "classifier_10.pt", SAMPLES / "classifier_100.pt", out,
                   recipe={"adapt": {"fc.weight": spec, "fc.bias": spec}})
    merged, src, tgt = load(out), load(SAMPLES / "classifier_10.pt"), load(SAMPLES / "classifier_100.pt")
    for key in ("fc.weight", "fc.bias"):
        assert torch.equal(merged[key][:10], src[key])
        assert torch.equal(merged[key][10:], tgt[key][10:])
    backbone = [k for k in src if k.startswith("backbone.")]
    assert all(torch.equal(merged[k], src[k]) for k in backbone)
    assert sorted(report.pretrained) == sorted(src)
    model_with(Classifier, merged, num_classes=100)


def test_lightning_file_nested_back_with_its_extras(tmp_path):
    """A Lightning .ckpt remapped onto the plain model, written back in Lightning's layout."""
    out = tmp_path / "fixed.ckpt"
    report = remap(SAMPLES / "convnet_rgb_lightning.ckpt", SAMPLES / "convnet_rgb.pt", out,
                   nest=True, keep_extras=True)
    original = torch.load(SAMPLES / "convnet_rgb_lightning.ckpt", weights_only=True)
    written = torch.load(out, weights_only=True)
    assert set(written) >= {"state_dict", "epoch", "global_step", "hyper_parameters"}
    for key in ("epoch", "global_step", "hyper_parameters"):
        assert written[key] == original[key]
    model_with(ConvNet, written["state_dict"], in_chans=3)
    assert all(torch.equal(written["state_dict"][r.target], original["state_dict"][r.source])
               for r in report.rows if r.status in ("exact", "renamed"))


def test_extras_go_into_safetensors_metadata_and_nesting_needs_pt(tmp_path):
    from safetensors import safe_open

    from ckptlab.errors import MergeError

    out = tmp_path / "fixed.safetensors"
    remap(SAMPLES / "convnet_rgb_lightning.ckpt", SAMPLES / "convnet_rgb.pt", out, keep_extras=True)
    with safe_open(out, "pt") as f:
        meta = f.metadata()
    assert json.loads(meta["epoch"]) == 7 and json.loads(meta["hyper_parameters"])["in_chans"] == 3
    with pytest.raises(MergeError, match="nest=True needs a .pt"):
        remap(SAMPLES / "convnet_rgb_lightning.ckpt", SAMPLES / "convnet_rgb.pt", tmp_path / "x.safetensors", nest=True)
    assert not (tmp_path / "x.safetensors").exists()
