"""CLI errors speak the CLI's words: flags with ``--``, the suffixes ``--help`` lists, one shape
notation (``(8, 3, 3, 3)``), the top level named "(top level)"."""
from __future__ import annotations

import re

import pytest
import torch

from ckptlab.cli import main
from ckptlab.cli.words import PHRASES, in_cli_words
from tests.paths import ROOT

SAMPLES = ROOT / "sample_ckpts"


def run(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def error_line(err: str) -> str:
    [line] = err.strip().splitlines()
    assert line.startswith("ckptlab: error: ")
    return line


def test_an_output_folder_is_named_as_the_flag_with_the_suffixes_help_lists(tmp_path, capsys):
    code, _, err = run(capsys, "remap", SAMPLES / "convnet_rgb.pt", SAMPLES / "convnet_rgb.pt", "-o", tmp_path,
                       "--no-progress")
    line = error_line(err)
    assert code == 1 and f"-o '{tmp_path}' is a folder" in line and ".safetensors, .pt or .pth" in line
    assert "nothing" not in line
    code, _, err = run(capsys, "remap", SAMPLES / "convnet_rgb.pt", SAMPLES / "convnet_rgb.pt", "-o",
                       tmp_path / "merged", "--no-progress")
    assert code == 1 and "it has no suffix" in error_line(err)
    with pytest.raises(SystemExit):
        main(["remap", "--help"])
    assert ".safetensors, .pt or .pth" in " ".join(capsys.readouterr().out.split())
    assert list(tmp_path.iterdir()) == []


def test_nest_and_on_mismatch_are_named_as_flags(tmp_path, capsys):
    code, _, err = run(capsys, "remap", SAMPLES / "convnet_rgb.pt", SAMPLES / "convnet_rgb.pt", "-o",
                       tmp_path / "m.safetensors", "--nest", "--no-progress")
    line = error_line(err)
    assert code == 1 and "--nest needs a .pt or .pth output" in line and "nest=True" not in line
    code, _, err = run(capsys, "remap", SAMPLES / "convnet_rgb.pt", SAMPLES / "convnet_rgba.pt", "-o",
                       tmp_path / "m.pt", "--no-progress")
    line = error_line(err)
    assert code == 1 and line.startswith("ckptlab: error: 1 row blocks the merge")
    assert "--on-mismatch keep-target" in line and not re.search(r"(?<!--)on-mismatch", line)


def test_every_api_phrase_becomes_its_flag_once():
    for api, cli in PHRASES:
        assert in_cli_words(f"x: {api} y") == f"x: {cli} y"
        assert in_cli_words(in_cli_words(api)) == cli  # never doubled (---on-mismatch)


def test_a_wrong_container_names_the_top_level(tmp_path, capsys):
    path = tmp_path / "two.pt"
    torch.save({"w": torch.zeros(2), "b": torch.zeros(2), "ema": {"w": torch.zeros(2), "b": torch.zeros(2)}}, path)
    code, _, err = run(capsys, "inspect", path, "--container", "nope")
    line = error_line(err)
    assert code == 1 and "(top level)" in line and "''" not in line


def test_verify_uses_one_shape_notation(capsys):
    code, out, _ = run(capsys, "verify", SAMPLES / "convnet_rgb.pt", "--model", "sample_ckpts.models:ConvNet",
                       "--model-kwargs", '{"in_chans": 4}')
    assert code == 1
    assert "checkpoint (8, 3, 3, 3) vs model (8, 4, 3, 3)" in out.splitlines()[0]
    assert "[" not in out
