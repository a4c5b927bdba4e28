"""Recipe.inverted: a remap followed by the remap with the inverted recipe gives back every
tensor bit for bit (property-tested over random recipes of invertible rules and ops); what
cannot be undone is named in one line, or left out with partial=True."""
from __future__ import annotations

import json
import subprocess

import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ckptlab
from ckptlab.cli import main
from ckptlab.errors import RecipeError
from ckptlab.recipe.groups import find_groups
from ckptlab.recipe.model import Recipe

KINDS = ("transpose", "permute", "reshape", "squeeze", "unsqueeze", "chunk", "split", "cat", "stack", "unbind",
         "rope", "chain")
RENAMES = [{"strip_prefix": "model."}, {"add_prefix": "net."}, {"replace": {"pattern": "plain", "with": "flat"}}]


@st.composite
def jobs(draw):
    """(source tensors, recipe): every source key feeds something, every op can be undone."""
    layers = draw(st.integers(1, 2))
    kinds = draw(st.lists(st.sampled_from(KINDS), min_size=1, max_size=4, unique=True))
    dtype = draw(st.sampled_from([torch.float32, torch.bfloat16, torch.int64]))
    n = st.integers(1, 3)
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**16)))

    def t(*shape):
        return (torch.randn(shape, generator=gen) * 100).to(dtype)

    src, convert = {}, []
    for f, kind in enumerate(kinds):
        a, b, c = draw(n), draw(n), draw(n)
        key = f"model.{kind}.{{i}}"
        for i in range(layers):
            at = key.replace("{i}", str(i))
            if kind in ("transpose", "reshape", "unsqueeze"):
                src[at] = t(a, b)
            elif kind == "permute":
                src[at] = t(a, b, c)
            elif kind == "squeeze":
                src[at] = t(a, 1, b)
            elif kind in ("chunk", "chain"):
                src[at] = t(3 * a, b)
            elif kind == "split":
                src[at] = t(a + b, c)
            elif kind == "cat":
                src[at + ".x"], src[at + ".y"] = t(a, c), t(b, c)
            elif kind == "stack":
                for e in range(a + 1):
                    src[f"{at}.e.{e}"] = t(b, c)
            elif kind == "unbind":
                src[at] = t(a, b, c)
            elif kind == "rope":
                src[at] = t(2 * a * b, c)
        out = f"out.{kind}.{{i}}"
        entry = {"transpose": {"from": key, "to": out, "ops": ["transpose"]},
                 "permute": {"from": key, "to": out, "ops": [{"permute": draw(st.permutations([0, 1, 2]))}]},
                 "reshape": {"from": key, "to": out, "ops": [{"reshape": [-1]}]},
                 "unsqueeze": {"from": key, "to": out, "ops": [{"unsqueeze": draw(st.integers(-3, 2))}]},
                 "squeeze": {"from": key, "to": out, "ops": [{"squeeze": 1}]},
                 "chunk": {"from": key, "to": [out + ".q", out + ".k", out + ".v"], "ops": [{"chunk": 0}]},
                 "chain": {"from": key, "to": [out + ".a", out + ".b", out + ".c"],
                           "ops": ["transpose", {"chunk": 1}, {"unsqueeze": 0}]},
                 "split": {"from": key, "to": [out + ".a", out + ".b"], "ops": [{"split": {"dim": 0, "sizes": [a, b]}}]},
                 "cat": {"from": [key + ".x", key + ".y"], "to": out, "ops": [{"cat": 0}]},
                 "stack": {"from": key + ".e.{e}", "to": out, "ops": [{"stack": draw(st.integers(0, 2))}]},
                 "unbind": {"from": key, "to": out + ".e.{e}", "ops": [{"unbind": draw(st.integers(-3, 2))}]},
                 "rope": {"from": key, "to": out, "ops": [{"rope_permute": {"heads": a}}]}}[kind]
        convert.append(entry)
    for i in range(layers):
        src[f"model.plain.{i}.w"] = t(2, 2)
    src["model.special"] = t(3)
    # in this order: strip_prefix must see the prefix (see ckptlab.recipe.invert on its assumption)
    rules = [RENAMES[i] for i in sorted(draw(st.sets(st.integers(0, len(RENAMES) - 1))))]
    recipe = {"rules": rules, "convert": convert, "map": {"special.target": "model.special"}}
    return src, recipe


