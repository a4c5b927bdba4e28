"""Load reports, function preservation and speed/memory comparison on real files."""
from __future__ import annotations

import time

import pytest
import torch

import ckptlab
from ckptlab.errors import CheckpointError
from ckptlab.io.model_target import model_target
from ckptlab.models.function_check import compare_function
from ckptlab.models.inputs import default_sizes, infer_input_shape, token_vocab
from ckptlab.models.load_check import describe_misfit, load_report, loaded_model
from ckptlab.models.speed import compare_speed, peak_memory
from sample_ckpts import models
from tests.paths import SAMPLES

CONVNET = "sample_ckpts.models:ConvNet"


def _torch_load_report(sd: dict, model: torch.nn.Module) -> dict:
    """What torch itself says (strict=False skips nothing on shape, so drop those first).

    BatchNorm fills an absent ``num_batches_tracked`` silently when the state_dict's
    version metadata does not name it (as in a re-keyed DDP file); ckptlab still lists it.
    """
    own = model.state_dict()
    mismatched = sorted(k for k in sd if k in own and sd[k].shape != own[k].shape)
    result = model.load_state_dict({k: v for k, v in sd.items() if k not in mismatched}, strict=False)
    missing = set(result.missing_keys) | set(mismatched)
    missing |= {k for k in own if k.endswith("num_batches_tracked") and k not in sd}
    return {"missing": sorted(missing), "unexpected": sorted(result.unexpected_keys),
            "mismatched": mismatched}


@pytest.mark.parametrize("ckpt, model_kwargs", [
    ("convnet_rgb.pt", {"in_chans": 4}),
    ("convnet_rgb_ddp.pt", {}),
    ("convnet_rgb.pt", {}),
    ("classifier_10.pt", {"in_chans": 4, "num_classes": 10}),
])
def test_load_report_agrees_with_torch(ckpt, model_kwargs):
    spec = CONVNET if "convnet" in ckpt else "sample_ckpts.models:Classifier"
    report = load_report(SAMPLES / ckpt, model_target(spec, model_kwargs))
    sd = torch.load(SAMPLES / ckpt, weights_only=True)
    cls = models.ConvNet if "convnet" in ckpt else models.Classifier
    expected = _torch_load_report(sd, cls(**model_kwargs))
    assert sorted(report["unexpected"]) == expected["unexpected"]
    assert sorted([m["key"] for m in report["mismatched"]]) == expected["mismatched"]
    assert sorted(report["missing"] + [m["key"] for m in report["mismatched"]]) == expected["missing"]
    for m in report["mismatched"]:
        assert m["checkpoint_shape"] == list(sd[m["key"]].shape)


def test_load_report_shapes_and_message():
    report = load_report(SAMPLES / "convnet_rgb.pt", model_target(CONVNET, {"in_chans": 4}))
    assert report == {"missing": [], "unexpected": [], "mismatched": [
        {"key": "conv1.weight", "checkpoint_shape": [8, 3, 3, 3], "model_shape": [8, 4, 3, 3]}]}
    assert describe_misfit(report) == ("1 mismatched (first mismatched: conv1.weight checkpoint "
                                       "(8, 3, 3, 3) vs model (8, 4, 3, 3))")


def test_load_report_reads_no_tensor_bytes():
    ck = ckptlab.open(SAMPLES / "convnet_rgb.pt")
    for key in ck.keys():
        ck.lazy(key)._load = _fail  # any byte read would raise
    assert load_report(ck, CONVNET) == {"missing": [], "unexpected": [], "mismatched": []}


def _fail():
    raise AssertionError("tensor bytes were read")


def test_loaded_model_copies_and_refuses_a_misfit():
    model = models.ConvNet()
    before = model.conv1.weight.detach().clone()
    loaded = loaded_model(model, SAMPLES / "convnet_rgb.pt")
    assert torch.equal(model.conv1.weight, before)          # caller's module untouched
    sd = torch.load(SAMPLES / "convnet_rgb.pt", weights_only=True)
    assert torch.equal(loaded.conv1.weight, sd["conv1.weight"])
    assert not loaded.training
    with pytest.raises(CheckpointError, match="does not fit ConvNet: 1 mismatched"):
        loaded_model(models.ConvNet(in_chans=4), SAMPLES / "convnet_rgb.pt")


