"""The catalogue grown from the field's registries (transformers' conversion mapping,
llama.cpp's tensor map): each entry in both directions between a real ``transformers``
5.24 model (tiny config, random init, no hub) and the other layout (another real
``transformers`` class, the legacy layout ``save_pretrained`` still writes, or a faithful
re-implementation in ``tests/models``). Each test saves the source's state_dict to a file,
remaps it with ``auto="high"`` and no recipe (the entry is found by its fingerprint), loads
the result into the other side and compares outputs on seeded inputs; the reverse entry
gives every original tensor back bit for bit."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import transformers as tf
from safetensors.torch import load_file, save_file

import ckptlab
from ckptlab.recipe.known import get

TOL = 1e-5


def tokens(vocab: int = 64) -> torch.Tensor:
    return torch.randint(0, vocab, (2, 9), generator=torch.Generator().manual_seed(1))


def images(size: int = 8) -> torch.Tensor:
    return torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(2))


def build(cls, config, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return cls(config).eval()


def reseeded(model: torch.nn.Module, seed: int = 123) -> torch.nn.Module:
    """Other random values everywhere (norms around 1): a key the remap misses shows in the outputs."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1 + (1.0 if p.dim() == 1 else 0.0))
    return model.eval()


def save(sd: dict[str, torch.Tensor], path: Path, wrapper: str = "") -> str:
    """A state_dict as a file, as a user has one (tied tensors stored twice, keys wrapped)."""
    save_file({wrapper + k: v.detach().clone().contiguous() for k, v in sd.items()}, path)
    return str(path)


def converted(source, target, tmp_path: Path, name: str, expect: str, missing: int = 0,
              **kw) -> dict[str, torch.Tensor]:
    """Remap ``source`` into ``target``'s layout with no recipe: the catalogue entry ``expect``
    is suggested high and applied, nothing else is left unfed, no warning."""
    al = ckptlab.align(source, target, auto="high", **kw)
    known = [s for s in al.suggestions if f"known conversion {expect!r}" in s.reason]
    assert known and all(s.confidence == "high" and s.applied for s in known), [s.reason for s in al.suggestions]
    assert al.warnings == []
    assert (al.summary["missing"], al.summary["mismatch"], al.summary["conflict"]) == (missing, 0, 0), al.summary
    out = tmp_path / f"{name}.safetensors"
    rep = ckptlab.remap(source, target, out, auto="high", **kw)
    assert rep.warning is None
    return load_file(out)


def load(model: torch.nn.Module, sd: dict[str, torch.Tensor], allow: tuple[str, ...] = ()) -> torch.nn.Module:
    missing, unexpected = model.load_state_dict(sd, strict=False)
    assert not unexpected and set(missing) <= set(allow), (missing, unexpected)
    return model.eval()


def assert_same_tensors(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor]) -> None:
    assert set(got) == set(want), set(got) ^ set(want)
    for key, value in want.items():
        assert got[key].dtype == value.dtype and torch.equal(got[key], value), key


def close(a: torch.Tensor, b: torch.Tensor) -> None:
    assert (a - b).abs().max() <= TOL, (a - b).abs().max()


# -- MoE experts: per-expert lists (hub files) <-> transformers 5 fused experts -------------
MIXTRAL = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
               intermediate_size=24, vocab_size=64, num_local_experts=4, num_experts_per_tok=2)
QWEN2_MOE = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                 intermediate_size=24, moe_intermediate_size=12, shared_expert_intermediate_size=20,
                 vocab_size=64, num_experts=4, num_experts_per_tok=2)
MOE = {
    "mixtral": (tf.MixtralForCausalLM, tf.MixtralConfig(**MIXTRAL), "mixtral-experts-to-fused", "mixtral-fused-to-experts",
                "model.layers.1.block_sparse_moe.experts.3.w3.weight"),
    "qwen2_moe": (tf.Qwen2MoeForCausalLM, tf.Qwen2MoeConfig(**QWEN2_MOE), "moe-experts-to-fused", "moe-fused-to-experts",
                  "model.layers.1.mlp.experts.3.up_proj.weight"),
    "qwen3_moe": (tf.Qwen3MoeForCausalLM, tf.Qwen3MoeConfig(**{**QWEN2_MOE, "head_dim": 8}), "moe-experts-to-fused",
                  "moe-fused-to-experts", "model.layers.1.mlp.experts.3.up_proj.weight"),
    "olmoe": (tf.OlmoeForCausalLM, tf.OlmoeConfig(**{k: v for k, v in QWEN2_MOE.items() if "shared" not in k
                                                      and k != "moe_intermediate_size"}),
              "moe-experts-to-fused", "moe-fused-to-experts", "model.layers.1.mlp.experts.3.up_proj.weight"),
}