def _target_of(src: dict, recipe: Recipe) -> dict:
    """The target's keys and shapes for this recipe (values are never read: all are fed)."""
    shapes = {k: tuple(v.shape) for k, v in src.items()}
    found = find_groups(recipe.convert, shapes)
    out = {}
    for g in found.groups:
        for key, shape in zip(g.targets, g.target_shapes):
            out[key] = torch.zeros(shape, dtype=src[g.sources[0]].dtype)
    for key, (new, _) in recipe.rename([k for k in src if k not in found.claimed]).items():
        if key not in recipe.map.values():
            out[new] = torch.zeros_like(src[key])
    for target, source in recipe.map.items():
        out[target] = torch.zeros_like(src[source])
    return out


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(jobs())
def test_remap_then_remap_with_the_inverted_recipe_gives_back_every_tensor_bit_for_bit(tmp_path_factory, job):
    src, recipe_dict = job
    recipe = Recipe.from_dict(recipe_dict)
    folder = tmp_path_factory.mktemp("inv")
    target = _target_of(src, recipe)
    forward = ckptlab.remap(src, target, folder / "fwd.safetensors", recipe=recipe, auto="none")
    assert not forward.missing and not forward.unused
    inverse = recipe.inverted(shapes={k: v.shape for k, v in src.items()})
    assert Recipe.from_text(inverse.to_yaml()) == inverse
    back = ckptlab.remap(folder / "fwd.safetensors", src, folder / "back.pt", recipe=inverse, auto="none")
    assert not back.missing and not back.unused
    got = ckptlab.open(folder / "back.pt")
    assert sorted(got.keys()) == sorted(src)
    for key, value in src.items():
        t = got.tensor(key)
        assert t.dtype == value.dtype and t.shape == value.shape and torch.equal(t, value), key


def test_inverted_recipe_reads_like_one_written_by_hand():
    recipe = Recipe.from_dict({
        "rules": [{"strip_prefix": "module."}, {"replace": {"pattern": r"^conv1\.", "with": "backbone_conv."}}],
        "map": {"head.w": "fc.w"},
        "adapt": {"backbone_conv.weight": {"op": "pad", "dim": 1}},
        "convert": [{"from": "blocks.{i}.attn.qkv.weight", "to": ["l.{i}.q", "l.{i}.k", "l.{i}.v"], "ops": [{"chunk": 0}]},
                    {"from": "layers.{i}.wq", "to": "layers.{i}.q_proj", "ops": [{"rope_permute": {"heads": 8}}]},
                    {"from": "e.{i}.experts.{e}.w1", "to": "e.{i}.w1", "ops": [{"stack": 0}]}]})
    assert recipe.inverted().to_dict() == {
        "rules": [{"replace": {"pattern": r"^backbone_conv\.", "with": "conv1."}}, {"add_prefix": "module."}],
        "map": {"fc.w": "head.w"},
        "adapt": {"module.conv1.weight": {"op": "truncate", "dim": 1}},
        "convert": [{"from": ["l.{i}.q", "l.{i}.k", "l.{i}.v"], "to": "blocks.{i}.attn.qkv.weight", "ops": [{"cat": 0}]},
                    {"from": "layers.{i}.q_proj", "to": "layers.{i}.wq", "ops": [{"rope_unpermute": {"heads": 8}}]},
                    {"from": "e.{i}.w1", "to": "e.{i}.experts.{e}.w1", "ops": [{"unbind": 0}]}]}
    assert recipe.inverted().inverted(partial=True).to_dict()["convert"] == recipe.to_dict()["convert"]


def test_what_cannot_be_undone_is_named_in_one_line_or_left_out_with_partial():
    recipe = Recipe.from_dict({
        "rules": [{"drop": r"^fc\."}, {"strip_prefix": "module."}, {"keep": "backbone"},
                  {"replace": {"pattern": r"^layer(\d+)", "with": r"block\1"}}],
        "adapt": {"fc.weight": {"op": "truncate"}},
        "convert": [{"from": "a.{i}", "to": "b.{i}", "ops": [{"narrow": {"dim": 0, "start": 0, "length": 2}}]},
                    {"from": "c.{i}", "to": "d.{i}", "ops": [{"reshape": [-1]}]},
                    {"from": "e.{i}", "to": "f.{i}", "ops": ["transpose"]}],
        "dtype": {"to": "bfloat16"}})
    with pytest.raises(RecipeError) as info:
        recipe.inverted()
    message = str(info.value)
    assert "\n" not in message
    assert message == ("recipe cannot be inverted: rule 4 (replace), rule 3 (keep), rule 1 (drop), convert 1 "
                       "(narrow), convert 2 (reshape: needs the source shapes), adapt 'fc.weight' (truncate) and "
                       "1 more cannot be undone (partial=True leaves them out)")
    partial = recipe.inverted(partial=True)
    assert partial.to_dict() == {"rules": [{"add_prefix": "module."}],
                                 "convert": [{"from": "f.{i}", "to": "e.{i}", "ops": ["transpose"]}]}
    assert len(partial.skipped) == 7
    assert partial.skipped[0] == r"rule 4 (replace '^layer(\d+)' -> 'block\1')"
    assert partial.skipped[-1] == "dtype (cast to bfloat16: a cast loses bits)"
    # the shapes of the source make a reshape invertible
    with_shapes = recipe.inverted(partial=True, shapes={"c.0": (2, 3), "e.0": (2, 3)})
    assert with_shapes.to_dict()["convert"][0] == {"from": "d.{i}", "to": "c.{i}", "ops": [{"reshape": [2, 3]}]}


