"""Conversions end to end: align rows, the streamed merge (one group at a time), dtype casts,
load_into and a GPT-2 (Conv1D) -> nanoGPT (Linear) job whose outputs match."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

import ckptlab
from ckptlab import merge
from ckptlab.cli import main
from ckptlab.errors import MergeError, RecipeError
from ckptlab.io.writers import write
from tests.zoo.gpt_pair import TRANSPOSE_RECIPE, gpt2, nanogpt


def _state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.fixture(scope="module")
def pair():
    torch.manual_seed(0)
    src, dst = gpt2(), nanogpt()
    return src, dst


QKV = {"convert": [{"from": "b.{i}.qkv", "to": ["b.{i}.q", "b.{i}.k", "b.{i}.v"], "ops": [{"chunk": 0}]}]}


def _qkv_pair(layers=3):
    src = {f"b.{i}.qkv": torch.randn(12, 4) for i in range(layers)}
    src["norm"] = torch.randn(4)
    tgt = {f"b.{i}.{n}": torch.zeros(4, 4) for i in range(layers) for n in "qkv"}
    tgt["norm"] = torch.zeros(4)
    return src, tgt


# -- align ------------------------------------------------------------------------------------
def test_gpt2_to_nanogpt_rows_are_converted_and_name_ops_and_sources(pair):
    src, dst = pair
    al = ckptlab.align(src, dst, recipe=TRANSPOSE_RECIPE, auto="none")
    converted = al.by_status("converted")
    assert len(converted) == 2 * 4  # c_attn, attn.c_proj (square!), c_fc, mlp.c_proj per block
    row = al.row("h.0.attn.c_proj.weight")
    assert row.status == "converted" and row.sources == ("h.0.attn.c_proj.weight",)
    assert row.reason == "convert 1: transpose of 'h.0.attn.c_proj.weight'"
    assert al.row("h.0.attn.c_attn.weight").source_shape == (16, 48)
    assert al.row("h.0.attn.c_attn.weight").target_shape == (48, 16)
    assert al.summary["exact"] == len(dst.state_dict()) - 8 and not al.summary["mismatch"]
    assert al.fed == list(dst.state_dict())
    data = al.to_dict()
    assert data["summary"]["converted"] == 8
    assert {r["status"] for r in data["rows"]} == {"exact", "converted"}


def test_one_to_many_rows_list_their_part_and_many_to_one_lists_every_source():
    src, tgt = _qkv_pair(1)
    al = ckptlab.align(src, tgt, recipe=QKV, auto="none")
    assert [al.row(f"b.0.{n}").reason for n in "qkv"] == [
        f"convert 1: chunk 0 of 'b.0.qkv' (output {i} of 3)" for i in (1, 2, 3)]
    fuse = {"convert": [{"from": ["b.{i}.q", "b.{i}.k", "b.{i}.v"], "to": "b.{i}.qkv", "ops": [{"cat": 0}]}]}
    back = ckptlab.align(tgt, src, recipe=fuse, auto="none")
    row = back.row("b.0.qkv")
    assert row.status == "converted" and row.source is None and row.sources == ("b.0.q", "b.0.k", "b.0.v")
    assert row.reason == "convert 1: cat 0 of 'b.0.q', 'b.0.k', 'b.0.v'"
    assert back.to_frame().set_index("target").loc["b.0.qkv", "source"] == "b.0.q, b.0.k, b.0.v"


def test_conversions_claim_their_keys_before_rules_and_lose_to_map():
    src = {"a.w": torch.randn(2, 3), "b.w": torch.randn(3, 2), "c.w": torch.randn(3, 2)}
    tgt = {"x.w": torch.zeros(3, 2), "y.w": torch.zeros(3, 2)}
    recipe = {"rules": [{"replace": {"pattern": "^a", "with": "zzz"}}, {"replace": {"pattern": "^b", "with": "x"}}],
              "map": {"y.w": "c.w"},
              "convert": [{"from": "a.w", "to": "x.w", "ops": ["transpose"]},
                          {"from": "c.w", "to": "y.w", "ops": ["transpose"]}]}
    al = ckptlab.align(src, tgt, recipe=recipe, auto="none")
    assert al.row("x.w").status == "converted"  # wins over the rule that renames b.w to x.w
    unused = {r.source: r.reason for r in al.by_status("unused")}
    assert unused["b.w"] == "'x.w' is fed by convert 1 instead"
    assert al.row("y.w").status == "renamed" and al.row("y.w").source == "c.w"  # the map wins
    assert "c.w" not in unused


def test_a_conversion_giving_the_wrong_shape_is_a_mismatch_that_blocks_the_merge(tmp_path):
    src = {"a.w": torch.randn(2, 3)}
    tgt = {"a.w": torch.zeros(2, 3)}
    al = ckptlab.align(src, tgt, recipe={"convert": [{"from": "a.w", "to": "a.w", "ops": ["transpose"]}]}, auto="none")
    row = al.row("a.w")
    assert row.status == "mismatch" and row.reason.endswith("gives (3, 2) but the target is (2, 3)")
    with pytest.raises(MergeError, match=r"shape mismatch at 'a.w': convert 1 gives \(3, 2\) vs target \(2, 3\)"):
        merge.plan(al)
    assert merge.plan(al, on_mismatch="keep-target").entries["a.w"].keeps_target


def test_a_conversion_matching_nothing_or_not_fitting_is_a_one_line_error():
    src, tgt = _qkv_pair(1)
    with pytest.raises(RecipeError, match=r"^convert 1: 'b.\{i\}.qvk' matches no source key \(did you mean 'b.0.qkv'\?\)$"):
        ckptlab.align(src, tgt, recipe={"convert": [{"from": "b.{i}.qvk", "to": "b.{i}.q"}]})
    bad = {"convert": [{"from": "b.{i}.qkv", "to": ["b.{i}.q", "b.{i}.k", "b.{i}.v", "b.{i}.o", "b.{i}.p"],
                        "ops": [{"chunk": 0}]}]}
    with pytest.raises(RecipeError, match=r"^convert 1: op 1 \(chunk 0: dim 0 of \(12, 4\) \(12\) does not split "
                                          r"into 5 equal parts\) on 'b.0.qkv' \(12, 4\)$"):
        ckptlab.align(src, tgt, recipe=bad)


# -- the streamed merge ------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_remap_computes_each_group_once_and_drops_it_when_written(tmp_path, suffix):
    src, tgt = _qkv_pair(4)
    al = ckptlab.align(src, tgt, recipe=QKV, auto="none")
    plan = merge.plan(al)
    reads: list[str] = []
    load = plan.source.tensor
    plan.source.tensor = lambda key: (reads.append(key), load(key))[1]  # count the source reads
    held: list[int] = []
    out = tmp_path / f"out{suffix}"
    write(plan, out, progress=lambda done, total, key: held.append(plan.waiting))
    assert sorted(reads) == sorted(src)  # each fused tensor read once, not once per part
    assert max(held) <= 2  # at most the rest of one group waits: memory is one group, not the file
    assert held[-1] == 0 and plan.waiting == 0 and not plan._waiting
    written = ckptlab.open(out)
    for i in range(4):
        for j, n in enumerate("qkv"):
            assert torch.equal(written.tensor(f"b.{i}.{n}"), src[f"b.{i}.qkv"][4 * j:4 * j + 4])
    assert torch.equal(written.tensor("norm"), src["norm"])
    report = plan.report()
    assert report.converted == [f"b.{i}.{n}" for i in range(4) for n in "qkv"]
    assert report.row("b.0.k").adapter == "convert 1: chunk 0 of 'b.0.qkv' (output 2 of 3)"
    assert report.summary["converted"] == 12 and set(report.pretrained) == set(tgt)


def test_plan_tensor_alone_keeps_nothing():
    src, tgt = _qkv_pair(2)
    plan = merge.plan(ckptlab.align(src, tgt, recipe=QKV, auto="none"))
    assert torch.equal(merge.merged_tensor(plan, "b.1.v"), src["b.1.qkv"][8:])
    assert plan.waiting == 0


def test_recipe_dtype_casts_floating_tensors_and_keeps_the_matching_ones(tmp_path):
    src = {"layer.weight": torch.randn(3, 3), "layer.norm.weight": torch.randn(3), "layer.bias": torch.randn(3),
           "steps": torch.tensor([7])}
    recipe = {"dtype": {"to": "bfloat16", "keep": "norm|bias"},
              "convert": [{"from": "layer.weight", "to": "layer.weight", "ops": ["transpose"]}]}
    rep = ckptlab.remap(src, src, tmp_path / "o.safetensors", recipe=recipe, auto="none")
    out = ckptlab.open(tmp_path / "o.safetensors")
    assert out.info("layer.weight").dtype == torch.bfloat16
    assert torch.equal(out.tensor("layer.weight"), src["layer.weight"].t().to(torch.bfloat16))
    assert out.info("layer.norm.weight").dtype == torch.float32 and out.info("layer.bias").dtype == torch.float32
    assert out.info("steps").dtype == torch.int64
    assert rep.row("layer.weight").note == "cast float32->bfloat16 loses precision"
    # an explicit dtype argument of the merge wins over the recipe's
    merge.remap(src, src, tmp_path / "f16.pt", recipe=recipe, auto="none", dtype="float16")
    assert ckptlab.open(tmp_path / "f16.pt").info("layer.norm.weight").dtype == torch.float16


# -- the GPT-2 job, through the API and the CLI ---------------------------------------------------
def test_gpt2_conv1d_remapped_and_loaded_gives_the_same_outputs(pair, tmp_path):
    src, dst = pair
    idx = torch.randint(0, 32, (3, 8), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = src(idx)
        ckptlab.remap(src, dst, tmp_path / "nano.safetensors", recipe=TRANSPOSE_RECIPE, auto="none")
        fresh = nanogpt()
        written = ckptlab.open(tmp_path / "nano.safetensors")
        fresh.load_state_dict({k: written.tensor(k) for k in written.keys()}, strict=True)
        assert torch.allclose(fresh.eval()(idx), expected, atol=1e-5)
        warm = nanogpt()
        rep = ckptlab.load_into(warm, src, recipe=TRANSPOSE_RECIPE, auto="none")
        assert len(rep.converted) == 8 and not rep.missing
        assert torch.allclose(warm(idx), expected, atol=1e-5)
        assert torch.equal(warm.h[1].mlp.c_fc.weight, src.h[1].mlp.c_fc.weight.t())


def test_cli_remap_with_a_convert_recipe_and_align_strict(pair, tmp_path, capfd):
    src, dst = pair
    torch.save(src.state_dict(), tmp_path / "gpt2.pt")
    (tmp_path / "r.json").write_text(json.dumps(TRANSPOSE_RECIPE))
    code = main(["align", str(tmp_path / "gpt2.pt"), "tests.zoo.gpt_pair:nanogpt", "--recipe", str(tmp_path / "r.json"),
                 "--json", "--strict"])
    out, err = capfd.readouterr()
    assert code == 0, err
    data = json.loads(out)
    assert data["summary"]["converted"] == 8 and data["warnings"] == []
    code = main(["remap", str(tmp_path / "gpt2.pt"), "tests.zoo.gpt_pair:nanogpt", "--recipe", str(tmp_path / "r.json"),
                 "-o", str(tmp_path / "nano.pt")])
    assert code == 0, capfd.readouterr().err
    out = ckptlab.open(tmp_path / "nano.pt")
    assert torch.equal(out.tensor("h.0.attn.c_proj.weight"), src.h[0].attn.c_proj.weight.detach().t())


def test_verify_compares_the_source_model_with_the_converted_target_on_token_inputs(pair, tmp_path):
    from ckptlab.models.function_check import compare_function

    src, _ = pair
    ckptlab.remap(src, nanogpt(), tmp_path / "n.safetensors", recipe=TRANSPOSE_RECIPE, auto="none")
    idx = torch.randint(0, 32, (2, 8), generator=torch.Generator().manual_seed(2))
    check = compare_function(src, src.state_dict(), nanogpt(), tmp_path / "n.safetensors", inputs=idx)
    assert check.max_abs_diff < 1e-5 and check.target_input_shape == (2, 8)
    # the same file without the conversion's transposes would not even load strictly
    ckptlab.remap(src, nanogpt(), tmp_path / "wrong.safetensors", auto="none", on_mismatch="keep-target")
    wrong = compare_function(src, src.state_dict(), nanogpt(), tmp_path / "wrong.safetensors", inputs=idx)
    assert wrong.max_abs_diff > 1e-2


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_single_element_outputs_of_a_strided_view_are_written(tmp_path, suffix):
    src = {"m": torch.arange(2.0).reshape(1, 1, 2)}  # unbind(-1): two (1, 1) views with stride 2
    recipe = {"convert": [{"from": "m", "to": "m.{e}", "ops": [{"unbind": -1}]}]}
    tgt = {"m.0": torch.zeros(1, 1), "m.1": torch.zeros(1, 1)}
    ckptlab.remap(src, tgt, tmp_path / f"o{suffix}", recipe=recipe, auto="none")
    out = ckptlab.open(tmp_path / f"o{suffix}")
    assert out.tensor("m.0").item() == 0.0 and out.tensor("m.1").item() == 1.0


def test_an_accepted_conversion_suggestion_is_labelled_in_the_reasons():
    from ckptlab.align.matcher import Suggestion, apply_suggestions, build_rows
    from ckptlab.io.checkpoint import Checkpoint
    from ckptlab.recipe.model import Recipe

    src, tgt = _qkv_pair(1)
    fragment = {"convert": QKV["convert"]}
    effective, labels, marked = apply_suggestions(Recipe(), [Suggestion(fragment, "medium", "fused qkv", 3)], "all")
    assert marked[0].applied and effective.convert and labels.convert == {1: "suggested, medium"}
    rows = {r.target: r for r in build_rows(Checkpoint.from_mapping(src), Checkpoint.from_mapping(tgt), effective, labels)}
    assert rows["b.0.k"].reason == "convert 1: chunk 0 of 'b.0.qkv' (output 2 of 3) (suggested, medium)"


def test_a_claimed_source_that_feeds_nothing_says_why():
    src = {"a.w": torch.randn(2, 3), "b.w": torch.randn(3, 2)}
    tgt = {"x.w": torch.zeros(3, 2)}
    recipe = {"map": {"x.w": "b.w"}, "convert": [{"from": "a.w", "to": "x.w", "ops": ["transpose"]},
                                                  {"from": "b.w", "to": "gone.w", "ops": []}]}
    al = ckptlab.align(src, tgt, recipe=recipe, auto="none")
    unused = {r.source: r.reason for r in al.by_status("unused")}
    assert unused == {"a.w": "convert 1 would feed 'x.w', but the map feeds it instead"}
    assert al.row("x.w").source == "b.w"  # the map names a key convert 2 claims: the map wins
    recipe["map"] = {}
    al = ckptlab.align(src, tgt, recipe=recipe, auto="none")
    assert {r.source: r.reason for r in al.by_status("unused")} == {
        "b.w": "convert 2 sends it to 'gone.w', which the target does not have"}


def test_an_adapter_fits_what_a_conversion_gives(tmp_path):
    """A Conv1D head stored (in, out) and grown to more classes: transpose, then pad the new rows.
    The adapter applies to the conversion's output, in memory (tensor) and on disk (remap)."""
    head = torch.randn(3, 4)                                    # Conv1D: (in=3, out=4 classes)
    recipe = {"convert": [{"from": "fc.weight", "to": "fc.weight", "ops": ["transpose"]}],
              "adapt": {"fc.weight": {"op": "pad", "dim": 0}}}  # 4 -> 6 classes, new rows zero
    al = ckptlab.align({"fc.weight": head}, {"fc.weight": torch.ones(6, 3)}, recipe=recipe)
    [row] = al.rows
    assert row.status == "adapted" and row.convert is not None and row.source_shape == (4, 3)
    assert row.reason == "convert 1: transpose of 'fc.weight'; then pad dim 0 (fill zeros) (4, 3) -> (6, 3)"
    out = tmp_path / "grown.safetensors"
    rep = ckptlab.remap({"fc.weight": head}, {"fc.weight": torch.ones(6, 3)}, out, recipe=recipe)
    written = load_file(out)["fc.weight"]
    assert torch.equal(written[:4], head.t()) and not written[4:].any()
    assert rep.new_rows == ["fc.weight"]                        # the grown rows train at the new rate