def hub_file(model: torch.nn.Module, folder: Path) -> dict[str, torch.Tensor]:
    """What ``save_pretrained`` writes: transformers 5 reverts its load-time conversions."""
    model.save_pretrained(folder)
    return load_file(folder / "model.safetensors")


@pytest.mark.parametrize("arch,wrapper", [("mixtral", ""), ("mixtral", "module."), ("qwen2_moe", ""),
                                          ("qwen3_moe", ""), ("olmoe", "")])
def test_moe_per_expert_file_to_fused_experts_and_back(tmp_path, arch, wrapper):
    cls, config, forward, backward, legacy_key = MOE[arch]
    original = build(cls, config)
    file_sd = hub_file(original, tmp_path / "hub")
    assert legacy_key in file_sd  # the per-expert layout, as on the hub
    source = save(file_sd, tmp_path / "experts.safetensors", wrapper)
    sd = converted(source, reseeded(build(cls, config, 1)), tmp_path, "fused", forward)
    assert sd["model.layers.0.mlp.experts.gate_up_proj"].shape[0] == 4
    model = load(build(cls, config, 1), sd)
    with torch.no_grad():
        close(model(tokens()).logits, original(tokens()).logits)
    # back: the fused file into the per-expert layout (another model's hub file as the target)
    other = hub_file(build(cls, config, 2), tmp_path / "other")
    back = converted(str(tmp_path / "fused.safetensors"), other, tmp_path, "back", backward)
    assert_same_tensors(back, file_sd)
    assert cls.from_pretrained(tmp_path / "hub").state_dict().keys() == model.state_dict().keys()


def test_mixtral_fused_experts_ops_are_each_others_inverse():
    """The two hand-written entries undo each other, and ckptlab's own inverse agrees."""
    shapes = {f"model.layers.0.block_sparse_moe.experts.{e}.{w}.weight": (4, 6) if w == "w2" else (6, 4)
              for e in range(3) for w in ("w1", "w2", "w3")}
    forward = get("mixtral-experts-to-fused").recipe()
    derived = forward.inverted(shapes=shapes).to_dict()["convert"][0]
    written = get("mixtral-fused-to-experts").recipe().to_dict()["convert"][0]
    assert derived["from"] == written["from"] and derived["to"] == written["to"]
    assert derived["ops"] == written["ops"]


# -- the two things the ops could not say before --------------------------------------------
def test_split_by_ratio_and_its_inverse():
    """``split: {dim, ratio}`` cuts a fused GQA qkv as heads:kv:kv without the head size."""
    from ckptlab.recipe.conversion import Conversion
    from ckptlab.recipe.ops import ConvertError, parse_op, run

    op = parse_op({"split": {"dim": 0, "ratio": [4, 2, 2]}})
    assert op.shapes([(64, 32)]) == [(32, 32), (16, 32), (16, 32)]
    fused = torch.randn(64, 32, generator=torch.Generator().manual_seed(0))
    q, k, v = run([op], [fused])
    assert torch.equal(q, fused[:32]) and torch.equal(k, fused[32:48]) and torch.equal(v, fused[48:])
    conv = Conversion.from_dict({"from": "qkv", "to": ["q", "k", "v"], "ops": [op.to_value()]})
    back = conv.inverted([(64, 32)])
    assert [o.to_value() for o in back.ops] == [{"cat": 0}]
    assert torch.equal(run(back.ops, [q, k, v])[0], fused)
    with pytest.raises(ConvertError, match="ratio 4:2:2"):
        op.shapes([(60, 32)])


def _experts(n: dict[str, int]) -> dict[str, tuple[int, ...]]:
    return {f"l.0.experts.{e}.{w}": (6, 4) for w, count in n.items() for e in range(count)}


