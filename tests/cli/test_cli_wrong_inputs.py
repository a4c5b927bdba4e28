"""A demanding user's wrong inputs: each is one line on stderr, exit 1, and nothing written."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from ckptlab.cli import main
from ckptlab.errors import CheckpointError
from ckptlab.merge.report import Report, ReportRow
from ckptlab.recipe.model import Recipe
from tests.paths import ROOT


@pytest.fixture
def pair(tmp_path):
    """A tiny source/target pair in ``tmp_path/in`` (outputs go elsewhere, so they can be listed)."""
    folder = tmp_path / "in"
    folder.mkdir()
    torch.save({"module.w": torch.arange(4.0), "module.b": torch.ones(2)}, folder / "s.pt")
    torch.save({"w": torch.zeros(4), "b": torch.zeros(2)}, folder / "t.pt")
    return folder / "s.pt", folder / "t.pt"


def remap(capsys, *argv) -> tuple[int, str, str]:
    code = main(["remap", *(str(a) for a in argv), "--no-progress"])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ckptlab: error: "), err
    return lines[0]


@pytest.mark.parametrize("report, problem", [
    ("missing-folder/report.json", "folder"),
    ("report.txt", "must end in .json or .csv"),
])
def test_a_bad_report_path_is_refused_before_the_checkpoint_is_written(tmp_path, capsys, pair, report, problem):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    code, out, err = remap(capsys, *pair, "-o", out_dir / "merged.pt", "--report", out_dir / report)
    assert code == 1 and out == ""
    line = one_line_error(err)
    assert problem in line and report.split("/")[-1] in line
    assert os.listdir(out_dir) == []


def test_an_output_in_a_missing_folder_names_the_folder(tmp_path, capsys, pair):
    code, out, err = remap(capsys, *pair, "-o", tmp_path / "nowhere" / "merged.safetensors")
    assert code == 1 and out == ""
    assert "folder" in one_line_error(err) and "nowhere" in err
    assert not (tmp_path / "nowhere").exists()


@pytest.mark.parametrize("name", ["merged.txt", "merged"])
def test_an_output_with_a_wrong_suffix_names_the_accepted_ones(tmp_path, capsys, pair, name):
    code, out, err = remap(capsys, *pair, "-o", tmp_path / name)
    assert code == 1 and out == ""
    assert ".safetensors" in one_line_error(err)
    assert not (tmp_path / name).exists()


def test_report_and_recipe_save_raise_a_checkpoint_error_not_an_oserror(tmp_path):
    report = Report(rows=[ReportRow("w", "w", "exact")])
    with pytest.raises(CheckpointError, match="folder"):
        report.save(tmp_path / "no" / "r.json")
    with pytest.raises(CheckpointError, match="report must end in"):
        report.save(tmp_path / "r.yaml")
    with pytest.raises(CheckpointError, match="folder"):
        Recipe.from_dict({"rules": [{"strip_prefix": "module."}]}).save(tmp_path / "no" / "r.yaml")
    assert os.listdir(tmp_path) == []
    report.save(tmp_path / "r.csv")
    assert (tmp_path / "r.csv").read_text().splitlines()[1].startswith("w,w,exact")
    assert [p.name for p in tmp_path.iterdir()] == ["r.csv"]  # no temp file left beside it


def test_json_into_a_closed_pipe_is_no_traceback(tmp_path):
    """``ckptlab inspect big.pt --json | head -c 100``: the reader leaves early."""
    torch.save({f"layers.{i}.some.long.parameter.name.weight": torch.zeros(1) for i in range(3000)},
               tmp_path / "big.pt")
    proc = subprocess.Popen([sys.executable, "-m", "ckptlab", "inspect", str(tmp_path / "big.pt"), "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    head = proc.stdout.read(100)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    proc.wait(timeout=60)
    assert head.startswith(b'{"format"')
    assert "Traceback" not in err and proc.returncode == 0, err
