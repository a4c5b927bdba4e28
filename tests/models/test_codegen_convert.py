"""The exported script reproduces conversions and dtype casts bit for bit (run in its own
python, without ckptlab on the path)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import ckptlab
from ckptlab.io.model_target import model_target
from ckptlab.models.codegen import snippet
from tests.run_script import run_script
from tests.zoo.gpt_pair import TRANSPOSE_RECIPE, gpt2

ROOT = Path(__file__).resolve().parents[1]
from tests.paths import ROOT


def _fused_state(dtype=torch.float32):
    g = torch.Generator().manual_seed(3)
    src = {}
    for i in range(2):
        src[f"blocks.{i}.attn.qkv.weight"] = torch.randn(24, 8, generator=g).to(dtype)
        src[f"layers.{i}.attention.wq.weight"] = torch.randn(8, 8, generator=g).to(dtype)
        for e in (0, 1, 2, 10):
            src[f"layers.{i}.experts.{e}.w1"] = torch.randn(4, 8, generator=g).to(dtype)
        src[f"moe.{i}.w2"] = torch.randn(3, 2, 8, generator=g).to(dtype)
        src[f"blocks.{i}.norm.weight"] = torch.randn(8, generator=g).to(dtype)
    src["extra.w"] = torch.randn(8, 8, generator=g).to(dtype)
    return src


FUSED_RECIPE = {
    "rules": [{"replace": {"pattern": "^blocks", "with": "model.blocks"}}],
    "map": {"model.layers.0.self_attn.q_proj.weight": "extra.w"},   # the map wins over convert 2 for layer 0
    "convert": [
        {"from": "blocks.{i}.attn.qkv.weight", "to": ["model.{i}.q", "model.{i}.k", "model.{i}.v"], "ops": [{"chunk": 0}]},
        {"from": "layers.{i}.attention.wq.weight", "to": "model.layers.{i}.self_attn.q_proj.weight",
         "ops": [{"rope_permute": {"heads": 2}}]},
        {"from": "layers.{i}.experts.{e}.w1", "to": "model.layers.{i}.experts.w1", "ops": [{"stack": 0}]},
        {"from": "moe.{i}.w2", "to": "model.moe.{i}.w2.{e}", "ops": [{"unbind": 0}, "transpose"]},
    ],
    "dtype": {"to": "bfloat16", "keep": "norm"},
}


def _target_for(src: dict, recipe: dict) -> dict:
    """The target the recipe is written for (values zero; the merge never reads them)."""
    from ckptlab.recipe.groups import find_groups
    from ckptlab.recipe.model import Recipe

    r = Recipe.from_dict(recipe)
    found = find_groups(r.convert, {k: tuple(v.shape) for k, v in src.items()})
    out = {}
    for g in found.groups:
        for key, shape in zip(g.targets, g.target_shapes):
            out[key] = torch.zeros(shape, dtype=torch.float32)
    for key, (new, _) in r.rename([k for k in src if k not in found.claimed]).items():
        if new is not None and key not in r.map.values():
            out[new] = torch.zeros(src[key].shape, dtype=torch.float32)
    for t in r.map:
        out[t] = torch.zeros(src[r.map[t]].shape, dtype=torch.float32)
    out["brand.new"] = torch.ones(5)  # missing: keeps the target's value (cast by the recipe's dtype)
    return out


def _run(script: Path, *args: str) -> subprocess.CompletedProcess:
    """The script in this process (``tests.run_script``)."""
    code, out, err = run_script(script, *args)
    return subprocess.CompletedProcess([str(script), *args], code, out, err)


def _run_process(script: Path, *args: str) -> subprocess.CompletedProcess:
    """The script in a python of its own: its exit status and stderr as a shell sees them."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # the model code; ckptlab itself is not needed
    return subprocess.run([sys.executable, str(script), *args], cwd=script.parent, env=env,
                          capture_output=True, text=True, timeout=300)


