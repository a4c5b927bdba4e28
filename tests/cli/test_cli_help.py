"""``ckptlab --help`` and every subcommand's ``--help`` import no torch; ``import ckptlab`` is lazy.

Every command listed in ``ckptlab.cli.COMMANDS`` is held to it: a subcommand module must
register its parser with light imports and import the heavy core inside ``func``.
"""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import ckptlab
from ckptlab.cli import COMMANDS
from tests.paths import ROOT

HEAVY = ("torch", "numpy", "pandas", "safetensors", "streamlit", "rich", "yaml", "transformers")

PROBE = r"""
import contextlib, io, json, sys
from ckptlab.cli import COMMANDS, build_parser, main
parser = build_parser()
after_build = sorted(m for m in sys.modules if m.split(".")[0] in HEAVY)
helps = {}
for argv in [["--help"], []] + [[c, "--help"] for c in COMMANDS]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:
            code = exc.code
    helps[" ".join(argv) or "(none)"] = [code, out.getvalue(), err.getvalue()]
registered = sorted(parser._subparsers._group_actions[0].choices)
heavy = sorted(m for m in sys.modules if m.split(".")[0] in HEAVY)
print(json.dumps({"after_build": after_build, "heavy": heavy, "helps": helps, "registered": registered}))
"""


def _probe() -> dict:
    code = f"HEAVY = {HEAVY!r}\n" + PROBE
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_help_of_every_command_imports_no_torch():
    probe = _probe()
    assert probe["after_build"] == [], f"building the parser imported {probe['after_build']}"
    assert probe["heavy"] == [], f"--help imported {probe['heavy']}"
    present = [c for c in COMMANDS if importlib.util.find_spec(f"ckptlab.cli.{c}_cmd") is not None]
    assert probe["registered"] == sorted(present)
    for command in present:
        code, out, _ = probe["helps"][f"{command} --help"]
        assert code == 0 and out.startswith(f"usage: ckptlab {command}"), (command, out)
    code, out, _ = probe["helps"]["--help"]
    assert code == 0 and all(c in out for c in present)
    code, _, err = probe["helps"]["(none)"]  # bare `ckptlab`: the usage, fast, and exit 2
    assert code == 2 and err.startswith("usage: ckptlab")


def test_import_ckptlab_is_lazy_and_every_public_name_works():
    code = ("import sys, ckptlab; print('torch' in sys.modules); ckptlab.Recipe; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]  # recipes need no torch either
    for name in ckptlab.__all__:
        assert getattr(ckptlab, name) is not None, name
    assert callable(ckptlab.open) and ckptlab.open.__module__ == "ckptlab.io.opener"


def test_align_stays_the_function_after_its_module_is_imported():
    import ckptlab.align as by_import  # noqa: PLC0415 - the point of the test
    from ckptlab.align import Alignment  # the old path users hold
    from ckptlab.recipe import Recipe

    assert callable(ckptlab.align) and ckptlab.align.__name__ == "align"
    assert by_import is ckptlab.align
    assert ckptlab.Alignment is Alignment
    assert sys.modules["ckptlab.align"].align is ckptlab.align
    assert sys.modules["ckptlab.align.matcher"].align is ckptlab.align
    assert ckptlab.Recipe is Recipe


def test_cli_choices_equal_the_core_ones():
    from ckptlab.cli import common
    from ckptlab.vocab import AUTO_LEVELS, ON_MISMATCH

    assert common.AUTO_LEVELS == AUTO_LEVELS
    assert common.ON_MISMATCH == ON_MISMATCH