def test_a_stack_over_several_patterns_feeds_them_pattern_by_pattern_and_unbinds_back():
    from ckptlab.recipe.conversion import Conversion
    from ckptlab.recipe.groups import find_groups

    fuse = Conversion.from_dict({"from": ["l.{i}.experts.{e}.w1", "l.{i}.experts.{e}.w3"], "to": "l.{i}.gate_up",
                                 "ops": [{"stack": 0}, {"chunk": {"dim": 0, "parts": 2}}, {"cat": 1}]})
    (group,) = find_groups([fuse], _experts({"w1": 3, "w3": 3})).groups
    assert group.sources == tuple(f"l.0.experts.{e}.w1" for e in range(3)) + tuple(f"l.0.experts.{e}.w3" for e in range(3))
    assert group.target_shapes == ((3, 12, 4),) and group.stacked_values() == ("0", "1", "2")
    # w3 of one expert fewer: no group (the rules, then align, see the keys left over)
    assert find_groups([fuse], _experts({"w1": 3, "w3": 2}), strict=False).groups == []
    split = fuse.inverted([(6, 4)] * 6)
    (back,) = find_groups([split], {"l.0.gate_up": (3, 12, 4)}).groups
    assert back.targets == group.sources and back.target_shapes == ((6, 4),) * 6
    tensors = [torch.full((6, 4), float(i)) for i in range(6)]
    assert all(torch.equal(a, b) for a, b in zip(back.run(group.run(tensors)), tensors))


def test_generated_scripts_replay_the_new_forms(tmp_path):
    """``ckptlab codegen`` scripts run the multi-pattern stack/unbind and the ratio split as ckptlab does."""
    import runpy

    from ckptlab.models.codegen import snippet

    g = torch.Generator().manual_seed(4)
    src = {f"model.layers.0.block_sparse_moe.experts.{e}.{w}.weight": torch.randn((8, 6) if w == "w2" else (6, 8),
                                                                                   generator=g)
           for e in range(3) for w in ("w1", "w2", "w3")}
    src["model.layers.0.block_sparse_moe.gate.weight"] = torch.randn(3, 8, generator=g)
    recipe = get("mixtral-experts-to-fused").recipe()
    tgt = {"model.layers.0.mlp.experts.gate_up_proj": torch.zeros(3, 12, 8),
           "model.layers.0.mlp.experts.down_proj": torch.zeros(3, 8, 6), "model.layers.0.mlp.gate.weight": torch.zeros(3, 8)}
    ckptlab.remap(src, tgt, tmp_path / "fused.pt", recipe=recipe, auto="none")
    expected = torch.load(tmp_path / "fused.pt", weights_only=True)
    (tmp_path / "f.py").write_text(snippet(recipe))
    got = runpy.run_path(str(tmp_path / "f.py"))["remap"](src, tgt)
    assert_same_tensors(got, expected)
    (tmp_path / "b.py").write_text(snippet(get("mixtral-fused-to-experts").recipe()))
    assert_same_tensors(runpy.run_path(str(tmp_path / "b.py"))["remap"](expected, src), src)
    ratio = {"convert": [{"from": "qkv", "to": ["q", "k", "v"], "ops": [{"split": {"dim": 0, "ratio": [4, 2, 2]}}]}]}
    (tmp_path / "r.py").write_text(snippet(ratio))
    fused = {"qkv": torch.randn(16, 3, generator=g)}
    got = runpy.run_path(str(tmp_path / "r.py"))["remap"](fused)
    assert torch.equal(got["q"], fused["qkv"][:8]) and torch.equal(got["v"], fused["qkv"][12:])


# -- Phi-3 (fused qkv_proj, gate_up_proj) <-> the LLaMA layout -------------------------------
DECODER = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
               intermediate_size=48, vocab_size=64, max_position_embeddings=32, rms_norm_eps=1e-5,
               bos_token_id=0, eos_token_id=0, pad_token_id=0)


@pytest.mark.parametrize("kv_heads,wrapper,tied", [(2, "", False), (4, "module.", False), (2, "", True)])
def test_phi3_to_llama_and_back(tmp_path, kv_heads, wrapper, tied):
    cfg = {**DECODER, "num_key_value_heads": kv_heads, "tie_word_embeddings": tied}
    phi = build(tf.Phi3ForCausalLM, tf.Phi3Config(**cfg))
    llama_cfg = tf.LlamaConfig(**cfg)
    sd = phi.state_dict()
    if tied:  # save_pretrained keeps one of a tied pair: the embedding
        sd = {k: v for k, v in sd.items() if k != "lm_head.weight"}
    source = save(sd, tmp_path / "phi3.safetensors", wrapper)
    out = converted(source, reseeded(build(tf.LlamaForCausalLM, llama_cfg, 1)), tmp_path, "llama", "phi3-to-llama")
    llama = load(build(tf.LlamaForCausalLM, llama_cfg, 1), out, allow=("lm_head.weight",) if tied else ())
    with torch.no_grad():
        close(llama(tokens()).logits, phi(tokens()).logits)
    back = converted(str(tmp_path / "llama.safetensors"), reseeded(build(tf.Phi3ForCausalLM, tf.Phi3Config(**cfg), 2)),
                     tmp_path, "back", "llama-to-phi3")
    if tied:
        back.pop("lm_head.weight", None)
    assert_same_tensors(back, {k.removeprefix(wrapper): v for k, v in load_file(source).items()})


