"""The exported script's templates are real Python: each compiles, imports and passes ruff,
and codegen refuses a template whose stand-in it cannot find (rather than write a broken script)."""
from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

from ckptlab.models import codegen

TEMPLATES = sorted(codegen.TEMPLATES.glob("*.py"))
# the classic checks (pyflakes: undefined and unused names; pycodestyle: errors and warnings),
# at the project's line length; --isolated so no stray config changes what is checked
RUFF = ["--isolated", "--select", "E,F,W", "--line-length", "120"]


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_each_template_compiles_and_imports(path):
    compile(path.read_text(encoding="utf-8"), str(path), "exec")
    module = importlib.import_module(f"ckptlab.models.templates.{path.stem}".removesuffix(".__init__"))
    assert module.__doc__                                   # says what codegen takes from it


def test_ruff_finds_nothing_in_the_templates():
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", *RUFF, str(codegen.TEMPLATES)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_template_functions_run_as_the_script_runs_them():
    """The copied blocks are live code: the adapters' module computes (a mean pad of a grown head)."""
    import torch

    from ckptlab.models.templates import adapters

    t = torch.tensor([[1.0, 2.0], [3.0, 6.0]])
    assert torch.equal(adapters.pad_mean(t, 0, 3), torch.tensor([[1.0, 2.0], [3.0, 6.0], [2.0, 4.0]]))


def test_a_stand_in_codegen_cannot_find_is_an_error_not_a_broken_script():
    block = codegen._blocks("model_target")["load_target"]
    with pytest.raises(KeyError, match="MODEL_CLASS"):
        codegen._fill(block, {"MODEL_CLASS": "Net"})
    filled = codegen._fill(block, {"IMPORT_MODEL": "from pkg import Net", "Model": "Net", "SEED": "3",
                                   "KWARGS": "{'n': 1}"})
    assert "        model = Net(**{'n': 1})\n" in filled and "torch.manual_seed(3)" in filled


def test_every_block_the_script_needs_is_in_the_templates():
    names = {t: set(codegen._blocks(t)) for t in ("script", "adapters", "convert", "finetune", "model_target")}
    assert {"__doc__", "load_state_dict", "load_target", "rename", "out_dtype", "remap", "save", "main",
            "__main__"} <= names["script"]
    assert set(codegen._ADAPTER_BLOCKS.values()) | {"PAD", "adapt"} <= names["adapters"]
    assert {"convert", "run_ops", "key_regex"} <= names["convert"]
    assert {"PRETRAINED", "param_groups"} <= names["finetune"] and "load_target" in names["model_target"]
