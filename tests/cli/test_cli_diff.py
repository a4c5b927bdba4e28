"""``ckptlab diff``: one strict JSON object (the contract), a table with changed pairs first."""
from __future__ import annotations

import json

import torch
from safetensors.torch import save_file

from ckptlab.cli import main


def _run(capsys, *argv) -> tuple[int, str, str]:
    code = main(["diff", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def _pair(tmp_path):
    g = torch.Generator().manual_seed(0)
    a = {f"layers.{i}.mlp.weight": torch.randn(16, 16, generator=g) for i in range(12)}
    a["lm_head.weight"] = torch.randn(30, 16, generator=g)
    b = {"model." + k: v.clone() for k, v in a.items()}
    b["model.layers.7.mlp.weight"] += 0.25
    save_file(a, tmp_path / "a.safetensors")
    save_file(b, tmp_path / "b.safetensors")
    return tmp_path / "a.safetensors", tmp_path / "b.safetensors"


def test_json_is_one_strict_object_with_the_contract_fields(capsys, tmp_path):
    a, b = _pair(tmp_path)
    recipe = tmp_path / "r.yaml"
    recipe.write_text("rules:\n  - add_prefix: 'model.'\n")
    code, out, err = _run(capsys, a, b, "--recipe", recipe, "--auto", "none", "--json")
    assert code == 0 and err == ""
    data = json.loads(out, parse_constant=lambda name: (_ for _ in ()).throw(ValueError(name)))
    assert {"pairs", "summary"} <= set(data)
    contract = {"target", "source", "status", "equal", "max_abs", "rel_l2", "cosine"}
    assert all(contract <= set(p) for p in data["pairs"])
    changed = [p for p in data["pairs"] if not p["equal"]]
    assert [p["target"] for p in changed] == ["model.layers.7.mlp.weight"]
    assert changed[0]["source"] == "layers.7.mlp.weight" and changed[0]["status"] == "renamed"
    assert abs(changed[0]["max_abs"] - 0.25) < 1e-6
    assert data["summary"]["equal"] == 12 and data["summary"]["changed"] == 1
    assert data["unaligned"] == {"a": [], "b": []}


def test_table_lists_changed_pairs_first_and_folds_equal_runs(capsys, tmp_path):
    a, b = _pair(tmp_path)
    code, out, _ = _run(capsys, a, b)
    assert code == 0
    rows = [line for line in out.splitlines() if "model." in line]
    assert "changed" in rows[0] and "model.layers.7.mlp.weight" in rows[0]
    assert any("model.layers.{0..6,8..11}.mlp.weight" in line and "x11" in line and "equal" in line for line in rows)
    assert "13 pairs: 12 equal, 1 changed" in out
    assert "changed by module: model.layers 1/12" in out


def test_unaligned_keys_are_listed_and_errors_are_one_line(capsys, tmp_path):
    save_file({"x.weight": torch.ones(3), "only_a": torch.ones(1)}, tmp_path / "a.safetensors")
    save_file({"x.weight": torch.ones(3), "only_b": torch.ones(1)}, tmp_path / "b.safetensors")
    code, out, _ = _run(capsys, tmp_path / "a.safetensors", tmp_path / "b.safetensors")
    assert "A keys feeding nothing (1): only_a" in out and "B keys nothing feeds (1): only_b" in out
    (tmp_path / "bad.pt").write_bytes(b"garbage")
    code, out, err = _run(capsys, tmp_path / "bad.pt", tmp_path / "b.safetensors")
    assert code == 1 and out == "" and len(err.strip().splitlines()) == 1 and "bad.pt" in err