# -- Qwen2 (q/k/v biases) <-> Meta layout; Mistral through the LLaMA entries ----------------
def _meta_args(cfg: dict) -> dict:
    return dict(dim=cfg["hidden_size"], n_layers=cfg["num_hidden_layers"], n_heads=cfg["num_attention_heads"],
                n_kv_heads=cfg["num_key_value_heads"], vocab_size=cfg["vocab_size"], hidden_dim=cfg["intermediate_size"],
                norm_eps=cfg["rms_norm_eps"])


@pytest.mark.parametrize("drop", [None, "lm_head.weight", "model.embed_tokens.weight"])
def test_qwen2_to_meta_layout_with_biases_and_back(tmp_path, drop):
    """The q/k biases are rotary-permuted like their weights; a file holding the tied
    embedding under one name only is still recognised."""
    from tests.zoo import meta_bias

    hf = reseeded(build(tf.Qwen2ForCausalLM, tf.Qwen2Config(**DECODER)), seed=7)  # transformers inits biases to 0
    sd = {k: v for k, v in hf.state_dict().items() if k != drop}
    source = save(sd, tmp_path / "qwen2.safetensors")
    target = reseeded(meta_bias.qwen2(**_meta_args(DECODER)))
    want_missing = ["output.weight"] if drop == "lm_head.weight" else ["tok_embeddings.weight"] if drop else []
    al = ckptlab.align(source, target, auto="high")  # heads from the target model's params
    assert any("'hf-qwen2-to-meta-qwen2'" in s.reason and s.applied for s in al.suggestions)
    assert sorted(r.target for r in al.rows if r.status == "missing") == want_missing
    if drop:
        return  # feeding a dropped tie partner is the aligner's business, not the catalogue's
    out = converted(source, target, tmp_path, "meta", "hf-qwen2-to-meta-qwen2")
    meta = load(meta_bias.qwen2(**_meta_args(DECODER)), out)
    with torch.no_grad():
        close(meta(tokens()), hf(tokens()).logits)
    back = converted(str(tmp_path / "meta.safetensors"), reseeded(build(tf.Qwen2ForCausalLM, tf.Qwen2Config(**DECODER), 3)),
                     tmp_path, "back", "meta-qwen2-to-hf-qwen2")  # heads from the target's config
    assert_same_tensors(back, hf.state_dict())


def test_mistral_and_meta_layout_through_the_llama_entries(tmp_path):
    """Mistral's reference checkpoints (mistral-inference) use Meta's names and interleaved
    rotary: transformers' MistralForCausalLM is the LLaMA layout, so the LLaMA entries serve."""
    from tests.zoo import llama as meta_llama

    cfg = {**DECODER, "head_dim": 8, "sliding_window": 16}
    hf = build(tf.MistralForCausalLM, tf.MistralConfig(**cfg))
    source = save(hf.state_dict(), tmp_path / "mistral.safetensors")
    out = converted(source, reseeded(meta_llama.llama(**_meta_args(cfg))), tmp_path, "meta", "hf-llama-to-meta-llama")
    meta = load(meta_llama.llama(**_meta_args(cfg)), out)
    with torch.no_grad():
        close(meta(tokens()), hf(tokens()).logits)
    back = converted(str(tmp_path / "meta.safetensors"), reseeded(build(tf.MistralForCausalLM, tf.MistralConfig(**cfg), 3)),
                     tmp_path, "back", "meta-llama-to-hf-llama")
    assert_same_tensors(back, hf.state_dict())


# -- GPT-NeoX: per-head interleaved query_key_value <-> split q/k/v; embed_out <-> lm_head ---
NEOX = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, vocab_size=64,
            max_position_embeddings=32, bos_token_id=0, eos_token_id=0)


