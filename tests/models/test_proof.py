"""``ckptlab.prove``: real tiny transformers models against their faithful other-layout
re-implementations (``tests/zoo``), run on the same seeded inputs."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

import ckptlab
from ckptlab.io.model_target import model_target
from ckptlab.models import proof as proof_module
from ckptlab.models.proof import Proof, prove
from tests.models.proof_cases import gpt2_without_c_proj_transpose, saved
from tests.zoo import hf
from tests.zoo.gpt import nanogpt

CONTRACT = ["proved", "max_abs", "first_divergence", "reason"]
NANOGPT = "tests.zoo.gpt:nanogpt"


@pytest.fixture(scope="module")
def gpt2_file(tmp_path_factory: pytest.TempPathFactory):
    return saved(hf.gpt2(), tmp_path_factory.mktemp("gpt2"))


def test_gpt2_to_nanogpt_by_the_catalogue_is_proved(gpt2_file):
    # the source is built from the config.json beside its file, the target from its definition
    result = prove(ckptlab.align(gpt2_file, NANOGPT))
    assert list(result.to_dict()) == CONTRACT
    assert result.proved, result.reason
    assert result.max_abs <= 1e-5 and result.first_divergence is None
    assert result.describe().startswith("proved: outputs equal (max |diff| ")
    assert "token ids (2, 8)" in result.reason


def test_the_square_c_proj_left_as_stored_first_diverges_at_block_0s_attention_projection(gpt2_file):
    alignment = ckptlab.align(gpt2_file, NANOGPT, recipe=gpt2_without_c_proj_transpose(), auto="none")
    assert alignment.strict_ok                    # every key fed on purpose: only running it can tell
    result = prove(alignment)
    assert not result.proved and result.max_abs > 1e-3
    # nanoGPT runs wte, wpe, h.0.ln_1, h.0.attn.c_attn (transposed right: equal to GPT-2's), then
    # h.0.attn.c_proj, which gets the same attention output but holds the square weight untransposed
    assert result.first_divergence == "transformer.h.0.attn.c_proj"
    assert "(vs 'transformer.h.0.attn.c_proj'" in result.reason
    assert result.describe() == (f"not proved: first divergence at 'transformer.h.0.attn.c_proj' "
                                 f"(max |diff| {result.max_abs:.2g})")


def test_modules_as_sides_are_proved_and_left_as_they_were():
    source, target = hf.gpt2().train(), nanogpt().train()
    before = {k: v.clone() for k, v in target.state_dict().items()}
    result = prove(ckptlab.align(source, target))
    assert result.proved, result.reason
    assert source.training and target.training         # proving ran copies in eval mode
    assert all(torch.equal(before[k], v) for k, v in target.state_dict().items())
    assert not any(m._forward_hooks for m in [*source.modules(), *target.modules()])


def test_given_models_are_the_structures_loaded(tmp_path):
    # two bare files: nothing says which models they are, until the caller gives them
    bare_source = tmp_path / "gpt2.safetensors"
    save_file({k: v.contiguous() for k, v in hf.gpt2().state_dict().items() if k != "lm_head.weight"}, bare_source)
    bare_target = tmp_path / "nanogpt.safetensors"
    save_file({k: v for k, v in nanogpt().state_dict().items() if k != "lm_head.weight"}, bare_target)
    alignment = ckptlab.align(bare_source, bare_target)
    unbuilt = prove(alignment)
    assert unbuilt.to_dict() == {"proved": False, "max_abs": None, "first_divergence": None,
                                 "reason": unbuilt.reason}
    assert "the source model cannot be built" in unbuilt.reason
    assert str(bare_source) in unbuilt.reason and "no config.json beside it" in unbuilt.reason
    half = prove(alignment, source_model=hf.gpt2(seed=5))
    assert "the target model cannot be built" in half.reason and str(bare_target) in half.reason
    given = prove(alignment, source_model=hf.gpt2(seed=5), target_model=nanogpt())
    assert given.proved, given.reason                    # the seed-5 model's own values were replaced


def test_hf_llama_to_meta_llama_is_proved_and_wrong_heads_show_at_the_output_projection(tmp_path):
    path = saved(hf.llama(), tmp_path)
    right = prove(ckptlab.align(path, "tests.zoo.llama:llama"))
    assert right.proved, right.reason
    wrong = prove(ckptlab.align(path, "tests.zoo.llama:llama", params={"heads": 2, "kv_heads": 1}))
    # wq/wk are rotary-permuted on purpose (their outputs differ by design), so they are not
    # compared; wv is right; wo is the first module whose output carries the wrong attention
    assert not wrong.proved and wrong.first_divergence == "layers.0.attention.wo"


def test_vit_images_through_transformers_legacy_names_find_the_layer_norm_eps(tmp_path):
    # save_pretrained writes ViT's 4.x names; the source model is loaded through transformers' renames
    path = saved(hf.vit_classifier(), tmp_path)
    default_eps = prove(ckptlab.align(path, "tests.zoo.vit:vit"))       # timm's 1e-6, HF's 1e-12
    assert not default_eps.proved and default_eps.first_divergence == "blocks.0.norm1"
    assert "random inputs (2, 3, 8, 8)" in default_eps.reason          # the config's image size
    same_eps = prove(ckptlab.align(path, model_target("tests.zoo.vit:vit", {"eps": 1e-12})))
    assert same_eps.proved, same_eps.reason


def test_a_written_result_is_what_is_proved(gpt2_file, tmp_path):
    out = tmp_path / "bf16.safetensors"
    ckptlab.remap(gpt2_file, NANOGPT, out, dtype="bfloat16")
    alignment = ckptlab.align(gpt2_file, NANOGPT)
    assert prove(alignment).proved
    rounded = prove(alignment, result=out)
    assert not rounded.proved and rounded.first_divergence == "transformer.wte"   # the first module to run


def test_big_sides_are_built_only_at_full_scale(gpt2_file, monkeypatch):
    alignment = ckptlab.align(gpt2_file, NANOGPT)
    monkeypatch.setattr(proof_module, "MAX_PARAMS", 1000)
    refused = prove(alignment)
    assert not refused.proved and "full_scale=True" in refused.reason and "the source model is not built" in refused.reason
    assert prove(alignment, full_scale=True).proved


def test_the_api_name():
    assert ckptlab.prove is prove and ckptlab.Proof is Proof
