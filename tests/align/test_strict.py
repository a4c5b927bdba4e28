"""Strict readiness (``al.strict_ok`` / ``al.strict_problems``, ``ckptlab align --strict``) and the
warning for whole modules left at init: a job that "loaded" with random tensors inside is never
silent, and a job that keeps them on purpose says so in its recipe."""
from __future__ import annotations

import torch

import ckptlab


def t(*shape):
    return torch.zeros(shape)


def resnet_like(shortcut: str) -> dict:
    """Two blocks, the second with a projection shortcut named ``shortcut`` (torchvision says
    ``downsample``, other layouts ``shortcut`` or ``proj``): what renames by name alone miss."""
    return {"stem.weight": t(8, 3, 3, 3), "b1.conv.weight": t(8, 8, 3, 3), "b1.bn.weight": t(8),
            "b2.conv.weight": t(16, 8, 3, 3), "b2.bn.weight": t(16),
            f"b2.{shortcut}.0.weight": t(16, 8, 1, 1), f"b2.{shortcut}.1.weight": t(16),
            "fc.weight": t(10, 16), "fc.bias": t(10)}


def test_a_module_nothing_feeds_is_named_with_its_pairing_and_strict_refuses_it():
    al = ckptlab.align(resnet_like("downsample"), resnet_like("shortcut"), auto="high")
    assert al.summary["missing"] == 2 and al.summary["unused"] == 2
    [warning] = al.warnings
    assert "module 'b2.shortcut.{0..1}' left at" in warning or "'b2.shortcut.0'" in warning
    assert "source modules used by nothing" in warning and "b2.downsample" in warning
    assert "'b2.downsample.0' -> 'b2.shortcut.0'" in warning and "'b2.downsample.1' -> 'b2.shortcut.1'" in warning
    assert not al.strict_ok
    kinds = [p.split(":")[0] for p in al.strict_problems]
    assert kinds == ["2 target keys not fed", "2 source keys used by nothing", "warning"]


def test_the_pairing_the_warning_proposes_makes_the_job_strict_clean():
    recipe = {"rules": [{"replace": {"pattern": r"\.downsample\.", "with": ".shortcut."}}]}
    al = ckptlab.align(resnet_like("downsample"), resnet_like("shortcut"), recipe=recipe)
    assert al.warnings == [] and al.strict_problems == [] and al.strict_ok


def test_on_purpose_means_keep_target_reinit_or_drop():
    source = {"body.weight": t(4, 4), "old_head.weight": t(3, 4)}
    target = {"body.weight": t(4, 4), "head.weight": t(5, 4), "head.bias": t(5)}
    assert not ckptlab.align(source, target).strict_ok
    on_purpose = {"keep_target": r"^head\.", "rules": [{"drop": r"^old_head\."}]}
    al = ckptlab.align(source, target, recipe=on_purpose)
    assert al.strict_ok and al.row("head.bias").reason.startswith("kept on purpose")
    reinit = {"map": {"head.weight": "old_head.weight"}, "adapt": {"head.weight": {"op": "reinit"}},
              "keep_target": r"^head\.bias$"}
    assert ckptlab.align(source, target, recipe=reinit).strict_ok


def test_a_conflict_or_a_mismatch_is_never_strict():
    source = {"a.weight": t(2), "b.weight": t(3)}
    target = {"a.weight": t(2), "c.weight": t(4)}
    al = ckptlab.align(source, target, recipe={"map": {"c.weight": "b.weight"}}, auto="none")
    assert al.summary["mismatch"] == 1
    assert any(p.startswith("1 shape mismatch:") for p in al.strict_problems)


def test_keep_target_survives_yaml_and_the_inverse_drops_what_was_kept():
    recipe = ckptlab.Recipe.from_text("rules:\n- add_prefix: net.\nkeep_target: ^head\\.\n")
    assert ckptlab.Recipe.from_text(recipe.to_yaml()) == recipe
    assert recipe.inverted().to_dict() == {"rules": [{"drop": "^head\\."}, {"strip_prefix": "net."}]}


def test_a_fused_tensor_split_by_structure_is_a_guess_said_aloud_and_never_strict():
    """GPT-NeoX's query_key_value is per-head interleaved, HF CLIP declares k, v, q: shapes alone
    cannot tell the order inside a fused tensor, so the split auto=all applies stands as a warning."""
    source = {"attn.qkv.weight": t(12, 4), "attn.out.weight": t(4, 4)}
    target = {"attn.q.weight": t(4, 4), "attn.k.weight": t(4, 4), "attn.v.weight": t(4, 4), "attn.out.weight": t(4, 4)}
    al = ckptlab.align(source, target, auto="all")
    assert al.summary["converted"] == 3
    [caveat] = [w for w in al.warnings if "split or joined by structure alone" in w]
    assert "q, k, v in that order" in caveat and "per-head interleaved" in caveat
    assert not al.strict_ok
    assert ckptlab.align(source, target, auto="high").summary["converted"] == 0  # medium: not applied at high
    settled = ckptlab.align(source, target, auto="none", recipe={"convert": [
        {"from": "attn.qkv.weight", "to": ["attn.q.weight", "attn.k.weight", "attn.v.weight"], "ops": [{"chunk": 0}]}]})
    assert settled.warnings == [] and settled.strict_ok  # a recipe that says the order settles it


def test_a_bias_renamed_beside_its_rotary_permuted_weight_is_flagged():
    source = {"q.weight": t(8, 8), "q.bias": t(8)}
    target = {"q.weight": t(8, 8), "q.bias": t(8)}
    half = {"convert": [{"from": "q.weight", "to": "q.weight", "ops": [{"rope_permute": {"heads": 2}}]}]}
    [warning] = ckptlab.align(source, target, recipe=half).warnings
    assert warning.startswith("'q.bias' fed without the rope_permute their weights got")
    both = {"convert": [{"from": "q.{w}", "to": "q.{w}", "ops": [{"rope_permute": {"heads": 2}}]}]}
    assert ckptlab.align(source, target, recipe=both).warnings == []


class _Conv1D(torch.nn.Module):
    """transformers' Conv1D, as GPT-2 stores it: y = x @ W + b with W of (in, out)."""

    def __init__(self, nx: int, nf: int):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(nx, nf))
        self.bias = torch.nn.Parameter(torch.randn(nf))

    def forward(self, x):
        return x @ self.weight + self.bias


Conv1D = type("Conv1D", (_Conv1D,), {})  # the class name is what tells the layout


def test_square_weights_whose_model_classes_disagree_are_flagged_and_a_transpose_settles_it():
    """Every weight square: shapes cannot tell, the classes can (Conv1D (in, out) vs nn.Linear)."""
    torch.manual_seed(0)
    source = torch.nn.Sequential(Conv1D(4, 4), torch.nn.Tanh(), Conv1D(4, 4))
    target = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Tanh(), torch.nn.Linear(4, 4))
    al = ckptlab.align(source, target)
    assert al.summary["exact"] == 4
    [warning] = al.warnings
    assert "'{0,2}.weight' fed as stored" in warning and "(in, out)" in warning and not al.strict_ok
    recipe = {"convert": [{"from": "{i}.weight", "to": "{i}.weight", "ops": ["transpose"]}]}
    fixed = ckptlab.align(source, target, recipe=recipe)
    assert fixed.warnings == [] and fixed.strict_ok
    ckptlab.load_into(target, source, recipe=recipe)
    x = torch.randn(3, 4)
    with torch.no_grad():
        assert torch.allclose(source(x), target(x), atol=1e-6)