def test_infer_input_shape_prefers_the_first_conv():
    assert infer_input_shape(models.ConvNet(in_chans=4), n=2) == (2, 4, 32, 32)
    assert infer_input_shape(models.FontUNet()) == (4, 1, 32, 32)     # not its style Linear
    assert infer_input_shape(torch.nn.Sequential(torch.nn.Linear(7, 2))) == (4, 7)
    with pytest.raises(CheckpointError, match="cannot infer an input shape"):
        infer_input_shape(torch.nn.Sequential(torch.nn.ReLU()))


def _rgba_from_rgb(zero_alpha: bool) -> dict[str, torch.Tensor]:
    sd = torch.load(SAMPLES / "convnet_rgb.pt", weights_only=True)
    w = sd["conv1.weight"]
    alpha = torch.zeros_like(w[:, :1]) if zero_alpha else torch.full_like(w[:, :1], 0.1)
    sd["conv1.weight"] = torch.cat([w, alpha], 1)
    return sd


def test_function_preserved_for_zero_padded_channel():
    result = compare_function(CONVNET, SAMPLES / "convnet_rgb.pt",
                              model_target(CONVNET, {"in_chans": 4}), _rgba_from_rgb(zero_alpha=True))
    assert result.equal and result.max_abs_diff == 0.0
    assert result.source_input_shape == (4, 3, 32, 32) and result.target_input_shape == (4, 4, 32, 32)
    assert [f["fill"] for f in result.fills] == ["zeros", "random-0", "random-1", "random-2"]


def test_function_check_catches_a_non_zero_alpha_channel():
    result = compare_function(CONVNET, SAMPLES / "convnet_rgb.pt",
                              model_target(CONVNET, {"in_chans": 4}), _rgba_from_rgb(zero_alpha=False))
    assert not result.equal
    zeros = next(f for f in result.fills if f["fill"] == "zeros")
    assert zeros["max_abs_diff"] == 0.0                     # alpha 0: still equal
    assert all(f["max_abs_diff"] > 1e-3 for f in result.fills if f["fill"] != "zeros")


def test_function_check_catches_a_changed_weight_and_honours_channel_map():
    sd = torch.load(SAMPLES / "convnet_rgb.pt", weights_only=True)
    same = compare_function(CONVNET, sd, CONVNET, sd)
    assert same.equal and [f["fill"] for f in same.fills] == ["none"]
    sd2 = dict(sd, **{"fc.bias": sd["fc.bias"] + 0.5})
    moved = compare_function(CONVNET, sd, CONVNET, sd2)
    assert not moved.equal and moved.max_abs_diff == pytest.approx(0.5, abs=1e-5)
    # alpha first: the source's RGB sits at target channels 1..3
    w = sd["conv1.weight"]
    alpha_first = dict(sd, **{"conv1.weight": torch.cat([torch.zeros_like(w[:, :1]), w], 1)})
    target = model_target(CONVNET, {"in_chans": 4})
    assert compare_function(CONVNET, sd, target, alpha_first, channel_map=[1, 2, 3]).equal
    assert not compare_function(CONVNET, sd, target, alpha_first).equal
    with pytest.raises(CheckpointError, match="channel_map"):
        compare_function(CONVNET, sd, target, alpha_first, channel_map=[0, 0, 1])


def test_function_check_with_given_inputs_and_different_outputs():
    sd = torch.load(SAMPLES / "convnet_rgb.pt", weights_only=True)
    x = torch.randn(2, 3, 8, 8)
    assert compare_function(CONVNET, sd, CONVNET, sd, inputs=x).source_input_shape == (2, 3, 8, 8)
    other_rank = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1))             # a 4-D output vs ConvNet's 2-D
    with pytest.raises(CheckpointError, match="outputs differ in shape"):
        compare_function(CONVNET, sd, other_rank, None)


