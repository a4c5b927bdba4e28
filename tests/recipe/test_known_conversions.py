"""Each known conversion, both directions, between a real ``transformers`` model (tiny
config, random init, no hub) and the pure-torch model of the other library's layout in
``tests/models``: found without a recipe, outputs equal within 1e-4, and the way back
gives every tensor back bit for bit."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

import ckptlab
from ckptlab.cli import main
from tests.zoo import gpt, hf, llama, vit

TOL = 1e-4


def tokens(vocab: int = 64) -> torch.Tensor:
    return torch.randint(0, vocab, (2, 9), generator=torch.Generator().manual_seed(1))


def images() -> torch.Tensor:
    return torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(2))


def reseeded(model: torch.nn.Module, seed: int = 123) -> torch.nn.Module:
    """The same model with other random values: a load that misses a key shows."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1 + (1.0 if p.dim() == 1 else 0.0))
    return model.eval()


def converted(source, target, tmp_path, name: str, expect: str, missing: int = 0, **kw) -> dict[str, torch.Tensor]:
    """Remap ``source`` into ``target``'s layout with no recipe (auto="high"): the known
    conversion ``expect`` is suggested high and applied, nothing is left unfed, no warning."""
    al = ckptlab.align(source, target, auto="high", **kw)
    known = [s for s in al.suggestions if repr(expect) in s.reason]
    assert known and all(s.confidence == "high" and s.applied for s in known)
    if missing:  # what the source cannot feed stays the target's own, and is said so (not silent)
        [left] = al.warnings
        assert "left at" in left and "init" in left
    else:
        assert al.warnings == []
    assert (al.summary["missing"], al.summary["mismatch"], al.summary["conflict"]) == (missing, 0, 0)
    out = tmp_path / f"{name}.safetensors"
    rep = ckptlab.remap(source, target, out, auto="high", **kw)
    assert rep.warning == (al.warnings[0] if al.warnings else None)
    return load_file(out)


def load(model: torch.nn.Module, sd: dict[str, torch.Tensor]) -> torch.nn.Module:
    missing, unexpected = model.load_state_dict(sd, strict=False)
    assert not unexpected and all(k == "lm_head.weight" for k in missing)  # tied: stored once
    return model.eval()


def assert_same_tensors(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor]) -> None:
    assert set(got) == set(want)
    for key, value in want.items():
        assert got[key].dtype == value.dtype and torch.equal(got[key], value), key


# -- GPT-2 <-> nanoGPT -------------------------------------------------------------------
def test_gpt2_to_nanogpt_and_back(tmp_path):
    h = hf.gpt2()
    sd = converted(h, reseeded(gpt.nanogpt()), tmp_path, "nano", "gpt2-to-nanogpt")
    nano = load(gpt.nanogpt(), sd)
    with torch.no_grad():
        assert (nano(tokens()) - h(tokens()).logits).abs().max() <= TOL
    # and back: into a fresh GPT-2, every tensor as it was
    path = tmp_path / "nano.safetensors"
    back = converted(str(path), reseeded(hf.gpt2(seed=5)), tmp_path, "back", "nanogpt-to-gpt2")
    assert_same_tensors(back, {k: v for k, v in h.state_dict().items() if k in back})


@pytest.mark.parametrize("variant", ["save_model", "save_pretrained", "wrapped"])
def test_gpt2_saved_any_common_way_is_recognised(tmp_path, variant):
    """safetensors' save_model keeps lm_head.weight and drops the tied transformer.wte.weight;
    save_pretrained keeps wte; a DDP wrapper adds 'module.': the catalogue knows each."""
    from safetensors.torch import save_model

    h = hf.gpt2(seed=2)
    path = tmp_path / "gpt2.safetensors"
    if variant == "save_model":
        save_model(h, str(path))
        assert "transformer.wte.weight" not in load_file(path) and "lm_head.weight" in load_file(path)
    elif variant == "save_pretrained":
        h.save_pretrained(tmp_path / "hf")
        path = tmp_path / "hf" / "model.safetensors"
    else:
        save_file({f"module.{k}": v.contiguous() for k, v in h.state_dict().items() if k != "lm_head.weight"}, path)
    al = ckptlab.align(str(path), reseeded(gpt.nanogpt()))
    [known] = [s for s in al.suggestions if "'gpt2-to-nanogpt'" in s.reason]
    assert known.confidence == "high" and known.applied
    assert al.summary["converted"] == 8 and al.summary["mismatch"] == al.summary["conflict"] == 0
    assert al.warnings == [] and al.strict_ok
    if variant == "save_model":  # the embedding is only there as the tied head: fed through nanoGPT's tie
        assert al.row("transformer.wte.weight").fed and "tie" in al.row("transformer.wte.weight").reason


