"""Conversions read from structure (``ckptlab/structure.py``) and the warnings for results
that look fine and are wrong (``ckptlab/alerts.py``): no silent wrong result."""
from __future__ import annotations

import torch
from safetensors.torch import save_file
from torch import nn

import ckptlab
from ckptlab.cli import main
from ckptlab.recipe.model import Recipe
from tests.zoo import gpt, hf, vit

TOL = 1e-4


def tokens() -> torch.Tensor:
    return torch.randint(0, 64, (2, 9), generator=torch.Generator().manual_seed(1))


def off_catalogue(sd: dict) -> dict:
    """GPT-2 keys under names no known conversion's fingerprint has (``blocks.N``)."""
    return {k.replace("transformer.h.", "blocks.").replace("transformer.", ""): v for k, v in sd.items()}


# -- a transposed family and its square sibling ----------------------------------------
def test_square_c_proj_is_never_silently_exact_under_auto_high(tmp_path, capsys):
    source, target = off_catalogue(hf.gpt2().state_dict()), off_catalogue(gpt.nanogpt().state_dict())
    al = ckptlab.align(source, target, auto="high")
    [medium] = [s for s in al.suggestions if "convert" in s.rule]
    assert medium.confidence == "medium" and not medium.applied
    assert al.row("blocks.0.attn.c_proj.weight").status == "exact"
    [square] = [w for w in al.warnings if "blocks.{0,1}.attn.c_proj.weight" in w]
    assert "siblings in the same blocks needed a transpose" in square
    save_file({k: v.contiguous() for k, v in source.items() if k != "lm_head.weight"}, tmp_path / "gpt2.safetensors")
    save_file({k: v.contiguous() for k, v in target.items() if k != "lm_head.weight"}, tmp_path / "nano.safetensors")
    assert main(["align", str(tmp_path / "gpt2.safetensors"), str(tmp_path / "nano.safetensors"), "--strict",
                 "--json"]) == 2
    assert "attn.c_proj.weight" in capsys.readouterr().err


def test_remap_reports_every_warning(tmp_path, capsys):
    source, target = off_catalogue(hf.gpt2().state_dict()), off_catalogue(gpt.nanogpt().state_dict())
    save_file({k: v.contiguous() for k, v in source.items() if k != "lm_head.weight"}, tmp_path / "gpt2.safetensors")
    save_file({k: v.contiguous() for k, v in target.items() if k != "lm_head.weight"}, tmp_path / "nano.safetensors")
    out = tmp_path / "out.safetensors"
    assert main(["remap", str(tmp_path / "gpt2.safetensors"), str(tmp_path / "nano.safetensors"), "-o", str(out),
                 "--on-mismatch", "keep-target", "--no-progress", "--report", str(tmp_path / "r.json")]) == 0
    err = capsys.readouterr().err
    assert "only partly fed" in err and "needed a transpose" in err
    import json

    report = json.loads((tmp_path / "r.json").read_text())
    assert len(report["warnings"]) >= 2 and report["warning"] == report["warnings"][0]


def test_transposed_family_with_its_square_member_applied_by_auto_all_gives_the_same_outputs():
    h = hf.gpt2()
    source = off_catalogue(h.state_dict())
    nano = gpt.nanogpt().eval()
    target = off_catalogue(nano.state_dict())
    al = ckptlab.align(source, target, auto="all")
    assert al.summary["converted"] == 8 and al.warnings == []
    assert al.row("blocks.1.attn.c_proj.weight").status == "converted"
    merged = {}
    from ckptlab.merge.planning import merged_tensor, plan

    p = plan(al)
    for key in target:
        merged[key] = merged_tensor(p, key)
    back = {k.replace("blocks.", "transformer.h.") if k.startswith("blocks.") else f"transformer.{k}"
            if not k.startswith("lm_head") else k: v for k, v in merged.items()}
    nano.load_state_dict(back)
    with torch.no_grad():
        assert (nano(tokens()) - h(tokens()).logits).abs().max() <= TOL


def test_resize_on_a_transposed_pair_warns():
    source, target = off_catalogue(hf.gpt2().state_dict()), off_catalogue(gpt.nanogpt().state_dict())
    recipe = {"adapt": {"blocks.0.mlp.c_fc.weight": {"op": "resize"}}}
    al = ckptlab.align(source, target, recipe=recipe, auto="none")
    assert al.row("blocks.0.mlp.c_fc.weight").status == "adapted"
    [w] = [w for w in al.warnings if w.startswith("adapter on")]
    assert "'blocks.0.mlp.c_fc.weight'" in w and "transposed" in w