def test_function_check_of_a_grown_head_compares_the_kept_rows(tmp_path):
    """Classifier 10 -> 100 classes, fc padded with the target's init: outputs 0..9 are the
    old model's (the suggestion's promise), 10..99 are new and not compared."""
    out = tmp_path / "cls100.safetensors"
    grow = {"op": "pad", "dim": 0, "fill": "init"}
    ckptlab.remap(SAMPLES / "classifier_10.pt", SAMPLES / "classifier_100.pt", out,
                  recipe={"adapt": {"fc.weight": grow, "fc.bias": grow}})
    classifier = "sample_ckpts.models:Classifier"
    check = compare_function(classifier, SAMPLES / "classifier_10.pt",
                             model_target(classifier, {"num_classes": 100}), out)
    assert check.max_abs_diff < 1e-5
    assert check.outputs == ("the output rows 0..9 of dim 1 only (source 10, target 100: the kept rows; "
                             "the others are new)")
    whole = compare_function(classifier, SAMPLES / "classifier_10.pt", classifier, SAMPLES / "classifier_10.pt")
    assert whole.outputs == "every output, whole" and whole.equal
    with pytest.raises(CheckpointError, match=r"10 is not a row count the adapters kept \(7\)"):
        compare_function(classifier, SAMPLES / "classifier_10.pt", model_target(classifier, {"num_classes": 100}),
                         out, kept_rows={7})
    merged_ck = ckptlab.open(out)
    merged = {k: merged_ck.tensor(k).clone() for k in merged_ck.keys()}
    merged["fc.bias"][3] += 1.0                                           # a kept row changed: caught
    bad = compare_function(classifier, SAMPLES / "classifier_10.pt", model_target(classifier, {"num_classes": 100}),
                           merged)
    assert bad.max_abs_diff == pytest.approx(1.0, abs=1e-5)


class _Stack(torch.nn.Module):
    """``depth`` 3x3 convs of 16 channels: 4x the depth is ~4x the work."""

    def __init__(self, depth: int):
        super().__init__()
        self.stem = torch.nn.Conv2d(3, 16, 3, padding=1)
        self.body = torch.nn.Sequential(*[torch.nn.Conv2d(16, 16, 3, padding=1) for _ in range(depth)])

    def forward(self, x):
        return self.body(self.stem(x))


def test_compare_speed_ratio_sign_and_one_point_per_size_for_both_models():
    report = compare_speed({"shallow": _Stack(2), "deep": _Stack(8)}, sizes=[16, 32], budget_s=2.0)
    assert report.names == ("shallow", "deep")
    assert [p.size for p in report.points] == [16, 32]
    for point in report.points:
        assert point.ratio > 1                    # the only timed assert: 4x the layers is slower
        assert set(point.median_ms) == set(point.peak_bytes) == {"shallow", "deep"}
        assert point.input_shapes == {"shallow": (2, 3, point.size, point.size),
                                      "deep": (2, 3, point.size, point.size)}
        assert point.ratio_low <= point.ratio <= point.ratio_high and point.pairs >= 3     # the budget floor
        assert point.ratio_ci[0] <= point.ratio <= point.ratio_ci[1]
        assert point.stopped in ("spread small", "time budget", "max pairs")
    assert report.params == {"shallow": sum(p.numel() for p in _Stack(2).parameters()),
                             "deep": sum(p.numel() for p in _Stack(8).parameters())}
    assert report.threads == 1 and torch.get_num_threads() >= 1


def test_identical_models_are_too_noisy_to_tell():
    """Two copies of one model: per-pair ratios scatter around 1 in alternating order, so the
    interquartile range includes 1 (40 pairs: a false 'faster' needs 30 on one side)."""
    net = models.ConvNet()
    report = compare_speed({"a": net, "b": net}, sizes=[16], min_pairs=40, max_pairs=40, tolerance=0.0,
                           budget_s=60.0)
    point = report.points[0]
    assert point.pairs == 40 and point.stopped == "max pairs"
    assert point.noisy and point.ratio_low <= 1 <= point.ratio_high
    assert report.verdict(point).startswith("Too noisy to tell at size 16")
    assert report.to_dict()["points"][0]["noisy"] is True


def test_attention_swap_memory_over_sizes():
    """Peak memory is deterministic: SelfAttention holds an (hw x hw) map, LinearAttention not."""
    report = compare_speed({
        "self": model_target("sample_ckpts.models:FontUNet", {"attention": "self"}),
        "linear": model_target("sample_ckpts.models:FontUNet", {"attention": "linear"}),
    }, sizes=[16, 32], budget_s=0.5, min_pairs=2)
    small, large = report.points
    for point in report.points:
        assert point.peak_bytes["self"] > point.peak_bytes["linear"] > 0
        assert point.memory_ratio == pytest.approx(point.peak_bytes["linear"] / point.peak_bytes["self"])
    # 2 x 256 x 256 floats at the 16x16 level of a 32x32 glyph alone
    assert large.peak_bytes["self"] >= 2 * 256 * 256 * 4
    assert large.peak_bytes["self"] / small.peak_bytes["self"] > large.peak_bytes["linear"] / small.peak_bytes["linear"]
    assert large.input_shapes["self"] == (2, 1, 32, 32)
    assert report.params["self"] == sum(p.numel() for p in models.FontUNet("self").parameters())
    assert "op output" in report.memory_method


