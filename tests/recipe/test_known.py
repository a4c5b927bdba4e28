"""The catalogue of known conversions (``ckptlab/known/``) and ``ckptlab recipes``."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from ckptlab.cli import main
from ckptlab.errors import RecipeError
from ckptlab.recipe.known import KeyIndex, catalogue, get
from ckptlab.recipe.known.params import find_params, parse_assignments
from ckptlab.recipe.model import Recipe

PAIRS = [("gpt2-to-nanogpt", "nanogpt-to-gpt2"), ("timm-vit-to-hf-vit", "hf-vit-to-timm-vit"),
         ("timm-vit-to-hf-vit-4x", "hf-vit-4x-to-timm-vit"), ("meta-llama-to-hf-llama", "hf-llama-to-meta-llama"),
         ("bert-gamma-beta-to-weight-bias", "bert-weight-bias-to-gamma-beta")]


def test_recipes_json_lists_every_conversion_in_both_directions(capsys):
    assert main(["recipes", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    entries = {e["name"]: e for e in out["recipes"]}
    for forward, backward in PAIRS:
        assert forward in entries and backward in entries
        assert entries[forward]["from"] == entries[backward]["to"]
    for e in out["recipes"]:
        assert set(e) == {"name", "from", "to", "description", "params"} and e["description"]
    assert set(entries["meta-llama-to-hf-llama"]["params"]) == {"heads", "kv_heads"}
    assert entries["gpt2-to-nanogpt"]["params"] == {}


def test_every_shipped_yaml_is_in_the_catalogue_and_parses_as_a_recipe():
    folder = Path(__file__).resolve().parents[2] / "ckptlab" / "recipe" / "known"
    assert len(list(folder.glob("*.yaml"))) == len(catalogue())
    for known in catalogue():
        params = {p.name: 4 for p in known.params} | ({"kv_heads": 2} if known.params else {})
        recipe = known.recipe(params)
        assert recipe.to_dict()  # validated by Recipe.from_dict


def test_show_prints_a_recipe_that_loads_back(capsys, tmp_path):
    assert main(["recipes", "--show", "bert-gamma-beta-to-weight-bias"]) == 0
    path = tmp_path / "r.yaml"
    path.write_text(capsys.readouterr().out)
    recipe = Recipe.load(path)
    renamed = recipe.rename(["embeddings.LayerNorm.gamma", "encoder.layer.0.output.LayerNorm.beta", "LayerNorm.gamma"])
    assert [new for new, _ in renamed.values()] == [
        "embeddings.LayerNorm.weight", "encoder.layer.0.output.LayerNorm.bias", "LayerNorm.weight"]


def test_a_missing_parameter_is_named_in_one_line(capsys):
    assert main(["recipes", "--show", "meta-llama-to-hf-llama"]) == 1
    err = capsys.readouterr().err.strip()
    # kv_heads is never defaulted to heads (grouped-query attention): with no file to read it from, it is named
    assert "\n" not in err and "needs heads" in err and "--param heads=N --param kv_heads=N" in err
    with pytest.raises(RecipeError, match="positive integer"):
        get("meta-llama-to-hf-llama").recipe({"heads": "many", "kv_heads": 2})


def test_unknown_name_gets_a_did_you_mean():
    with pytest.raises(RecipeError, match="did you mean 'gpt2-to-nanogpt'"):
        get("gpt2-to-nanogp")


def test_param_assignments():
    assert parse_assignments(["heads=32", "kv_heads = 8", "name=x"]) == {"heads": 32, "kv_heads": 8, "name": "x"}
    with pytest.raises(RecipeError, match="NAME=VALUE"):
        parse_assignments(["heads"])


def test_params_from_a_model_config_and_from_files_beside_a_checkpoint(tmp_path):
    from tests.zoo import hf, llama

    known = get("meta-llama-to-hf-llama")
    values, origin, _ = find_params(known, [("source", llama.llama(n_heads=4, n_kv_heads=1))])
    assert values == {"heads": 4, "kv_heads": 1} and origin["heads"] == "the source model's config"
    values, _, _ = find_params(known, [("source", "x.pth"), ("target", hf.llama(num_attention_heads=8,
                                                                              num_key_value_heads=4))])
    assert values == {"heads": 8, "kv_heads": 4}
    (tmp_path / "params.json").write_text(json.dumps({"dim": 32, "n_heads": 16, "n_kv_heads": 2}))
    values, origin, _ = find_params(known, [("source", str(tmp_path / "consolidated.00.pth"))])
    assert values == {"heads": 16, "kv_heads": 2} and origin["heads"].endswith("params.json")
    values, origin, _ = find_params(known, [("source", str(tmp_path / "x.pth"))], given={"heads": 2})
    assert values["heads"] == 2 and origin["heads"] == "given"
    with pytest.raises(RecipeError, match="needs kv_heads"):  # never defaulted to heads: shapes or a config say it
        known.resolve_params({"heads": 6})


def test_instantiate_swaps_the_prefixes_found_on_each_side():
    known = get("timm-vit-to-hf-vit")
    source = KeyIndex(["module.cls_token", "module.pos_embed", "module.patch_embed.proj.weight",
                       "module.blocks.0.attn.qkv.weight", "module.blocks.0.norm1.weight"])
    target = KeyIndex(["embeddings.cls_token", "embeddings.patch_embeddings.projection.weight",
                       "layers.0.attention.q_proj.weight", "layers.0.layernorm_before.weight"])  # ViTModel: no 'vit.'
    assert known.matches(source, target)
    data = known.instantiate(source, target)
    first = data["convert"][0]
    assert first["from"] == "module.cls_token" and first["to"] == "embeddings.cls_token"
    qkv = next(e for e in data["convert"] if "qkv" in str(e["from"]))
    assert qkv["to"][1] == "layers.{i}.attention.k_proj.{w}"
    head = data["convert"][-1]
    assert head["to"] == "classifier.{w}"  # outside the prefixed part: untouched
    assert not known.matches(target, source)


@pytest.mark.parametrize(("name", "shapes"), [
    ("meta-llama-to-hf-llama", {"layers.0.attention.wq.weight": (32, 32), "layers.0.attention.wk.weight": (8, 32)}),
    ("phi3-to-llama", {"model.layers.0.self_attn.qkv_proj.weight": (48, 32),        # (8 + 2 x 2) heads x 4
                       "model.layers.0.self_attn.o_proj.weight": (32, 32)}),
])
def test_kv_heads_are_derived_from_the_shapes_and_a_contradiction_is_said(name, shapes):
    from ckptlab.recipe.known.params import derive_params

    known = get(name)
    values, origin = {"heads": 8}, {"heads": "given"}
    assert derive_params(known, shapes, values, origin) == []
    assert values["kv_heads"] == 2 and origin["kv_heads"].startswith("the shapes")
    odd = {k: (v[0] + 1, v[1]) if ("wk" in k or "qkv" in k) else v for k, v in shapes.items()}
    values = {"heads": 8}
    [note] = derive_params(known, odd, values, {})
    assert "kv_heads cannot be read from the shapes" in note and "kv_heads" not in values