def neox_hf(seed: int = 0, **overrides) -> torch.nn.Module:
    return reseeded(build(tf.GPTNeoXForCausalLM, tf.GPTNeoXConfig(**{**NEOX, **overrides})), seed)  # biases != 0


@pytest.mark.parametrize("as_saved,parallel", [(False, True), (True, True), (False, False)])
def test_gpt_neox_interleaved_qkv_to_split_and_back(tmp_path, as_saved, parallel):
    from tests.zoo import neox

    hf = neox_hf(7, use_parallel_residual=parallel)
    if as_saved:  # the hub layout: the head is embed_out
        file_sd = hub_file(hf, tmp_path / "hub")
        assert "embed_out.weight" in file_sd and "lm_head.weight" not in file_sd
    else:
        file_sd = hf.state_dict()
    source = save(file_sd, tmp_path / "neox.safetensors")
    split_args = dict(use_parallel_residual=parallel)
    out = converted(source, reseeded(neox.neox(**split_args)), tmp_path, "split", "gpt-neox-to-split-qkv")
    model = load(neox.neox(**split_args), out)
    with torch.no_grad():
        close(model(tokens()), hf(tokens()).logits)
    # back into a model, or into the hub file (heads and hidden from the config.json beside it)
    target = str(tmp_path / "hub" / "model.safetensors") if as_saved else neox_hf(3, use_parallel_residual=parallel)
    back = converted(str(tmp_path / "split.safetensors"), target, tmp_path, "back", "split-qkv-to-gpt-neox")
    assert_same_tensors(back, file_sd)


@pytest.mark.parametrize("wrapper", ["", "module."])
def test_gpt_neox_embed_out_hub_file_to_transformers_5_and_back(tmp_path, wrapper):
    hf = neox_hf(5)
    file_sd = hub_file(hf, tmp_path / "hub")
    source = save(file_sd, tmp_path / "hub.safetensors", wrapper)
    out = converted(source, neox_hf(6), tmp_path, "mem", "gpt-neox-embed-out-to-lm-head")
    model = load(neox_hf(6), out)
    with torch.no_grad():
        close(model(tokens()).logits, hf(tokens()).logits)
    back = converted(str(tmp_path / "mem.safetensors"), str(tmp_path / "hub" / "model.safetensors"), tmp_path, "back",
                     "gpt-neox-lm-head-to-embed-out")
    assert_same_tensors(back, file_sd)


# -- torchvision / timm ResNet <-> HF ResNet ---------------------------------------------------
def with_stats(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Random BatchNorm running stats too (eval mode uses them; init leaves 0 and 1)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
                m.num_batches_tracked.fill_(seed)
    return reseeded(model, seed)


RESNETS = {"basic": dict(widths=(8, 16, 16, 32), depths=(2, 1, 1, 1)),
           "bottleneck": dict(widths=(16, 32, 32, 64), depths=(2, 1, 1, 1))}


def hf_resnet(block: str, seed: int) -> torch.nn.Module:
    spec = RESNETS[block]
    cfg = tf.ResNetConfig(embedding_size=8, hidden_sizes=list(spec["widths"]), depths=list(spec["depths"]),
                          layer_type=block, num_labels=5)
    return with_stats(build(tf.ResNetForImageClassification, cfg), seed)


@pytest.mark.parametrize("block,wrapper", [("basic", ""), ("basic", "module."), ("bottleneck", "")])
def test_torchvision_resnet_to_hf_resnet_and_back(tmp_path, block, wrapper):
    from tests.zoo import resnet

    tv = with_stats(resnet.resnet(block=block, **RESNETS[block]), 7)
    source = save(tv.state_dict(), tmp_path / "tv.safetensors", wrapper)  # DataParallel saves under module.
    out = converted(source, hf_resnet(block, 1), tmp_path, "hf", "torchvision-resnet-to-hf-resnet")
    assert "resnet.encoder.stages.1.layers.0.shortcut.normalization.running_var" in out
    hf = load(hf_resnet(block, 2), out)
    with torch.no_grad():
        close(hf(images(32)).logits, tv(images(32)))
    back = converted(str(tmp_path / "hf.safetensors"), with_stats(resnet.resnet(block=block, **RESNETS[block]), 3),
                     tmp_path, "back", "hf-resnet-to-torchvision-resnet")
    assert_same_tensors(back, tv.state_dict())


# -- HF CLIP vision <-> open_clip visual (fused in_proj, q first; HF declares k, v, q) ---------
CLIP_VISION = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2, image_size=8,
                   patch_size=4, projection_dim=12)