# -- fused tensors beside their parts --------------------------------------------------------
class Fused(nn.Module):
    def __init__(self, d: int = 8, layers: int = 2):
        super().__init__()
        self.layers = nn.ModuleList(nn.ModuleDict({"qkv": nn.Linear(d, 3 * d), "out": nn.Linear(d, d)})
                                    for _ in range(layers))

    def forward(self, x):
        for layer in self.layers:
            q, k, v = layer["qkv"](x).chunk(3, dim=-1)
            x = layer["out"](torch.softmax(q @ k.transpose(-1, -2), -1) @ v)
        return x


class Split(nn.Module):
    def __init__(self, d: int = 8, layers: int = 2):
        super().__init__()
        self.layers = nn.ModuleList(nn.ModuleDict({"q": nn.Linear(d, d), "k": nn.Linear(d, d), "v": nn.Linear(d, d),
                                                   "out": nn.Linear(d, d)}) for _ in range(layers))

    def forward(self, x):
        for layer in self.layers:
            q, k, v = layer["q"](x), layer["k"](x), layer["v"](x)
            x = layer["out"](torch.softmax(q @ k.transpose(-1, -2), -1) @ v)
        return x


def test_fused_qkv_beside_q_k_v_is_a_medium_chunk_both_ways():
    torch.manual_seed(0)
    fused, split = Fused().eval(), Split().eval()
    al = ckptlab.align(fused, split, auto="all")
    [s] = [s for s in al.suggestions if "convert" in s.rule]
    assert s.confidence == "medium" and s.applied and "fused" in s.reason
    assert s.rule["convert"][0] == {"from": "layers.{i}.qkv.{j}", "to": ["layers.{i}.q.{j}", "layers.{i}.k.{j}",
                                                                       "layers.{i}.v.{j}"], "ops": [{"chunk": 0}]} \
        or s.rule["convert"][0]["ops"] == [{"chunk": 0}]
    assert al.summary["converted"] == 12
    [guess] = al.warnings  # right here (q, k, v in blocks), but shapes cannot know it: said, not silent
    assert guess.startswith("the fused 'layers.{0,1}.qkv.weight', 'layers.{0,1}.qkv.bias' was split or joined")
    from ckptlab.merge.planning import merged_tensor, plan

    p = plan(al)
    split.load_state_dict({k: merged_tensor(p, k) for k in split.state_dict()})
    x = torch.randn(2, 5, 8)
    with torch.no_grad():
        assert (split(x) - fused(x)).abs().max() <= TOL
    back = ckptlab.align(split, Fused(), auto="all")
    assert back.summary["converted"] == 4 and any(s.rule.get("convert", [{}])[0].get("ops") == [{"cat": 0}]
                                                 for s in back.suggestions)
    assert ckptlab.align(fused, split, auto="high").summary["converted"] == 0  # medium: not under high


def test_qkv_truncated_into_k_proj_warns_that_it_is_fused():
    fused, split = Fused(), Split()
    recipe = {"map": {"layers.0.k.weight": "layers.0.qkv.weight"}, "adapt": {"layers.0.k.weight": {"op": "truncate"}}}
    al = ckptlab.align(fused, split, recipe=recipe, auto="none")
    assert al.row("layers.0.k.weight").status == "adapted"
    [w] = [w for w in al.warnings if w.startswith("adapter on")]
    assert "looks fused" in w and "3 parts of 8 rows" in w and "'q'" in w


# -- conv 1x1 <-> linear --------------------------------------------------------------------------
def test_conv_1x1_and_linear_squeeze_and_unsqueeze():
    conv = {"proj.weight": torch.randn(6, 4, 1, 1), "proj.bias": torch.randn(6)}
    lin = {"proj.weight": torch.zeros(6, 4), "proj.bias": torch.zeros(6)}
    al = ckptlab.align(conv, lin, auto="all")
    assert al.row("proj.weight").status == "converted" and "squeeze" in al.row("proj.weight").reason
    from ckptlab.merge.planning import merged_tensor, plan

    assert torch.equal(merged_tensor(plan(al), "proj.weight"), conv["proj.weight"][:, :, 0, 0])
    back = ckptlab.align(lin, conv, auto="all")
    assert back.row("proj.weight").status == "converted" and "unsqueeze" in back.row("proj.weight").reason