def test_gpt2_to_nanogpt_converts_the_square_c_proj_under_auto_high():
    al = ckptlab.align(hf.gpt2(), gpt.nanogpt(), auto="high")
    for i in range(2):
        row = al.row(f"transformer.h.{i}.attn.c_proj.weight")
        assert row.status == "converted" and "transpose" in row.reason


def test_gpt2_to_nanogpt_fully_automatic_with_auto_all(tmp_path):
    h = hf.gpt2()
    out = tmp_path / "nano.pt"
    rep = ckptlab.remap(h, reseeded(gpt.nanogpt()), out, auto="all")
    assert rep.warning is None
    nano = load(gpt.nanogpt(), torch.load(out, weights_only=True))
    with torch.no_grad():
        assert (nano(tokens()) - h(tokens()).logits).abs().max() <= TOL


# -- timm ViT <-> HF ViT (transformers 5 layout) -------------------------------------------
@pytest.mark.parametrize("hf_class", ["classifier", "model"])
def test_timm_vit_to_hf_vit_and_back(tmp_path, hf_class):
    timm_model = reseeded(vit.vit(eps=1e-12), seed=7)
    build = hf.vit_classifier if hf_class == "classifier" else hf.vit_model
    sd = converted(timm_model, reseeded(build()), tmp_path, "hf", "timm-vit-to-hf-vit")
    assert "vit.layers.0.attention.q_proj.weight" in sd or "layers.0.attention.q_proj.weight" in sd
    h = load(build(), sd)
    with torch.no_grad():
        if hf_class == "classifier":
            assert (h(images()).logits - timm_model(images())).abs().max() <= TOL
        else:
            assert (h(images()).last_hidden_state - timm_model.forward_features(images())).abs().max() <= TOL
    back = converted(str(tmp_path / "hf.safetensors"), reseeded(vit.vit(eps=1e-12)), tmp_path, "back",
                     "hf-vit-to-timm-vit", missing=2 if hf_class == "model" else 0)
    want = timm_model.state_dict()
    if hf_class == "model":  # ViTModel has no classifier: the head stays the target's own
        want = {k: v for k, v in want.items() if not k.startswith("head.")}
        back = {k: v for k, v in back.items() if not k.startswith("head.")}
    assert_same_tensors(back, want)


def test_hf_vit_to_timm_vit_from_hf_first():
    h = hf.vit_classifier(seed=3)
    al = ckptlab.align(h, vit.vit(eps=1e-12), auto="high")
    assert al.summary["converted"] == len(al.target) and al.warnings == []
    qkv = al.row("blocks.1.attn.qkv.weight")
    assert qkv.sources == tuple(f"vit.layers.1.attention.{p}_proj.weight" for p in "qkv")


# -- timm ViT <-> HF ViT, the 4.x layout (transformers 5 still reads it) -------------------
def test_timm_vit_to_the_4x_layout_loads_in_transformers_from_pretrained(tmp_path):
    """Written in the 4.x names, the checkpoint is read by transformers 5.24's own
    ``from_pretrained`` (its conversion mapping renames 4.x keys on load): the external
    check that the 4.x recipe writes what 4.x wrote."""
    from transformers import ViTConfig, ViTForImageClassification

    timm_model = reseeded(vit.vit(eps=1e-12), seed=11)
    layout_4x = _vit_4x_target()
    al = ckptlab.align(timm_model, layout_4x, auto="high")
    assert al.summary["converted"] == len(layout_4x) and al.warnings == [], al.warnings
    assert any("timm-vit-to-hf-vit-4x" in s.reason and s.applied for s in al.suggestions)
    folder = tmp_path / "vit4x"
    folder.mkdir()
    ckptlab.remap(timm_model, layout_4x, folder / "model.safetensors", auto="high")
    ViTConfig(**hf.VIT).save_pretrained(folder)
    loaded = ViTForImageClassification.from_pretrained(folder).eval()
    with torch.no_grad():
        assert (loaded(images()).logits - timm_model(images())).abs().max() <= TOL
    # and back from the 4.x layout to timm, bit for bit
    back = ckptlab.align(str(folder / "model.safetensors"), reseeded(vit.vit(eps=1e-12)), auto="high")
    assert any("hf-vit-4x-to-timm-vit" in s.reason and s.applied for s in back.suggestions)
    out = tmp_path / "timm.safetensors"
    ckptlab.remap(str(folder / "model.safetensors"), reseeded(vit.vit(eps=1e-12)), out, auto="high")
    assert_same_tensors(load_file(out), timm_model.state_dict())


