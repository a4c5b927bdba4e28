"""``ckptlab inspect``: the JSON contract, the table, and errors as one line."""
from __future__ import annotations

import json
import subprocess
import sys

import torch

import ckptlab
from ckptlab.cli import main
from tests.paths import REPO

CONTRACT = {"format", "container", "tensors", "total_params", "other"}


def _inspect(capsys, *argv) -> tuple[int, str, str]:
    code = main(["inspect", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_json_follows_the_contract(capsys, sample):
    code, out, err = _inspect(capsys, sample("attention_net_ckpt.pt"), "--json")
    assert code == 0 and err == ""
    data = json.loads(out)
    assert CONTRACT <= set(data)
    ck = ckptlab.open(sample("attention_net_ckpt.pt"))
    assert data["format"] == "torch-zip" and data["container"] == "net"
    assert data["tensors"] == [{"key": k, "shape": list(ck.info(k).shape), "dtype": ck.info(k).dtype_name,
                                "nbytes": ck.info(k).nbytes} for k in ck.keys()]
    assert data["tensors"][0] == {"key": "conv1.weight", "shape": [8, 3, 3, 3], "dtype": "float32", "nbytes": 864}
    assert data["total_params"] == sum(t.numel() for t in torch.load(
        sample("attention_net_ckpt.pt"), weights_only=True)["net"].values())
    assert {"key": "epoch", "type": "int"} in data["other"]
    assert data["candidates"][0]["path"] == "net"


def test_top_level_container_is_empty_string(capsys, sample):
    _, out, _ = _inspect(capsys, sample("convnet_rgb.safetensors"), "--json")
    data = json.loads(out)
    assert data["container"] == "" and data["format"] == "safetensors" and data["other"] == []


def test_container_option(capsys, sample):
    _, out, _ = _inspect(capsys, sample("attention_net_ckpt.pt"), "--container", "optimizer.state.0", "--json")
    data = json.loads(out)
    assert data["container"] == "optimizer.state.0"
    assert sorted(t["key"] for t in data["tensors"]) == ["exp_avg", "exp_avg_sq", "step"]


def test_errors_are_one_line_on_stderr(capsys, tmp_path, sample):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00" * 64)
    code, out, err = _inspect(capsys, str(bad), "--json")
    assert code == 1 and json.loads(out) == {"error": err.strip().removeprefix("ckptlab: error: "), "file": str(bad)}
    assert err.count("\n") == 1 and "bad.pt" in err and "not a checkpoint format" in err
    code, out, err = _inspect(capsys, sample("attention_net_ckpt.pt"), "--container", "nope")
    assert code == 1 and "candidates: 'net'" in err


def test_table_shows_keys_totals_container_and_placeholders(capsys, tmp_path):
    import argparse

    path = tmp_path / "ck.pt"
    torch.save({"state_dict": {"fc.weight": torch.ones(3, 2)}, "args": argparse.Namespace(lr=1)}, path)
    code, out, _ = _inspect(capsys, str(path))
    assert code == 0
    assert "fc.weight" in out and "(3, 2)" in out and "float32" in out
    assert "1 tensors: 6 floating-point + 0 integer elements" in out
    assert "'state_dict'" in out and "argparse.Namespace" in out


def test_the_installed_command_prints_one_json_object(sample):
    proc = subprocess.run([sys.executable, "-m", "ckptlab", "inspect", sample("convnet_rgb_lightning.ckpt"),
                           "--json"], capture_output=True, text=True, check=True, cwd=REPO)
    lines = proc.stdout.splitlines()
    assert len(lines) == 1
    assert json.loads(lines[0])["container"] == "state_dict"


def _long_keyed_checkpoint(path):
    state = {}
    for i in range(12):
        state[f"bert.encoder.layer.{i}.attention.self.query.weight"] = torch.zeros(4, 4)
        state[f"bert.encoder.layer.{i}.attention.output.LayerNorm.bias"] = torch.zeros(4)
    state["classifier[0].weight"] = torch.zeros(2, 4)  # brackets are text, not rich markup
    torch.save(state, path)


def test_piped_table_folds_layer_runs_and_never_breaks_a_key(capsys, tmp_path):
    _long_keyed_checkpoint(tmp_path / "bert.pt")
    code, out, err = _inspect(capsys, tmp_path / "bert.pt")      # captured: not a terminal, as piped
    assert code == 0, err
    lines = out.splitlines()
    query = [ln for ln in lines if "bert.encoder.layer.{0..11}.attention.self.query.weight" in ln]
    assert len(query) == 1 and "(4, 4)" in query[0] and "x12" in query[0] and "768 B" in query[0]
    assert any("classifier[0].weight" in ln for ln in lines)
    assert lines[-1] == "25 tensors: 248 floating-point + 0 integer elements, 992 B (25 keys folded into 3 lines; --no-fold lists every key)"
    code, out, err = _inspect(capsys, tmp_path / "bert.pt", "--no-fold")
    assert code == 0, err
    assert sum("bert.encoder.layer." in ln for ln in out.splitlines()) == 24
    assert out.splitlines()[-1] == "25 tensors: 248 floating-point + 0 integer elements, 992 B"