# -- order alignment ------------------------------------------------------------------------------
def test_torchscript_beside_the_same_weights_under_other_names_is_an_order_guess(tmp_path):
    """(A .pt copy: it keeps the order; safetensors.save_file sorts its keys by name.)"""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4, 2)).eval()
    scripted = torch.jit.script(net)
    scripted.save(str(tmp_path / "net.ts.pt"))
    names = ["stem.conv.weight", "stem.conv.bias", "stem.bn.weight", "stem.bn.bias", "stem.bn.running_mean",
             "stem.bn.running_var", "stem.bn.num_batches_tracked", "fc.weight", "fc.bias"]
    renamed = dict(zip(names, (v.clone() for v in net.state_dict().values())))
    torch.save(renamed, tmp_path / "net.pt")
    al = ckptlab.align(str(tmp_path / "net.ts.pt"), str(tmp_path / "net.pt"), auto="all")
    [order] = [s for s in al.suggestions if "map" in s.rule]
    assert order.confidence == "low" and not order.applied and "same shapes in the same order" in order.reason
    assert not any("low" in r.reason for r in al.rows)  # a guess is never applied by an auto level
    assert ckptlab.align(str(tmp_path / "net.ts.pt"), str(tmp_path / "net.pt")).summary["missing"] == len(names)
    accepted = ckptlab.align(str(tmp_path / "net.ts.pt"), str(tmp_path / "net.pt"),
                             recipe=Recipe().merged(order.rule), auto="none")
    assert accepted.summary["renamed"] == len(names)
    from ckptlab.merge.planning import merged_tensor, plan

    p = plan(accepted)
    for key, value in renamed.items():
        assert torch.equal(merged_tensor(p, key), value)


# -- no low guess under any auto level -------------------------------------------------------------
def test_auto_all_does_not_zero_pad_a_pos_embed_or_truncate_a_head():
    small, large = vit.vit(img_size=8), vit.vit(img_size=12, num_classes=3)
    al = ckptlab.align(small, large, auto="all")
    assert al.row("pos_embed").status == "mismatch" and al.row("head.weight").status == "mismatch"
    assert {s.confidence for s in al.suggestions if "adapt" in s.rule} <= {"low"}


# -- partly fed modules ---------------------------------------------------------------------------
def test_hand_recipe_feeding_most_of_a_vit_still_warns_and_strict_fails(tmp_path):
    """timm -> HF ViT with renames only (no qkv split): 76% of keys fed, the attention
    blocks only partly: a warning, and --strict exits 2."""
    timm_model, h = vit.vit(eps=1e-12), hf.vit_classifier()
    rules = [{"replace": {"pattern": r"^blocks\.(\d+)\.norm1\.", "with": r"vit.layers.\1.layernorm_before."}},
             {"replace": {"pattern": r"^blocks\.(\d+)\.norm2\.", "with": r"vit.layers.\1.layernorm_after."}},
             {"replace": {"pattern": r"^blocks\.(\d+)\.attn\.proj\.", "with": r"vit.layers.\1.attention.o_proj."}},
             {"replace": {"pattern": r"^blocks\.(\d+)\.mlp\.", "with": r"vit.layers.\1.mlp."}}]
    al = ckptlab.align(timm_model, h, recipe={"rules": rules}, auto="none")
    assert al.warnings and any("vit.layers.{0,1}.attention" in w and "only partly fed" in w for w in al.warnings)
    save_file({k: v.contiguous() for k, v in timm_model.state_dict().items()}, tmp_path / "timm.safetensors")
    save_file({k: v.contiguous() for k, v in h.state_dict().items()}, tmp_path / "hf.safetensors")
    Recipe.from_dict({"rules": rules}).save(tmp_path / "r.yaml")
    assert main(["align", str(tmp_path / "timm.safetensors"), str(tmp_path / "hf.safetensors"), "--recipe",
                 str(tmp_path / "r.yaml"), "--auto", "none", "--strict", "--json"]) == 2


def test_a_whole_module_missing_is_not_partly_fed():
    source = {"enc.conv.weight": torch.ones(2, 2), "enc.conv.bias": torch.ones(2), "enc.norm.weight": torch.ones(2),
              "enc.norm.bias": torch.ones(2), "stem.weight": torch.ones(2, 2)}
    target = {**source, "head.weight": torch.ones(3, 2), "head.bias": torch.ones(3)}
    [whole] = ckptlab.align(source, target).warnings  # said, but as a module left at init, not partly fed
    assert whole.startswith("module 'head' left at its init (2 tensors nothing feeds)") and "partly" not in whole
    assert ckptlab.align(source, target, recipe={"keep_target": "^head\\."}).warnings == []
    target["enc.conv.scale"] = torch.ones(2)
    w, _ = ckptlab.align(source, target).warnings
    assert w.startswith("module 'enc.conv' only partly fed: scale (missing)")