def _vit_4x_target() -> dict[str, torch.Tensor]:
    """The keys and shapes of a ViTForImageClassification as transformers 4.x named them."""
    renames = [("vit.layers.", "vit.encoder.layer."), (".attention.q_proj.", ".attention.attention.query."),
               (".attention.k_proj.", ".attention.attention.key."), (".attention.v_proj.", ".attention.attention.value."),
               (".attention.o_proj.", ".attention.output.dense."), (".mlp.fc1.", ".intermediate.dense."),
               (".mlp.fc2.", ".output.dense.")]
    out = {}
    for key, value in hf.vit_classifier().state_dict().items():
        for a, b in renames:
            key = key.replace(a, b)
        out[key] = torch.zeros_like(value)
    assert "vit.encoder.layer.0.attention.attention.query.weight" in out
    return out


# -- Meta LLaMA <-> HF LLaMA (rotary permute) ----------------------------------------------
def test_meta_llama_to_hf_llama_and_back(tmp_path):
    meta = reseeded(llama.llama(), seed=9)
    h = reseeded(hf.llama())
    sd = converted(meta, h, tmp_path, "hf", "meta-llama-to-hf-llama")
    h = load(hf.llama(), sd)
    with torch.no_grad():
        assert (h(tokens()).logits - meta(tokens())).abs().max() <= TOL
    back = converted(str(tmp_path / "hf.safetensors"), reseeded(llama.llama()), tmp_path, "back",
                     "hf-llama-to-meta-llama")
    assert_same_tensors(back, meta.state_dict())


def test_meta_llama_files_take_heads_from_params_json_or_the_user(tmp_path):
    meta = reseeded(llama.llama(), seed=4)
    folder = tmp_path / "meta"
    folder.mkdir()
    torch.save(meta.state_dict(), folder / "consolidated.00.pth")
    save_file({k: v.contiguous() for k, v in hf.llama().state_dict().items()}, tmp_path / "hf.safetensors")
    source, target = str(folder / "consolidated.00.pth"), str(tmp_path / "hf.safetensors")
    al = ckptlab.align(source, target)  # files only: no config anywhere
    assert al.summary["converted"] == 0
    assert any("needs heads" in w and "--param heads=N" in w for w in al.warnings)
    assert main(["align", source, target, "--strict", "--json"]) == 2
    (folder / "params.json").write_text(json.dumps({"dim": 32, "n_heads": 4, "n_kv_heads": 2}))
    al = ckptlab.align(source, target)
    assert al.summary["converted"] == len(al.target) and al.warnings == []
    (folder / "params.json").unlink()
    out = tmp_path / "out.safetensors"
    assert main(["remap", source, target, "-o", str(out), "--param", "heads=4", "--param", "kv_heads=2",
                 "--no-progress"]) == 0
    h = load(hf.llama(), load_file(out))
    with torch.no_grad():
        assert (h(tokens()).logits - meta(tokens())).abs().max() <= TOL


def test_grouped_query_kv_heads_are_read_from_the_shapes_never_defaulted_to_heads(tmp_path):
    """Only --param heads=4 given: the k projection (2 kv heads) must be permuted with 2 heads, which
    its rows say (16 k rows / 32 q rows x 4 heads); defaulting to 4 gave logits off by ~0.4."""
    meta = reseeded(llama.llama(), seed=5)
    assert meta.params.n_kv_heads < meta.params.n_heads  # the grouped-query case
    source = tmp_path / "consolidated.00.pth"
    torch.save(meta.state_dict(), source)
    save_file({k: v.contiguous() for k, v in hf.llama().state_dict().items()}, tmp_path / "hf.safetensors")
    al = ckptlab.align(str(source), str(tmp_path / "hf.safetensors"), params={"heads": 4})
    assert al.warnings == [] and al.summary["converted"] == len(al.target)
    [known] = [s for s in al.suggestions if "convert" in s.rule]
    assert "kv_heads=2 from the shapes" in known.reason
    out = tmp_path / "out.safetensors"
    assert main(["remap", str(source), str(tmp_path / "hf.safetensors"), "-o", str(out), "--param", "heads=4",
                 "--no-progress"]) == 0
    h = load(hf.llama(), load_file(out))
    with torch.no_grad():
        assert (h(tokens()).logits - meta(tokens())).abs().max() <= TOL
    api = ckptlab.remap(str(source), str(tmp_path / "hf.safetensors"), tmp_path / "api.safetensors",
                        params={"heads": 4})  # params= wherever align takes it
    assert api.warning is None and load_file(tmp_path / "api.safetensors").keys() == load_file(out).keys()
    assert all(torch.equal(v, load_file(out)[k]) for k, v in load_file(tmp_path / "api.safetensors").items())