def _same(got: dict, expected: dict) -> None:
    assert sorted(got) == sorted(expected)
    for key, value in expected.items():
        assert got[key].dtype == value.dtype and got[key].shape == value.shape, key
        assert torch.equal(got[key], value), key


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_script_reproduces_chunk_rope_stack_unbind_map_and_dtype(tmp_path, dtype):
    src = _fused_state(dtype)
    tgt = _target_for(src, FUSED_RECIPE)
    torch.save(src, tmp_path / "src.pt")
    torch.save(tgt, tmp_path / "tgt.pt")
    al = ckptlab.align(tmp_path / "src.pt", tmp_path / "tgt.pt", recipe=FUSED_RECIPE, auto="none")
    assert al.summary["converted"] == 2 * 3 + 1 + 2 + 2 * 3 and not al.summary["mismatch"]
    assert al.row("model.layers.0.self_attn.q_proj.weight").source == "extra.w"
    ckptlab.remap(tmp_path / "src.pt", tmp_path / "tgt.pt", tmp_path / "expected.pt", recipe=FUSED_RECIPE, auto="none")
    script = tmp_path / "remap_checkpoint.py"
    script.write_text(snippet(al, out=str(tmp_path / "got.pt")))
    proc = _run(script)
    assert proc.returncode == 0, proc.stderr
    got = torch.load(tmp_path / "got.pt", weights_only=True)
    expected = torch.load(tmp_path / "expected.pt", weights_only=True)
    _same(got, expected)
    assert got["model.layers.1.experts.w1"].shape == (4, 4, 8) and got["model.0.q"].dtype == torch.bfloat16
    assert got["model.blocks.0.norm.weight"].dtype == torch.float32  # kept by dtype.keep
    # the recipe alone (paths on the command line) gives the same file
    bare = tmp_path / "bare.py"
    bare.write_text(snippet(FUSED_RECIPE))
    proc = _run(bare, "--source", str(tmp_path / "src.pt"), "--target", str(tmp_path / "tgt.pt"),
                "--out", str(tmp_path / "bare.pt"))
    assert proc.returncode == 0, proc.stderr
    _same(torch.load(tmp_path / "bare.pt", weights_only=True), expected)


def test_script_reproduces_gpt2_to_nanogpt_with_a_model_target(tmp_path):
    torch.manual_seed(0)
    torch.save(gpt2().state_dict(), tmp_path / "gpt2.pt")
    target = model_target("tests.zoo.gpt_pair:nanogpt", {})
    al = ckptlab.align(tmp_path / "gpt2.pt", target, recipe=TRANSPOSE_RECIPE, auto="none")
    ckptlab.remap(tmp_path / "gpt2.pt", target, tmp_path / "expected.safetensors", recipe=TRANSPOSE_RECIPE, auto="none")
    script = tmp_path / "s.py"
    script.write_text(snippet(al, out=str(tmp_path / "got.safetensors")))
    proc = _run(script)
    assert proc.returncode == 0, proc.stderr
    from safetensors.torch import load_file

    _same(load_file(tmp_path / "got.safetensors"), load_file(tmp_path / "expected.safetensors"))
    assert "def run_ops" in script.read_text()
    assert "def run_ops" not in snippet(ckptlab.align(tmp_path / "gpt2.pt", tmp_path / "gpt2.pt"))


def test_script_casts_by_the_recipe_dtype_without_conversions(tmp_path):
    import runpy

    g = torch.Generator().manual_seed(5)
    src = {"layer.weight": torch.randn(3, 3, generator=g, dtype=torch.float64), "layer.norm.weight": torch.randn(3, generator=g),
           "steps": torch.tensor([3])}
    tgt = {**{k: torch.zeros_like(v, dtype=torch.float32 if v.is_floating_point() else v.dtype) for k, v in src.items()},
           "new.bias": torch.ones(2)}
    recipe = {"dtype": {"to": "float16", "keep": "norm"}}
    ckptlab.remap(src, tgt, tmp_path / "expected.pt", recipe=recipe, auto="none")
    script = tmp_path / "s.py"
    script.write_text(snippet(recipe))
    namespace = runpy.run_path(str(script))  # defines, does not run main()
    assert "def run_ops" not in script.read_text()
    _same(namespace["remap"](src, tgt), torch.load(tmp_path / "expected.pt", weights_only=True))


def test_script_refuses_to_unbind_a_stack_onto_other_expert_numbers(tmp_path):
    """Experts 0, 2, 5 stacked; the inverse's unbind names its slices 0, 1, 2: the script stops
    as ckptlab does (``align.unbind_clash``) instead of writing expert 5 as expert 2."""
    from ckptlab.recipe.model import Recipe

    src = {f"l.0.experts.{e}.w1": torch.full((2, 3), float(e)) for e in (0, 2, 5)}
    forward = {"convert": [{"from": "l.{i}.experts.{e}.w1", "to": "l.{i}.experts.w1", "ops": [{"stack": 0}]}]}
    torch.save(src, tmp_path / "orig.pt")
    torch.save({"l.0.experts.w1": torch.stack(list(src.values()))}, tmp_path / "stacked.pt")
    script = tmp_path / "back.py"
    script.write_text(snippet(Recipe.from_dict(forward).inverted()))
    proc = _run_process(script, "--source", str(tmp_path / "stacked.pt"), "--target", str(tmp_path / "orig.pt"),
                        "--out", str(tmp_path / "back.pt"))
    assert proc.returncode == 1
    assert proc.stderr.strip() == ("convert 1: unbind names its slices 'l.0.experts.{e}.w1' for {e} = 0..2, "
                                   "the target has {e} = 0, 2, 5 (a stacked tensor does not keep its indices)")
    assert not (tmp_path / "back.pt").exists()
