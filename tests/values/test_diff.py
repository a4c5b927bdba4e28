"""``ckptlab.diff``: equal by bytes, changed with figures numpy agrees with, through recipes."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import ckptlab
from ckptlab.io.checkpoint import Checkpoint
from ckptlab.values.diff import Sums, layer_cell, layer_grid, module_of


def _figures(a: torch.Tensor, b: torch.Tensor) -> tuple[float, float, float]:
    """max_abs, rel_l2, cosine in numpy float64 (the reference)."""
    x = a.detach().double().numpy().ravel()
    y = b.detach().double().numpy().ravel()
    d = x - y
    return (float(np.abs(d).max()), float(np.linalg.norm(d) / np.linalg.norm(y)),
            float(x @ y / (np.linalg.norm(x) * np.linalg.norm(y))))


@pytest.fixture
def no_float_work(monkeypatch):
    def refuse(self, a, b):
        raise AssertionError("float work on a pair whose bytes should have decided it")

    monkeypatch.setattr(Sums, "add", refuse)


def test_a_file_against_its_remapped_copy_is_all_equal_without_float_work(tmp_path, sample, no_float_work):
    source = sample("convnet_rgb.pt")
    ck = ckptlab.open(source)
    target = Checkpoint.from_mapping({"net." + k: torch.empty(ck.info(k).shape, dtype=ck.info(k).dtype, device="meta")
                                      for k in ck.keys()})
    recipe = {"rules": [{"add_prefix": "net."}]}
    for suffix in (".safetensors", ".pt"):
        out = tmp_path / f"remapped{suffix}"
        ckptlab.remap(source, target, out, recipe=recipe, auto="none")
        d = ckptlab.diff(source, out, recipe=recipe, auto="none")
        assert d.summary["pairs"] == len(ck) and d.summary["equal"] == len(ck) and d.summary["changed"] == 0
        assert {p.status for p in d.pairs} == {"renamed"} and d.unaligned == {"a": [], "b": []}
        assert all((p.max_abs, p.rel_l2, p.cosine) == (0.0, 0.0, 1.0) for p in d.pairs)


def test_one_changed_tensor_is_the_only_one_changed_with_numpy_figures(tmp_path):
    g = torch.Generator().manual_seed(0)
    a = {f"layers.{i}.{kind}.weight": torch.randn(64, 32, generator=g) for i in range(3) for kind in ("q", "k")}
    a["head.bias"] = torch.randn(10, generator=g).to(torch.bfloat16)
    b = dict(a)
    b["layers.1.k.weight"] = a["layers.1.k.weight"] * 1.01 + 0.003
    save_file(a, tmp_path / "a.safetensors")
    torch.save(b, tmp_path / "b.pt")
    d = ckptlab.diff(tmp_path / "a.safetensors", tmp_path / "b.pt")
    changed = d.changed
    assert [p.target for p in changed] == ["layers.1.k.weight"]
    assert d.summary["equal"] == len(a) - 1 and d.summary["changed"] == 1
    want = _figures(a["layers.1.k.weight"], b["layers.1.k.weight"])
    got = (changed[0].max_abs, changed[0].rel_l2, changed[0].cosine)
    assert np.allclose(got, want, rtol=1e-12, atol=0)
    assert d.summary["by_module"]["layers"] == {"pairs": 6, "equal": 5, "changed": 1, "max_rel_l2": changed[0].rel_l2}
    assert d.summary["by_module"]["head"]["equal"] == 1


def test_across_a_rename_recipe_with_keys_left_over_on_both_sides(tmp_path):
    g = torch.Generator().manual_seed(1)
    a = {"conv1.weight": torch.randn(8, 3, 3, 3, generator=g), "conv1.bias": torch.randn(8, generator=g),
         "fc.weight": torch.randn(5, 8, generator=g), "extra.only_in_a": torch.ones(2)}
    b = {"backbone_conv.weight": a["conv1.weight"].clone(), "backbone_conv.bias": a["conv1.bias"] + 1,
         "fc.weight": a["fc.weight"].clone(), "new_fc.weight": torch.zeros(20, 8)}
    torch.save(a, tmp_path / "a.pt")
    torch.save({"state_dict": b}, tmp_path / "b.pt")
    recipe = {"rules": [{"replace": {"pattern": "^conv1\\.", "with": "backbone_conv."}}]}
    d = ckptlab.diff(tmp_path / "a.pt", tmp_path / "b.pt", recipe=recipe, auto="none")
    by_target = {p.target: p for p in d.pairs}
    assert by_target["backbone_conv.weight"].equal and by_target["backbone_conv.weight"].status == "renamed"
    assert by_target["backbone_conv.weight"].source == "conv1.weight"
    assert by_target["fc.weight"].equal and by_target["fc.weight"].status == "exact"
    bias = by_target["backbone_conv.bias"]
    assert bias.equal is False and np.allclose((bias.max_abs, bias.rel_l2, bias.cosine),
                                               _figures(a["conv1.bias"], b["backbone_conv.bias"]), rtol=1e-12)
    assert d.unaligned == {"a": ["extra.only_in_a"], "b": ["new_fc.weight"]}
    out = json.loads(json.dumps(d.to_dict(), allow_nan=False))
    assert out["summary"]["a_only"] == 1 and out["summary"]["b_only"] == 1


def test_across_a_conversion_recipe_the_converted_value_is_compared(tmp_path):
    """GPT-2 Conv1D weights stored transposed: B = A with every c_attn weight transposed."""
    g = torch.Generator().manual_seed(2)
    a = {f"h.{i}.attn.c_attn.weight": torch.randn(16, 48, generator=g) for i in range(2)}
    a.update({f"h.{i}.ln_1.weight": torch.ones(16) + 0.01 * i for i in range(2)})
    b = {k: (v.t().contiguous() if "c_attn" in k else v.clone()) for k, v in a.items()}
    b["h.1.attn.c_attn.weight"][0, 0] += 0.5
    save_file(a, tmp_path / "a.safetensors")
    save_file(b, tmp_path / "b.safetensors")
    recipe = {"convert": [{"from": "h.{i}.attn.c_attn.weight", "to": "h.{i}.attn.c_attn.weight", "ops": ["transpose"]}]}
    d = ckptlab.diff(tmp_path / "a.safetensors", tmp_path / "b.safetensors", recipe=recipe, auto="none")
    by_target = {p.target: p for p in d.pairs}
    assert by_target["h.0.attn.c_attn.weight"].status == "converted" and by_target["h.0.attn.c_attn.weight"].equal
    changed = by_target["h.1.attn.c_attn.weight"]
    assert changed.status == "converted" and changed.equal is False
    assert np.allclose((changed.max_abs, changed.rel_l2, changed.cosine),
                       _figures(a["h.1.attn.c_attn.weight"].t(), b["h.1.attn.c_attn.weight"]), rtol=1e-12)
    assert by_target["h.1.ln_1.weight"].equal and by_target["h.1.ln_1.weight"].status == "exact"
    # without the conversion the transposed weights are shape mismatches, reported, not compared
    plain = ckptlab.diff(tmp_path / "a.safetensors", tmp_path / "b.safetensors", auto="none")
    assert plain.pair("h.0.attn.c_attn.weight").equal is None and plain.summary["not_compared"] == 2


def test_one_file_split_into_shards_equals_the_file(tmp_path, no_float_work):
    g = torch.Generator().manual_seed(3)
    state = {f"layers.{i}.w": torch.randn(100, 7, generator=g) for i in range(5)}
    save_file(state, tmp_path / "whole.safetensors")
    weight_map = {}
    for i, (k, v) in enumerate(state.items()):
        name = f"model-{i % 2 + 1:05d}-of-00002.safetensors"
        weight_map[k] = name
    for name in set(weight_map.values()):
        save_file({k: v for k, v in state.items() if weight_map[k] == name}, tmp_path / name)
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    d = ckptlab.diff(tmp_path / "model.safetensors.index.json", tmp_path / "whole.safetensors")
    assert d.summary["equal"] == 5 and not d.summary["identical_files"]


def test_a_dcp_folder_against_the_file_it_was_saved_from(tmp_path):
    import torch.distributed.checkpoint as dcp

    g = torch.Generator().manual_seed(8)
    state = {f"layers.{i}.w": torch.randn(20, 9, generator=g) for i in range(3)}
    save_file(state, tmp_path / "whole.safetensors")
    changed = {k: v.clone() for k, v in state.items()}
    changed["layers.1.w"][2, 3] = 7.0
    dcp.save({"model": changed}, checkpoint_id=str(tmp_path / "dcp"), no_dist=True)
    d = ckptlab.diff(tmp_path / "dcp", tmp_path / "whole.safetensors")
    assert [p.target for p in d.changed] == ["layers.1.w"] and d.summary["equal"] == 2
    assert d.changed[0].max_abs == pytest.approx(abs(7.0 - float(state["layers.1.w"][2, 3])), rel=1e-12)


def test_the_same_file_is_equal_without_reading_it(sample, monkeypatch):
    import sys

    module = sys.modules[ckptlab.diff.__module__]  # ckptlab.diff is the function; this is its module
    monkeypatch.setattr(module, "windows", lambda *a, **k: (_ for _ in ()).throw(AssertionError("read")))
    d = ckptlab.diff(sample("convnet_rgb.pt"), sample("convnet_rgb.pt"))
    assert d.summary["identical_files"] and d.summary["equal"] == d.summary["pairs"] == 16


def test_dtype_change_and_nan_are_reported(tmp_path):
    g = torch.Generator().manual_seed(4)
    a = {"w": torch.randn(50, 50, generator=g), "n": torch.randn(10, generator=g)}
    b = {"w": a["w"].to(torch.bfloat16), "n": a["n"].clone()}
    b["n"][3] = float("nan")
    save_file(a, tmp_path / "a.safetensors")
    save_file(b, tmp_path / "b.safetensors")
    d = ckptlab.diff(tmp_path / "a.safetensors", tmp_path / "b.safetensors")
    w = d.pair("w")
    assert w.equal is False and (w.a_dtype, w.b_dtype) == ("float32", "bfloat16")
    assert np.allclose((w.max_abs, w.rel_l2, w.cosine), _figures(a["w"], b["w"]), rtol=1e-12)
    n = d.pair("n")
    assert n.equal is False and (n.max_abs, n.rel_l2, n.cosine) == (None, None, None)
    assert json.loads(json.dumps(d.to_dict(), allow_nan=False))["pairs"][0]["target"] in ("w", "n")


def test_fp8_with_block_scales_is_compared_dequantised(tmp_path):
    g = torch.Generator().manual_seed(5)
    rows, cols = 256, 384
    w8 = (torch.randn(rows, cols, generator=g) * 50).clamp(-440, 440).to(torch.float8_e4m3fn)
    scale = torch.rand(2, 3, generator=g) * 0.02 + 1e-3
    full = (w8.float().view(2, 128, 3, 128) * scale[:, None, :, None]).view(rows, cols)
    save_file({"mlp.weight": w8, "mlp.weight_scale_inv": scale}, tmp_path / "fp8.safetensors")
    save_file({"mlp.weight": full.to(torch.bfloat16)}, tmp_path / "bf16.safetensors")
    d = ckptlab.diff(tmp_path / "fp8.safetensors", tmp_path / "bf16.safetensors")
    p = d.pair("mlp.weight")
    assert p.dequantized == "a" and d.summary["dequantized"] == 1
    want = _figures(full, full.to(torch.bfloat16))
    assert np.allclose((p.max_abs, p.rel_l2, p.cosine), want, rtol=1e-9)
    assert p.rel_l2 < 4e-3  # bf16 rounding only
    assert d.unaligned["a"] == ["mlp.weight_scale_inv"]
    raw = ckptlab.diff(tmp_path / "fp8.safetensors", tmp_path / "bf16.safetensors", dequantize=False).pair("mlp.weight")
    assert raw.dequantized is None and raw.rel_l2 > 10  # fp8 codes vs real values: far apart


def test_module_and_layer_cells():
    assert module_of("model.layers.3.self_attn.q_proj.weight") == "model.layers"
    assert module_of("backbone.conv1.weight") == "backbone.conv1"
    assert module_of("fc.weight") == "fc"
    assert layer_cell("layers.3.attn.q_proj.weight") == ("layers", 3, "attn.q_proj.weight")
    assert layer_cell("model.layers.12.mlp.up.weight") == ("model.layers", 12, "mlp.up.weight")
    assert layer_cell("embed.weight") is None


def test_layer_grid_puts_rel_l2_by_layer_and_kind(tmp_path):
    g = torch.Generator().manual_seed(6)
    a = {f"layers.{i}.{k}.weight": torch.randn(8, 8, generator=g) for i in range(3) for k in ("attn.q", "mlp.up")}
    a["embed.weight"] = torch.randn(4, 8, generator=g)
    b = {k: v.clone() for k, v in a.items()}
    b["layers.2.mlp.up.weight"] += 1.0
    d = ckptlab.diff(a, b)
    grid = layer_grid(d.pairs)
    assert grid["rows"] == ["0", "1", "2"] and grid["columns"] == ["attn.q.weight", "mlp.up.weight"]
    assert grid["z"][2][1] == d.pair("layers.2.mlp.up.weight").rel_l2 > 0
    assert grid["z"][0] == [0.0, 0.0] and grid["keys"][1][0] == "layers.1.attn.q.weight"


def test_same_bytes_is_bitwise():
    from ckptlab.values.diff import same_bytes

    x = torch.tensor([1.0, float("nan"), -0.0, 2.0])
    assert same_bytes(x, x.clone())  # NaN equals itself bit for bit
    assert not same_bytes(x, torch.tensor([1.0, float("nan"), 0.0, 2.0]))  # -0 is not +0
    raw = torch.arange(27, dtype=torch.uint8)
    assert same_bytes(raw[1:], raw.clone()[1:]) and not same_bytes(raw[1:], raw[:-1])  # odd sizes, offsets
