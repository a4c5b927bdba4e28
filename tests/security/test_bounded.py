"""Bounded work per visitor (issue 18.3, 18.4, 18.8): recipes and keys cannot stall the server.

A rule or key pattern that backtracks catastrophically ends in a one-line ``RecipeError``
naming the rule (the ``regex`` engine's timeout, ``MAX_MATCH_SECONDS``); a pattern past
``MAX_PATTERN_CHARS`` or a rule that grows keys past ``MAX_KEY_CHARS`` is refused. A recipe
whose aliases or merge keys expand past ``MAX_RECIPE_NODES`` (a "billion laughs", nested
merges), or that nests deeper than ``MAX_RECIPE_DEPTH`` (YAML or JSON), is refused in one
line, never a ``RecursionError``. A key past ``MAX_KEY_CHARS`` is refused by every reader
(zip, legacy, safetensors, index, DCP, flattened nested dicts), and keys past
``MAX_TOTAL_KEY_CHARS`` in all by the unpickler. Every case runs under a hang guard (an
alarm or a subprocess timeout), not a benchmark.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import warnings
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import ckptlab
from ckptlab.errors import LimitError, RecipeError
from ckptlab.io import limits
from ckptlab.recipe.model import Recipe
from ckptlab.recipe.parsing import _yaml_load
from tests.security.conftest import assert_one_line
from tests.security.crafted import Ops, as_zip

REPO = Path(__file__).resolve().parents[2]
HANG_SECONDS = 30  # hang guard, not a benchmark


@contextmanager
def hang_guard(seconds: int = HANG_SECONDS):
    def fail(*_):
        raise AssertionError(f"still running after {seconds} s")
    old = signal.signal(signal.SIGALRM, fail)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ckptlab", *map(str, args)], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})


def assert_cli_one_line(proc: subprocess.CompletedProcess, *needles: str) -> str:
    assert proc.returncode != 0 and proc.stdout == "", proc.stdout[-500:]
    line = proc.stderr.strip()
    assert line.startswith("ckptlab: error: ") and "\n" not in line and "Traceback" not in line, proc.stderr[-2000:]
    for needle in needles:
        assert needle in line, line
    return line


# -- patterns ------------------------------------------------------------------------------
def test_a_catastrophic_rule_pattern_ends_in_one_line_naming_the_rule(tmp_path):
    recipe = tmp_path / "hostile.yaml"
    recipe.write_text("rules:\n- strip_prefix: m.\n- drop: '(a+)+$'\n")
    assert len(recipe.read_bytes()) < 64  # a few dozen bytes, as the red team's
    src = tmp_path / "src.pt"
    torch.save({"a" * 1000 + "!": torch.ones(1), "w": torch.ones(2)}, src)
    line = assert_cli_one_line(cli("align", src, src, "--recipe", recipe),
                               "rule 2 (drop '(a+)+$')", "MAX_MATCH_SECONDS")
    assert str(recipe) in line


@pytest.mark.parametrize("rule", [{"drop": "(a+)+$"}, {"keep": "(a|a)+$"}, {"replace": {"pattern": r"(\w+\.?)+$", "with": "x"}}])
def test_every_regex_rule_kind_is_time_bounded(rule):
    recipe = Recipe.from_dict({"rules": [{"add_prefix": "p_"}, rule]})
    with hang_guard(), pytest.raises(RecipeError, match=r"^rule 2 \(.*MAX_MATCH_SECONDS") as err:
        recipe.rename(["w", "a" * 1000 + "!"])
    assert_one_line(err.value)
    with hang_guard(), pytest.raises(RecipeError, match="MAX_MATCH_SECONDS"):
        recipe.rules[1].apply("a" * 1000 + "!")


def test_the_dtype_keep_pattern_is_time_bounded():
    recipe = Recipe.from_dict({"dtype": {"to": "bfloat16", "keep": "(a+)+$"}})
    with hang_guard(), pytest.raises(RecipeError, match=r"dtype \(keep\).*MAX_MATCH_SECONDS"):
        recipe.dtype.casts("a" * 1000 + "!")


def test_a_convert_key_pattern_that_backtracks_is_time_bounded(tmp_path):
    """``{a}_{a}_{b}_{b}_...``: back-references over every split of a key of underscores."""
    recipe = Recipe.from_dict({"convert": [{"from": "{a}_{a}_{b}_{b}_{c}_{c}_{d}_{d}", "to": "out.{a}.{b}.{c}.{d}",
                                            "ops": []}]})
    src = tmp_path / "src.pt"
    torch.save({"_" * 600 + "!": torch.ones(1)}, src)
    with hang_guard(), pytest.raises(RecipeError, match="MAX_MATCH_SECONDS") as err:
        ckptlab.align(src, src, recipe=recipe)
    assert_one_line(err.value)
    dotted = Recipe.from_dict({"convert": [{"from": "blocks.{i}.w", "to": "layers.{i}.w", "ops": []}]})
    assert dotted.convert[0].from_patterns[0].match("blocks.7.w") == {"i": "7"}  # linear: plain re


def test_a_pattern_past_the_length_limit_is_refused():
    with pytest.raises(RecipeError, match=r"rule 1 \(drop\): pattern of 2,000 characters exceeds the limit MAX_PATTERN_CHARS"):
        Recipe.from_dict({"rules": [{"drop": "a" * 2000}]})
    with pytest.raises(RecipeError, match="MAX_PATTERN_CHARS"):
        Recipe.from_dict({"convert": [{"from": "a" * 2000 + ".{i}", "to": "b.{i}", "ops": []}]})
    with pytest.raises(RecipeError, match="groups nested too deeply|bad regex") as err:
        Recipe.from_dict({"rules": [{"drop": "(" * 500 + ")" * 500}]})
    assert_one_line(err.value)


def test_a_rule_cannot_grow_a_key_past_the_key_limit():
    doubling = {"replace": {"pattern": "^(.*)$", "with": r"\1\1"}}
    recipe = Recipe.from_dict({"rules": [doubling] * 40})
    with hang_guard(), pytest.raises(RecipeError, match=r"rule 10 \(replace .*MAX_KEY_CHARS = 1,024"):
        recipe.rename(["ab"])
    assert Recipe.from_dict({"rules": [doubling] * 3}).rename(["ab"])["ab"][0] == "ab" * 8


# -- recipe documents ---------------------------------------------------------------------------
LAUGHS = "a: &a [x,x,x,x,x,x,x,x,x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{','.join([f'*{chr(97 + i)}'] * 9)}]\n" for i in range(8)) + "rules: *i\n"
NESTED_MERGES = "x0: &x0 {a: 1, b: 2}\n" + "".join(
    f"x{i}: &x{i} {{<<: [*x{i - 1}, *x{i - 1}], c{i}: *x{i - 1}}}\n" for i in range(1, 12))  # ~400 bytes
DOCUMENTS = {
    "billion_laughs.yaml": (LAUGHS, "MAX_RECIPE_NODES"),
    "nested_merges.yaml": (NESTED_MERGES, "MAX_RECIPE_NODES"),
    "self_alias.yaml": ("rules: &r [*r]\n", "refers to the value that holds it"),
    "deep.yaml": ("rules: " + "[" * 50_000 + "]" * 50_000 + "\n", "MAX_RECIPE_DEPTH"),
    "deep_block.yaml": ("rules:\n" + "".join("  " * i + "- \n" for i in range(200)), "MAX_RECIPE_DEPTH"),
    "deep.json": ('{"rules": ' + "[" * 100_000 + "]" * 100_000 + "}", "MAX_RECIPE_DEPTH"),
    "deep_sniffed.txt": ('{"rules": ' + "[" * 100_000 + "]" * 100_000 + "}", "MAX_RECIPE_DEPTH"),
}


@pytest.mark.parametrize("name", list(DOCUMENTS))
def test_a_hostile_recipe_document_is_refused_in_one_line(tmp_path, name):
    text, needle = DOCUMENTS[name]
    path = tmp_path / name
    path.write_text(text)
    with hang_guard(), pytest.raises(RecipeError, match=needle) as err:
        Recipe.load(path)
    assert_one_line(err.value)


def test_small_nested_merges_are_fine_and_the_hostile_one_is_small():
    assert len(NESTED_MERGES.encode()) < 437
    small = _yaml_load(NESTED_MERGES.split("x6:")[0])
    assert small["x5"]["c5"]["c4"]["a"] == 1 and small["x5"]["a"] == 1


def test_the_cli_names_the_depth_limit_not_a_recursion_error(tmp_path):
    path = tmp_path / "deep.json"
    path.write_text(DOCUMENTS["deep.json"][0])
    src = REPO / "sample_ckpts" / "convnet_rgb.pt"
    assert_cli_one_line(cli("align", src, src, "--recipe", path), "MAX_RECIPE_DEPTH")


def test_an_ordinary_recipe_with_aliases_and_merges_still_loads():
    text = ("rules:\n- &strip {strip_prefix: module.}\n- replace: &rep {pattern: '^a\\.', with: 'b.'}\n"
            "- replace: {<<: *rep, with: 'c.'}\n")
    recipe = Recipe.from_text(text)
    assert [r.describe() for r in recipe.rules] == ["strip_prefix 'module.'", "replace '^a\\.' -> 'b.'",
                                                    "replace '^a\\.' -> 'c.'"]


# -- keys -------------------------------------------------------------------------------------
LONG = "k" * 80_000


def long_key_files(tmp_path: Path) -> dict[str, Path]:
    """One 80,000-character key in every format ckptlab reads, and a flattened one."""
    out = {"zip": tmp_path / "long.pt", "legacy": tmp_path / "long_legacy.pt",
           "safetensors": tmp_path / "long.safetensors", "flattened": tmp_path / "flat.pt"}
    torch.save({LONG: torch.ones(1), "w": torch.ones(2)}, out["zip"])
    torch.save({LONG: torch.ones(1), "w": torch.ones(2)}, out["legacy"], _use_new_zipfile_serialization=False)
    save_file({LONG: torch.ones(1), "w": torch.ones(2)}, str(out["safetensors"]))
    # each key within the limit, the dotted keys of the nested parts past it
    torch.save({"a" * 600: {"b" * 600: torch.ones(1)}, "c" * 600: {"d" * 600: torch.ones(1)}, "w": torch.ones(1)},
               out["flattened"])
    shards = tmp_path / "sharded"
    shards.mkdir()
    save_file({"w": torch.ones(2)}, str(shards / "model-00001-of-00001.safetensors"))
    out["index"] = shards / "model.safetensors.index.json"
    out["index"].write_text(json.dumps({"metadata": {}, "weight_map": {LONG: "model-00001-of-00001.safetensors",
                                                                       "w": "model-00001-of-00001.safetensors"}}))
    import torch.distributed.checkpoint as dcp

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dcp.save({LONG[:3000]: torch.ones(2), "w": torch.ones(1)}, checkpoint_id=str(tmp_path / "dcp"))
    out["dcp"] = tmp_path / "dcp"
    return out


def test_a_long_key_is_refused_by_every_reader(tmp_path):
    for form, path in long_key_files(tmp_path).items():
        with hang_guard(), pytest.raises(LimitError, match=r"characters\) exceeds the limit MAX_KEY_CHARS = 1,024") as err:
            ckptlab.open(path)
        assert_one_line(err.value)
        assert len(str(err.value)) < 300, form


@pytest.mark.parametrize("command", ["inspect", "align", "stats", "diff"])
def test_a_long_key_ends_every_command_in_one_line(tmp_path, command):
    path = tmp_path / "long.pt"
    torch.save({"0." * 40_000: torch.ones(1), "w": torch.ones(2)}, path)  # numbered parts: the costly kind
    args = [path] if command in ("inspect", "stats") else [path, path]
    assert_cli_one_line(cli(command, *args), "MAX_KEY_CHARS")


def test_keys_past_the_total_limit_are_refused_while_unpickling(tmp_path):
    """70,000 dicts each given one memo-shared 1,000-character key: 70 M characters of keys in 1 MB."""
    n = limits.MAX_TOTAL_KEY_CHARS // 1000 + 10
    ops = Ops().empty_dict().str("w").tensor().setitem().str("many").empty_list()
    ops.str("k" * 1000).put(1).pop()
    for _ in range(n):
        ops.empty_dict().get(1).int(1).setitem().raw(b"a")  # APPEND
    path = as_zip(tmp_path / "many.pt", ops.setitem().stop())
    assert path.stat().st_size < 2_000_000
    with hang_guard(), pytest.raises(LimitError, match="characters of all keys .* MAX_TOTAL_KEY_CHARS") as err:
        ckptlab.open(path)
    assert_one_line(err.value)


def test_keys_made_by_a_call_are_bounded_too(tmp_path):
    """``OrderedDict([(key, tensor)])``: a dict made by an allowed call, not by SETITEM."""
    ops = Ops().glob("collections", "OrderedDict").mark().mark().str("k" * 5000).tensor().tuple().raw(b"l")
    ops.tuple1().reduce()
    path = as_zip(tmp_path / "od.pt", ops.stop())
    with pytest.raises(LimitError, match="MAX_KEY_CHARS"):
        ckptlab.open(path)


def test_folding_a_key_of_many_numbered_parts_costs_a_bounded_number_of_templates():
    from ckptlab.align.keyfold import MAX_FOLD_PARTS, _templates, fold_keys

    key = ".".join(str(i) for i in range(500))[:1000]
    assert len(_templates(key)) == MAX_FOLD_PARTS == 8
    assert [f.pattern for f in fold_keys([f"layers.{i}.w" for i in range(3)])] == ["layers.{0..2}.w"]


def test_freeze_and_train_as_new_patterns_are_time_bounded():
    """The app's fine-tune panel takes these regexes from a visitor, like recipe rules."""
    from ckptlab.recipe import edits as editing
    from ckptlab.models import finetune

    keys = ["a" * 1000 + "!"]
    with hang_guard(), pytest.raises(RecipeError, match="train-as-new pattern: .*MAX_MATCH_SECONDS"):
        editing.pretrained_keys(keys, "(a+)+$")
    with hang_guard(), pytest.raises(RecipeError, match="freeze pattern: .*MAX_MATCH_SECONDS"):
        finetune._compile("(a+)+$").search(keys[0])
    assert finetune._compile("^backbone\\.").search("backbone.w") and editing.pretrained_keys(["h.w", "b.w"], "^h") == ["b.w"]


def test_a_flat_tuple_is_held_to_the_hashing_limit_too():
    """Tuples of plain values (shapes, strides, storage ids) skip the nesting bookkeeping; one
    of ``MAX_TUPLE_EXPANSION`` items still costs more than the limit to hash, and is refused."""
    import io

    from ckptlab.io.formats.unpickler import restricted_load

    def tuple_of(n: int) -> bytes:
        return b"\x80\x02(" + b"N" * n + b"t."

    n = limits.MAX_TUPLE_EXPANSION - 1
    assert restricted_load(io.BytesIO(tuple_of(n)), "ok.pkl")[0] == (None,) * n
    with hang_guard(), pytest.raises(LimitError, match="MAX_TUPLE_EXPANSION") as err:
        restricted_load(io.BytesIO(tuple_of(n + 1)), "flat.pkl")
    assert_one_line(err.value)