def test_a_tied_head_that_save_pretrained_left_out_is_fed_through_its_tie(tmp_path):
    """HF LLaMA with tie_word_embeddings: the file holds no lm_head.weight. Meta's layout keeps
    output.weight apart, so it must be fed from the embedding the config ties it to."""
    tied = hf.llama(seed=3, tie_word_embeddings=True)
    tied.save_pretrained(tmp_path / "hf")
    assert "lm_head.weight" not in load_file(tmp_path / "hf" / "model.safetensors")
    meta_target = reseeded(llama.llama(), seed=8)
    al = ckptlab.align(str(tmp_path / "hf" / "model.safetensors"), meta_target)
    row = al.row("output.weight")
    assert row.fed and "fed through the tie: 'lm_head.weight' is 'model.embed_tokens.weight'" in row.reason
    assert al.warnings == [] and al.strict_ok
    ckptlab.remap(str(tmp_path / "hf" / "model.safetensors"), meta_target, tmp_path / "meta.pt")
    meta = load(llama.llama(), torch.load(tmp_path / "meta.pt", weights_only=True))
    with torch.no_grad():
        assert (tied(tokens()).logits - meta(tokens())).abs().max() <= TOL
    (tmp_path / "hf" / "config.json").unlink()  # no config: nothing says the head is tied
    untold = ckptlab.align(str(tmp_path / "hf" / "model.safetensors"), meta_target)
    assert not untold.row("output.weight").fed and not untold.strict_ok
    assert any("'output' left at its init" in w for w in untold.warnings)


def test_wrong_head_count_would_be_wrong_so_the_given_one_is_used():
    """The permutation depends on the head count: the user's value wins over configs, and
    a wrong one gives other tensors (shapes cannot catch it: that is why it is asked)."""
    meta, h = llama.llama(), hf.llama()
    right = ckptlab.align(meta, h).effective_recipe.convert
    wrong = ckptlab.align(meta, h, params={"heads": 2}).effective_recipe.convert
    assert [c.to_dict() for c in right] != [c.to_dict() for c in wrong]


# -- BERT LayerNorm.gamma/beta <-> weight/bias ---------------------------------------------
def test_bert_gamma_beta_to_weight_bias_and_back(tmp_path):
    b = hf.bert(seed=1)
    old = {k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta"): v
           for k, v in b.state_dict().items()}
    assert any(k.endswith("LayerNorm.gamma") for k in old)
    sd = converted(old, reseeded(hf.bert()), tmp_path, "new", "bert-gamma-beta-to-weight-bias")
    fresh = load(hf.bert(), sd)
    ids = tokens()
    with torch.no_grad():
        assert (fresh(ids).last_hidden_state - b(ids).last_hidden_state).abs().max() <= TOL
    back = converted(str(tmp_path / "new.safetensors"), old, tmp_path, "old", "bert-weight-bias-to-gamma-beta")
    assert_same_tensors(back, old)


def test_load_into_a_hf_llama_reads_the_head_counts_from_the_model():
    meta = reseeded(llama.llama(), seed=2)
    h = reseeded(hf.llama())
    rep = ckptlab.load_into(h, meta.state_dict())  # a bare state_dict: only the model knows its heads
    assert rep.summary.get("converted") == len(h.state_dict())
    with torch.no_grad():
        assert (h(tokens()).logits - meta(tokens())).abs().max() <= TOL


def test_a_head_of_another_class_count_is_left_to_the_target_and_never_truncated(tmp_path):
    """timm ViT with 7 classes into an HF ViT with 5: every other tensor converts; the head is
    left out of the conversion (the target keeps its own), the reason says so, and no
    adapter cuts the fused qkv to the parts' size."""
    timm_model = vit.vit(eps=1e-12, num_classes=7)
    al = ckptlab.align(timm_model, hf.vit_classifier(), auto="all")
    [known] = [s for s in al.suggestions if "'timm-vit-to-hf-vit'" in s.reason]
    assert known.confidence == "high" and "classifier" in known.reason and "left out" in known.reason
    assert al.row("classifier.weight").status == "missing" and al.summary["converted"] == len(al.target) - 2
    assert not [s for s in al.suggestions if "adapt" in s.rule and "q_proj" in str(s.rule)]
    rep = ckptlab.remap(timm_model, hf.vit_classifier(), tmp_path / "out.safetensors", auto="all")
    assert sorted(rep.missing) == ["classifier.bias", "classifier.weight"]


def test_a_recipe_that_already_converts_everything_gets_no_parameter_warning():
    meta, h = llama.llama(), hf.llama()
    recipe = ckptlab.align(meta, h).effective_recipe  # the known conversion, heads filled in
    al = ckptlab.align(meta.state_dict(), h.state_dict(), recipe=recipe)  # no configs now
    assert al.summary["converted"] == len(h.state_dict()) and al.warnings == []
