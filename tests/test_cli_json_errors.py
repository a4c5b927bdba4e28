"""``--json`` answers an error too: one JSON object ``{"error", "file"}`` on stdout with the
same exit code, the one line still on stderr. And ``diff`` warns (``--strict``: exit 2) when
the alignment behind it feeds nothing, as ``align`` does."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from ckptlab.cli import main

PREFIX = "ckptlab: error: "


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def only_object(out: str) -> dict:
    """stdout holds exactly one JSON object, on one line."""
    assert out.endswith("\n") and out.count("\n") == 1, out
    data = json.loads(out)
    assert isinstance(data, dict)
    return data


@pytest.fixture
def junk(tmp_path):
    bad = tmp_path / "junk.pt"
    bad.write_bytes(b"\x00" * 64)
    return bad


@pytest.mark.parametrize("command", [
    ["inspect", "{bad}"],
    ["stats", "{bad}"],
    ["align", "{bad}", "{good}"],
    ["diff", "{good}", "{bad}"],
    ["remap", "{bad}", "{good}", "-o", "{out}"],
    ["verify", "{bad}", "--model", "sample_ckpts.models:ConvNet"],
])
def test_an_error_is_one_json_object_naming_the_file(capsys, sample, tmp_path, junk, command):
    argv = [a.format(bad=junk, good=sample("convnet_rgb.pt"), out=tmp_path / "out.pt") for a in command]
    code, out, err = run(capsys, *argv, "--json")
    assert code == 1
    [line] = err.splitlines()
    assert line.startswith(PREFIX) and "junk.pt" in line
    assert only_object(out) == {"error": line.removeprefix(PREFIX), "file": str(junk)}
    code, out, again = run(capsys, *argv)                   # without --json: the same line, nothing on stdout
    assert (code, out, again) == (1, "", err)


def test_an_error_about_no_file_says_file_null(capsys, sample):
    code, out, err = run(capsys, "verify", sample("convnet_rgb.pt"), "--model", "sample_ckpts.models:Nope", "--json")
    assert code == 1 and "has no attribute 'Nope'" in err
    assert only_object(out) == {"error": err.strip().removeprefix(PREFIX), "file": None}


def test_a_usage_error_with_json_exits_2_with_the_object(capsys, sample):
    with pytest.raises(SystemExit) as exited:
        main(["align", str(sample("convnet_rgb.pt")), "--auto", "most", "--json"])
    out, err = capsys.readouterr()
    assert exited.value.code == 2
    assert err.startswith("usage: ckptlab align") and "ckptlab align: error: argument --auto: invalid choice" in err
    data = only_object(out)
    assert data["file"] is None and data["error"].startswith("argument --auto: invalid choice: 'most'")
    assert err.splitlines()[-1] == "ckptlab align: error: " + data["error"]
    with pytest.raises(SystemExit) as exited:                 # without --json: argparse's usual answer only
        main(["align", str(sample("convnet_rgb.pt")), "--auto", "most"])
    out, plain = capsys.readouterr()
    assert exited.value.code == 2 and out == "" and plain == err


def _disjoint(tmp_path):
    save_file({"encoder.w": torch.ones(4, 4), "encoder.b": torch.ones(4)}, tmp_path / "a.safetensors")
    save_file({"head.kernel": torch.ones(3, 3), "head.offset": torch.ones(3)}, tmp_path / "b.safetensors")
    return tmp_path / "a.safetensors", tmp_path / "b.safetensors"


def test_a_diff_that_aligns_nothing_warns_as_align_does(capsys, tmp_path):
    a, b = _disjoint(tmp_path)
    code, out, err = run(capsys, "align", a, b, "--json")
    warnings = json.loads(out)["warnings"]
    assert code == 0 and warnings and "0 of 2 target keys" in warnings[0]
    code, out, err = run(capsys, "diff", a, b, "--json")
    assert code == 0 and only_object(out)["summary"]["pairs"] == 0
    assert err.splitlines() == [f"ckptlab: warning: {w}" for w in warnings]
    code, out, strict_err = run(capsys, "diff", a, b, "--strict")
    assert code == 2 and "0 pairs" in out and strict_err == err


def test_a_diff_that_aligns_everything_stays_quiet_even_strict(capsys, tmp_path):
    a, _ = _disjoint(tmp_path)
    code, out, err = run(capsys, "diff", a, a, "--strict", "--json")
    assert code == 0 and err == "" and only_object(out)["summary"]["equal"] == 2
