"""A bad recipe is reported in one line naming the recipe file and the problem, in the words of
its format: a ``.json`` recipe is parsed as JSON (its line and column), never called "YAML"."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from ckptlab.cli import main
from ckptlab.errors import RecipeError
from ckptlab.recipe.model import Recipe

BAD_JSON = [
    ('{"rules": [{"strip_prefix": "a"},, ]}', "line 1, column 34: Expecting value"),
    ('{\n  "rules": [],\n  "map": {"x": "y",}\n}\n', "line 3, column 20: Expecting property name enclosed in double quotes"),
    ("rules: []\n", "line 1, column 1: Expecting value"),  # YAML in a .json file is not JSON
]


@pytest.mark.parametrize("text, where", BAD_JSON)
def test_a_bad_json_recipe_is_reported_as_json_with_its_line_and_column(tmp_path, text, where):
    path = tmp_path / "r.json"
    path.write_text(text)
    with pytest.raises(RecipeError) as info:
        Recipe.load(path)
    assert str(info.value) == f"{path}: recipe: not valid JSON at {where}"


def test_json_text_without_a_file_name_is_reported_as_json_and_yaml_text_as_yaml():
    with pytest.raises(RecipeError, match=r"^recipe: not valid JSON at line 1, column 12: Expecting value$"):
        Recipe.from_text('{"rules": [}')
    with pytest.raises(RecipeError, match=r"^recipe: not valid YAML at line 2, column 1: "):
        Recipe.from_text("rules: [\n")
    # YAML flow style that is not JSON still reads (JSON is tried first, then YAML)
    assert Recipe.from_text("{rules: [{strip_prefix: a.}]}").to_dict() == {"rules": [{"strip_prefix": "a."}]}


@pytest.mark.parametrize("name, text, problem", [
    ("twice.json", '{"map": {"a": "b"}, "rules": [], "map": {"c": "d"}}',
     "recipe: not valid JSON: key 'map' given twice in one object"),
    ("twice.yaml", "map:\n  a: b\n  c: d\n  a: e\n",
     "recipe: key 'a' given twice at line 4, column 3 (the first one would be lost)"),
])
def test_a_recipe_naming_one_key_twice_is_refused(tmp_path, name, text, problem):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(RecipeError) as info:
        Recipe.load(path)
    assert str(info.value) == f"{path}: {problem}"


def _run(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_invert_errors_name_the_recipe_file(capsys, tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("rules:\n  - drop: fc\n")
    code, out, err = _run(capsys, "invert", recipe, "-o", tmp_path / "inv.yaml")
    assert (code, out) == (1, "")
    assert err.splitlines() == [f"ckptlab: error: {recipe}: recipe cannot be inverted: rule 1 (drop) cannot be "
                                "undone (--partial leaves them out)"]
    bad = tmp_path / "bad.json"
    bad.write_text('{"rules": [}')
    code, out, err = _run(capsys, "invert", bad, "-o", tmp_path / "inv.yaml")
    assert err.splitlines() == [f"ckptlab: error: {bad}: recipe: not valid JSON at line 1, column 12: Expecting value"]
    assert not (tmp_path / "inv.yaml").exists()


@pytest.mark.parametrize("command", ["align", "remap", "diff"])
def test_a_recipe_that_does_not_fit_the_source_names_the_recipe_file(capsys, tmp_path, command):
    save_file({"a.w": torch.ones(2, 2)}, tmp_path / "s.safetensors")
    recipe = tmp_path / "r.json"
    recipe.write_text('{"convert": [{"from": "zz.{i}", "to": "yy.{i}", "ops": ["transpose"]}]}')
    extra = ["-o", tmp_path / "out.safetensors"] if command == "remap" else []
    code, out, err = _run(capsys, command, tmp_path / "s.safetensors", tmp_path / "s.safetensors", *extra,
                          "--recipe", recipe)
    assert (code, out) == (1, "")
    assert err.splitlines() == [f"ckptlab: error: {recipe}: convert 1: 'zz.{{i}}' matches no source key"]