def test_cli_invert_writes_the_inverse_and_names_what_it_cannot_undo(tmp_path, capfd):
    forward = {"rules": [{"add_prefix": "net."}, {"drop": "fc"}],
               "convert": [{"from": "h.{i}.w", "to": "h.{i}.w", "ops": ["transpose"]}]}
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(forward))
    cmd = ["invert", str(tmp_path / "r.yaml"), "-o", str(tmp_path / "inv.yaml")]

    def invert(argv: list[str]) -> subprocess.CompletedProcess:
        code = main(argv)
        return subprocess.CompletedProcess(argv, code, *capfd.readouterr())

    run = invert(cmd)
    assert run.returncode == 1 and run.stdout == ""
    assert run.stderr.strip().splitlines() == [
        f"ckptlab: error: {tmp_path / 'r.yaml'}: recipe cannot be inverted: rule 2 (drop) cannot be undone "
        "(--partial leaves them out)"]
    assert not (tmp_path / "inv.yaml").exists()
    run = invert(cmd + ["--partial", "--json"])
    assert run.returncode == 0, run.stderr
    data = json.loads(run.stdout)
    assert data["skipped"] == ["rule 2 (drop 'fc')"]
    assert data["recipe"] == Recipe.load(tmp_path / "inv.yaml").to_dict() == {
        "rules": [{"strip_prefix": "net."}], "convert": [{"from": "h.{i}.w", "to": "h.{i}.w", "ops": ["transpose"]}]}
    assert "left out" in run.stderr


# -- stacking: the stacked tensor does not keep which index each slice had ------------------------
STACK = {"convert": [{"from": "l.{i}.experts.{e}.w1.weight", "to": "l.{i}.experts.w1", "ops": [{"stack": 0}]}]}


def _experts(indices, layers=1):
    """Each expert's tensor holds its own index (so a slice written under another name shows)."""
    return {f"l.{i}.experts.{e}.w1.weight": torch.full((2, 3), float(100 * i + int(e)))
            for i in range(layers) for e in indices}


def _forward(src, folder):
    recipe = Recipe.from_dict(STACK)
    target = _target_of(src, recipe)
    ckptlab.remap(src, target, folder / "fwd.safetensors", recipe=recipe, auto="none")
    return recipe, ckptlab.open(folder / "fwd.safetensors")


def test_twelve_experts_stack_in_numeric_order_and_come_back_bit_for_bit(tmp_path):
    # the source lists them in string order (0, 1, 10, 11, 2, ...): the stack takes 10 after 9
    src = dict(sorted(_experts(range(12), layers=2).items()))
    recipe, fwd = _forward(src, tmp_path)
    stacked = fwd.tensor("l.1.experts.w1")
    assert stacked[:, 0, 0].tolist() == [100.0 + e for e in range(12)]
    inverse = recipe.inverted(shapes={k: v.shape for k, v in src.items()})
    back = ckptlab.remap(tmp_path / "fwd.safetensors", src, tmp_path / "back.pt", recipe=inverse, auto="none")
    assert not back.missing and not back.unused
    got = ckptlab.open(tmp_path / "back.pt")
    assert sorted(got.keys()) == sorted(src)
    for key, value in src.items():
        assert torch.equal(got.tensor(key), value), key


@pytest.mark.parametrize("indices", [(0, 2, 5), (1, 2, 3), ("00", "01")])
def test_experts_not_numbered_0_to_n_minus_1_are_refused_by_invert_with_the_source_shapes(tmp_path, indices):
    src = _experts(indices)
    recipe, _ = _forward(src, tmp_path)
    with pytest.raises(RecipeError) as info:
        recipe.inverted(shapes={k: v.shape for k, v in src.items()})
    shown = ", ".join(str(e) for e in indices)
    assert str(info.value) == (f"recipe cannot be inverted: convert 1 (stack of {{e}} = {shown}) cannot be undone "
                               "(partial=True leaves them out)")
    partial = recipe.inverted(partial=True, shapes={k: v.shape for k, v in src.items()})
    assert partial.convert == []
    assert partial.skipped == [f"convert 1 (stack of {{e}} = {shown} in 'l.0.experts.{{e}}.w1.weight': an unbind "
                               f"names its {len(indices)} slices 0..{len(indices) - 1})"]


def test_an_inverse_made_without_shapes_refuses_to_unbind_onto_other_expert_numbers(tmp_path):
    src = _experts((0, 2, 5))
    recipe, _ = _forward(src, tmp_path)
    inverse = recipe.inverted()  # the recipe text alone cannot know the indices
    with pytest.raises(RecipeError) as info:
        ckptlab.remap(tmp_path / "fwd.safetensors", src, tmp_path / "back.pt", recipe=inverse, auto="none")
    assert str(info.value) == ("convert 1: unbind of 'l.0.experts.w1' names its slices "
                               "'l.0.experts.{e}.w1.weight' for {e} = 0..2, the target has {e} = 0, 2, 5 "
                               "(a stacked tensor does not keep its indices)")
    assert not (tmp_path / "back.pt").exists()
    # a target holding every slice's name, and more, is fed in order as before (a partial feed)
    wider = _experts(range(4))
    rows = {r.target: r for r in ckptlab.align(tmp_path / "fwd.safetensors", wider, recipe=inverse, auto="none").rows}
    assert [rows[f"l.0.experts.{e}.w1.weight"].status for e in range(4)] == ["converted"] * 3 + ["missing"]