def hf_clip(seed: int) -> torch.nn.Module:
    return reseeded(build(tf.CLIPVisionModelWithProjection, tf.CLIPVisionConfig(**CLIP_VISION)), seed)


def test_hf_clip_vision_to_open_clip_and_back(tmp_path):
    from tests.zoo import openclip

    hf = hf_clip(7)
    assert [n for n, _ in hf.vision_model.encoder.layers[0].self_attn.named_children()][:3] == ["k_proj", "v_proj", "q_proj"]
    source = save(hf.state_dict(), tmp_path / "hf.safetensors")
    out = converted(source, reseeded(openclip.clip_vision()), tmp_path, "oc", "hf-clip-vision-to-open-clip")
    oc = load(openclip.clip_vision(), out)
    with torch.no_grad():
        close(oc(images()), hf(pixel_values=images()).image_embeds)
    back = converted(str(tmp_path / "oc.safetensors"), hf_clip(3), tmp_path, "back", "open-clip-to-hf-clip-vision")
    assert_same_tensors(back, hf.state_dict())


@pytest.mark.parametrize("wrapper", ["", "module."])
def test_open_clip_to_hf_clip_vision_from_open_clip_first(tmp_path, wrapper):
    from tests.zoo import openclip

    oc = reseeded(openclip.clip_vision(), 9)
    source = save(oc.state_dict(), tmp_path / "oc.safetensors", wrapper)
    out = converted(source, hf_clip(1), tmp_path, "hf", "open-clip-to-hf-clip-vision")
    hf = load(hf_clip(2), out)
    with torch.no_grad():
        close(hf(pixel_values=images()).image_embeds, oc(images()))


# -- the catalogue as a whole -------------------------------------------------------------------
PAIRS = [("mixtral-experts-to-fused", "mixtral-fused-to-experts"), ("moe-experts-to-fused", "moe-fused-to-experts"),
         ("phi3-to-llama", "llama-to-phi3"), ("hf-qwen2-to-meta-qwen2", "meta-qwen2-to-hf-qwen2"),
         ("gpt-neox-to-split-qkv", "split-qkv-to-gpt-neox"),
         ("gpt-neox-embed-out-to-lm-head", "gpt-neox-lm-head-to-embed-out"),
         ("torchvision-resnet-to-hf-resnet", "hf-resnet-to-torchvision-resnet"),
         ("hf-clip-vision-to-open-clip", "open-clip-to-hf-clip-vision")]


def test_recipes_json_lists_every_new_entry_both_ways(capsys):
    import json

    from ckptlab.cli import main

    assert main(["recipes", "--json"]) == 0
    entries = {e["name"]: e for e in json.loads(capsys.readouterr().out)["recipes"]}
    for forward, backward in PAIRS:
        assert entries[forward]["from"] == entries[backward]["to"] and entries[forward]["to"] == entries[backward]["from"]
        assert entries[forward]["description"] and entries[backward]["description"]
    assert set(entries["gpt-neox-to-split-qkv"]["params"]) == {"heads", "hidden"}
    assert set(entries["phi3-to-llama"]["params"]) == {"heads", "kv_heads"} and entries["llama-to-phi3"]["params"] == {}


def test_no_entry_claims_another_entrys_pair():
    """Keys built from an entry's patterns (recipe and fingerprint: what loads by name is not in
    the recipe) are recognised by that entry, never by its reverse, and swapped by the reverse."""
    from ckptlab.recipe.known import KeyIndex, catalogue

    def keys(patterns):
        return KeyIndex([p.replace("{i}", "0").replace("{e}", "0").replace("{b}", "0").replace("{s}", "0")
                         .replace("{w}", "weight") for p in patterns])

    for forward, backward in PAIRS:
        known = get(forward)
        entries = known.recipe_data["convert"]
        src = keys([p for e in entries for p in ([e["from"]] if isinstance(e["from"], str) else e["from"])]
                   + list(known.fingerprint_source))
        tgt = keys([p for e in entries for p in ([e["to"]] if isinstance(e["to"], str) else e["to"])]
                   + list(known.fingerprint_target))
        matched = {k.name for k in catalogue() if k.matches(src, tgt)}
        assert forward in matched and backward not in matched, (forward, matched)
        assert backward in {k.name for k in catalogue() if k.matches(tgt, src)}
