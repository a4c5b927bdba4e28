"""``ckptlab remap``: loadable files for every story; exit 1 and nothing written when blocked."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from ckptlab.cli import main
from ckptlab.cli.remap_cmd import parse_size
from ckptlab.errors import CheckpointError
from sample_ckpts import models
from tests.paths import ROOT

SAMPLES = ROOT / "sample_ckpts"
PAD_INIT = {"op": "pad", "dim": 0, "fill": "init"}

# story -> (source, target, recipe, model class, kwargs)
STORIES = {
    "1-attention-swap": ("font_unet_self_attention.pt", "font_unet_linear_attention.pt", None,
                         models.FontUNet, {"attention": "linear"}),
    "2-rgb-to-rgba": ("convnet_rgb.pt", "convnet_rgba.pt",
                      {"adapt": {"conv1.weight": {"op": "pad", "dim": 1, "fill": "zeros"}}},
                      models.ConvNet, {"in_chans": 4}),
    "3-fine-tune-head": ("classifier_10.pt", "classifier_100.pt",
                         {"adapt": {"fc.weight": PAD_INIT, "fc.bias": PAD_INIT}},
                         models.Classifier, {"num_classes": 100}),
    "3-projector-prefix": ("projector.pt", "classifier_100.pt",
                           {"rules": [{"strip_prefix": "classifier."}],
                            "adapt": {"fc.weight": PAD_INIT, "fc.bias": PAD_INIT}},
                           models.Classifier, {"num_classes": 100}),
    "4-warm-start": ("smallnet.pt", "warmstart_net.pt",
                     {"rules": [{"replace": {"pattern": "^conv1\\.", "with": "backbone_conv."}}]},
                     models.WarmStartNet, {}),
    "5-silent-empty-load": ("attention_net_ckpt.pt", "attention_wrapper.pt",
                            {"rules": [{"add_prefix": "attention_map."}]}, models.AttentionWrapper, {}),
    "ddp-prefix": ("convnet_rgb_ddp.pt", "convnet_rgb.pt", {"rules": [{"strip_prefix": "module."}]},
                   models.ConvNet, {"in_chans": 3}),
}


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["remap", *(str(a) for a in argv)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def load(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(path)
    return torch.load(path, weights_only=True)


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
@pytest.mark.parametrize("story", sorted(STORIES))
def test_every_story_gives_a_file_that_loads_strict(tmp_path, capsys, story, suffix):
    source, target, recipe, cls, kwargs = STORIES[story]
    args = [SAMPLES / source, SAMPLES / target, "-o", tmp_path / f"out{suffix}", "--json"]
    if recipe:
        (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
        args += ["--recipe", tmp_path / "recipe.yaml"]
    code, out, err = cli(capsys, *args)
    assert code == 0, err
    report = json.loads(out)
    merged = load(tmp_path / f"out{suffix}")
    model = cls(**kwargs)
    model.load_state_dict(merged, strict=True)
    assert sorted(merged) == sorted(model.state_dict())
    assert report["summary"]["exact"] + report["summary"].get("renamed", 0) > 0
    source_state = torch.load(SAMPLES / source, weights_only=True)
    source_state = source_state.get("net", source_state)
    for row in report["rows"]:
        if row["status"] in ("exact", "renamed"):
            assert torch.equal(merged[row["target"]], source_state[row["source"]]), row


def test_a_mismatch_exits_1_writes_nothing_and_names_the_row(tmp_path, capsys):
    code, out, err = cli(capsys, SAMPLES / "convnet_rgb.pt", SAMPLES / "convnet_rgba.pt",
                         "-o", tmp_path / "out.pt", "--auto", "none")
    assert code == 1 and out == ""
    assert "shape mismatch at 'conv1.weight': source (8, 3, 3, 3) vs target (8, 4, 3, 3)" in err
    assert os.listdir(tmp_path) == []


def test_a_conflict_exits_1_and_writes_nothing(tmp_path, capsys):
    torch.save({"a.w": torch.ones(2), "b.w": torch.zeros(2)}, tmp_path / "s.pt")
    torch.save({"w": torch.zeros(2)}, tmp_path / "t.pt")
    (tmp_path / "r.json").write_text(json.dumps({"rules": [{"replace": {"pattern": "^(a|b)\\.", "with": ""}}]}))
    code, out, err = cli(capsys, tmp_path / "s.pt", tmp_path / "t.pt", "-o", tmp_path / "out.safetensors",
                         "--recipe", tmp_path / "r.json", "--auto", "none", "--json")
    assert code == 1 and json.loads(out)["error"] == err.strip().removeprefix("ckptlab: error: ")
    assert "conflict at 'w' (a.w, b.w)" in err
    assert sorted(os.listdir(tmp_path)) == ["r.json", "s.pt", "t.pt"]


@pytest.mark.parametrize("report_name", ["report.json", "report.csv"])
def test_keep_target_writes_the_target_value_and_the_report_says_so(tmp_path, capsys, report_name):
    code, out, err = cli(capsys, SAMPLES / "convnet_rgb.pt", SAMPLES / "convnet_rgba.pt", "-o", tmp_path / "o.pt",
                         "--on-mismatch", "keep-target", "--report", tmp_path / report_name)
    assert code == 0, err
    assert "wrote" in out
    merged, target = load(tmp_path / "o.pt"), load(SAMPLES / "convnet_rgba.pt")
    assert torch.equal(merged["conv1.weight"], target["conv1.weight"])
    if report_name.endswith(".json"):
        rows = json.loads((tmp_path / report_name).read_text())["rows"]
    else:
        rows = pd.read_csv(tmp_path / report_name, keep_default_na=False).to_dict("records")
    row = next(r for r in rows if r["target"] == "conv1.weight")
    assert row["status"] == "mismatch" and "kept target value" in row["note"]


def test_json_prints_one_object_on_stdout_only(tmp_path, capfd):
    code = main(["remap", str(SAMPLES / "smallnet.pt"), str(SAMPLES / "warmstart_net.pt"), "-o",
                 str(tmp_path / "o.safetensors"), "--json"])
    out, err = capfd.readouterr()                   # what reached file descriptors 1 and 2
    assert code == 0, err
    report = json.loads(out)
    assert {r["target"] for r in report["rows"]} == set(load(SAMPLES / "warmstart_net.pt"))
    assert report["outputs"] == [str(tmp_path / "o.safetensors")]


def test_sharded_output_from_the_cli(tmp_path, capsys):
    code, _, err = cli(capsys, SAMPLES / "smallnet.pt", SAMPLES / "smallnet.pt", "-o", tmp_path / "m.safetensors",
                       "--max-shard-size", "2KB")
    assert code == 0, err
    index = json.loads((tmp_path / "m.safetensors.index.json").read_text())
    shards = sorted(set(index["weight_map"].values()))
    assert len(shards) > 1 and all((tmp_path / s).exists() for s in shards)
    merged = {k: v for s in shards for k, v in load(tmp_path / s).items()}
    models.SmallNet().load_state_dict(merged, strict=True)


def test_parse_size():
    assert parse_size("5GB") == 5 * 10**9 and parse_size("500MiB") == 500 * 2**20 and parse_size("1024") == 1024
    assert parse_size("1.5 gb") == 1_500_000_000 and parse_size(None) is None
    with pytest.raises(CheckpointError, match="not a size"):
        parse_size("lots")


def test_a_blocked_merge_is_one_line_with_the_way_out_and_lists_long_fault_lists(tmp_path, capsys):
    torch.save({"head.weight": torch.zeros(2, 4), "head.bias": torch.zeros(2)}, tmp_path / "s.pt")
    torch.save({"head.weight": torch.zeros(5, 4), "head.bias": torch.zeros(5)}, tmp_path / "t.pt")
    code, out, err = cli(capsys, tmp_path / "s.pt", tmp_path / "t.pt", "-o", tmp_path / "o.pt")
    assert code == 1 and out == ""
    [line] = err.strip().splitlines()
    assert line.startswith("ckptlab: error: 2 rows block the merge: shape mismatch at 'head.weight': source (2, 4)")
    assert line.endswith("keep the target's values with --on-mismatch keep-target)")
    many = {f"layers.{i}.w": torch.zeros(3) for i in range(7)}
    torch.save(many, tmp_path / "s7.pt")
    torch.save({k: torch.zeros(4) for k in many}, tmp_path / "t7.pt")
    code, _, err = cli(capsys, tmp_path / "s7.pt", tmp_path / "t7.pt", "-o", tmp_path / "o.pt", "--auto", "none")
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 8 and "... and 2 more" in lines[-1]
    assert [ln.strip() for ln in lines[:7]] == [
        f"shape mismatch at 'layers.{i}.w': source (3,) vs target (4,)" for i in range(7)]
    assert sorted(os.listdir(tmp_path)) == ["s.pt", "s7.pt", "t.pt", "t7.pt"]
