"""``ckptlab stats``: one strict JSON object, a table with flags first and layer runs folded."""
from __future__ import annotations

import json

import torch
from safetensors.torch import save_file

import ckptlab
from ckptlab.cli import main


def _run(capsys, *argv) -> tuple[int, str, str]:
    code = main(["stats", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def _problem_file(tmp_path):
    t = {f"layers.{i}.attn.weight": torch.randn(8, 8) for i in range(12)}
    t["layers.5.attn.weight"][0, 0] = float("nan")
    t.update({f"layers.{i}.norm.weight": torch.ones(8) for i in range(12)})
    t["head.weight"] = torch.zeros(3, 8)
    path = tmp_path / "m.safetensors"
    save_file(t, path)
    return path, t


def test_json_is_one_strict_object_with_the_contract_fields(capsys, tmp_path):
    path, t = _problem_file(tmp_path)
    code, out, err = _run(capsys, path, "--json")
    assert code == 0 and err == ""
    data = json.loads(out, parse_constant=lambda name: (_ for _ in ()).throw(ValueError(name)))
    rows = {row["key"]: row for row in data["tensors"]}
    assert set(rows) == set(t)
    contract = {"key", "dtype", "shape", "min", "max", "mean", "std", "absmax", "zeros", "nan", "inf"}
    assert all(contract <= set(row) for row in rows.values())
    assert rows["layers.5.attn.weight"]["nan"] == 1 and rows["layers.5.attn.weight"]["flags"] == ["nan"]
    assert rows["head.weight"]["zeros"] == 24 and rows["head.weight"]["flags"] == ["all-zero"]
    assert rows["layers.0.attn.weight"] == ckptlab.stats(path)["layers.0.attn.weight"].to_dict()
    assert "std" in data["method"] and "finite" in data["method"]["non_finite"]


def test_table_puts_flags_first_and_folds_layer_runs(capsys, tmp_path):
    path, _ = _problem_file(tmp_path)
    code, out, _ = _run(capsys, path)
    assert code == 0
    lines = [line for line in out.splitlines() if "layers" in line or "head" in line]
    assert "nan" in lines[0] and "layers.5.attn.weight" in lines[0]
    assert "all-zero" in lines[1] and "head.weight" in lines[1]
    assert "constant" in lines[2] and "layers.{0..11}.norm.weight" in lines[2] and "x12" in lines[2]
    assert any("layers.{0..4,6..11}.attn.weight" in line and "x11" in line for line in lines)
    assert "25 tensors, 14 flagged" in out and "nan: holds NaN" in out
    code, out, _ = _run(capsys, path, "--no-fold")
    assert sum("norm.weight" in line for line in out.splitlines()) == 12


def test_match_and_dequantize(capsys, tmp_path):
    w = torch.randn(256, 128).clamp(-4, 4).to(torch.float8_e4m3fn)
    scale = torch.tensor([[0.5], [2.0]])
    save_file({"x.weight": w, "x.weight_scale_inv": scale, "y.bias": torch.ones(3)}, tmp_path / "q.safetensors")
    code, out, _ = _run(capsys, tmp_path / "q.safetensors", "--json", "--match", r"^x\.weight$", "--dequantize")
    row, = json.loads(out)["tensors"]
    want = torch.cat([w[:128].float() * 0.5, w[128:].float() * 2.0])
    assert row["key"] == "x.weight" and row["dequantized"] is True
    assert row["max"] == float(want.max()) and row["min"] == float(want.min())
    code, out, _ = _run(capsys, tmp_path / "q.safetensors")
    assert "float8_e4m3fn" in out and "(dequantised)" not in out


def test_errors_are_one_line(capsys, tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    code, out, err = _run(capsys, bad)
    assert code == 1 and out == "" and len(err.strip().splitlines()) == 1 and "bad.pt" in err
    code, out, err = _run(capsys, bad, "--match", "(")
    assert code == 1 and len(err.strip().splitlines()) == 1