def test_peak_memory_counts_live_tensors_not_freed_ones():
    class TwoTemps(torch.nn.Module):
        def forward(self, x):
            a = x.new_ones(1000, 1000)                    # 4 MB
            del a
            b = x.new_ones(1000, 1000)                    # 4 MB, after a is freed
            c = x.new_ones(500, 1000)                     # 2 MB while b lives
            return b.sum() + c.sum()
    assert 6_000_000 <= peak_memory(TwoTemps(), torch.zeros(1)) < 6_100_000


def test_peak_memory_does_not_count_views_of_weights_or_inputs():
    """F.linear takes weight.t() (a view of 4 MB of parameters) and Flatten views the input:
    neither allocates; only the (2, 1000) output does."""
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(1000, 1000)).eval()
    assert peak_memory(net, torch.randn(2, 10, 100)) == 2 * 1000 * 4


def test_compare_speed_inputs_per_model_backward_and_errors():
    report = compare_speed({"a": models.ConvNet(), "b": models.ConvNet(in_chans=4)}, sizes=[8], budget_s=0.3,
                           min_pairs=2, backward=True)
    assert report.points[0].input_shapes == {"a": (2, 3, 8, 8), "b": (2, 4, 8, 8)}
    linear = compare_speed({"a": torch.nn.Linear(5, 3), "b": torch.nn.Linear(5, 3)}, sizes=[1, 7], budget_s=0.3,
                           min_pairs=2)
    assert [p.input_shapes["a"] for p in linear.points] == [(1, 5), (7, 5)]
    assert default_sizes(models.ConvNet()) == [16, 32, 64] and default_sizes(torch.nn.Linear(5, 3)) == [1, 16, 64]
    with pytest.raises(CheckpointError, match="two models"):
        compare_speed({})
    with pytest.raises(CheckpointError, match="positive integers"):
        compare_speed({"a": models.ConvNet(), "b": models.ConvNet()}, sizes=[0])
    with pytest.raises(CheckpointError, match=r"model 'b' fails on input \(2, 1, 20, 20\)"):
        compare_speed({"a": models.ConvNet(in_chans=1), "b": models.FontUNet()}, sizes=[20])


class _Tokens(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.wte = torch.nn.Embedding(50, 8)
        self.head = torch.nn.Linear(8, 50)

    def forward(self, ids):
        return self.head(self.wte(ids))


def test_token_models_are_timed_over_sequence_lengths_with_token_ids():
    assert token_vocab(_Tokens()) == 50 and token_vocab(models.FontUNet()) is None   # a style table is no vocabulary
    assert default_sizes(_Tokens()) == [16, 64, 256]
    report = compare_speed({"a": _Tokens(), "b": _Tokens()}, sizes=[4, 16], budget_s=0.3, min_pairs=2)
    assert [p.input_shapes["a"] for p in report.points] == [(2, 4), (2, 16)]
    assert report.points[1].peak_bytes["a"] >= 2 * 16 * 50 * 4                       # the logits


class _Sleeper(torch.nn.Module):
    """A model slow on any machine: one pass sleeps ``seconds``."""

    def __init__(self, seconds: float):
        super().__init__()
        self.seconds = seconds
        self.fc = torch.nn.Linear(4, 4)

    def forward(self, x):
        time.sleep(self.seconds)
        return self.fc(x)


def test_the_budget_stops_a_slow_pair_after_three_pairs_and_says_the_figure_is_rough():
    seen = []
    report = compare_speed({"a": _Sleeper(0.01), "b": _Sleeper(0.04)}, sizes=[1, 2], budget_s=0.01, warmup=1,
                           progress=lambda done, total: seen.append((done, total)))
    assert seen == [(1, 2), (2, 2)]
    for point in report.points:
        assert point.pairs == 3 and point.stopped == "time budget"
        assert "Only 3 pairs fit in the time budget (fewer than 10)" in report.verdict(point)