def test_the_writer_gets_a_converted_view_and_every_other_caller_a_copy(tmp_path):
    """``produce(copy=False)`` (what the writers ask for) gives the transpose as the ops made
    it, a view of the source's mapped bytes, copied once into the output; ``produce()`` (the
    app, load_into) a tensor of its own, even for a group a view-asking call computed."""
    from safetensors.torch import save_file

    src = {"w": torch.randn(6, 10), "qkv": torch.randn(4, 12)}
    save_file(src, tmp_path / "src.safetensors")
    tgt = {"w": torch.zeros(10, 6), **{n: torch.zeros(4, 4) for n in "qkv"}}
    recipe = {"convert": [{"from": "w", "to": "w", "ops": ["transpose"]},
                          {"from": "qkv", "to": ["q", "k", "v"], "ops": [{"chunk": 1}]}]}  # strided parts
    plan = merge.plan(ckptlab.align(ckptlab.open(tmp_path / "src.safetensors"), tgt, recipe=recipe, auto="none"))
    view, own = plan.produce("w", copy=False), plan.produce("w")
    assert not view.is_contiguous() and torch.equal(view, src["w"].t())
    assert own.is_contiguous() and torch.equal(own, src["w"].t())
    by_writer = {o.key: o for o in plan.outputs()}["w"].produce_view()
    assert not by_writer.is_contiguous() and torch.equal(by_writer, src["w"].t())
    first = plan.produce("q", copy=False)  # the group computed for a writer ...
    rest = plan.produce("k")  # ... and its next output asked for by someone else
    assert not first.is_contiguous() and torch.equal(first, src["qkv"][:, :4])
    assert rest.is_contiguous() and torch.equal(rest, src["qkv"][:, 4:8])
