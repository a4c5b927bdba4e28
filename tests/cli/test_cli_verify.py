"""``ckptlab verify``: JSON on stdout, exit status, refusals, one-line errors (through ``main`` in
this process, with file-descriptor capture)."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ckptlab.cli import main
from tests.paths import ROOT

SAMPLES = ROOT / "sample_ckpts"


@pytest.fixture
def cli(capfd, monkeypatch):
    """``ckptlab ARGS`` through ``main`` in this process, CKPTLAB_ALLOW_CODE unset unless
    ``env`` sets it: (returncode, stdout, stderr) as a CompletedProcess."""
    def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
        with monkeypatch.context() as patched:
            patched.delenv("CKPTLAB_ALLOW_CODE", raising=False)
            for name, value in (env or {}).items():
                patched.setenv(name, value)
            code = main(list(args))
        out, err = capfd.readouterr()
        return subprocess.CompletedProcess(["ckptlab", *args], code, out, err)
    return run


@pytest.fixture
def _run(cli):
    return lambda *args, env=None: cli("verify", *args, env=env)


def test_verify_json_mismatch_exits_1(_run):
    proc = _run(str(SAMPLES / "convnet_rgb.pt"), "--model", "sample_ckpts.models:ConvNet",
                "--model-kwargs", '{"in_chans": 4}', "--json")
    assert proc.returncode == 1, proc.stderr
    out = json.loads(proc.stdout)
    assert out == {"missing": [], "unexpected": [], "ok": False, "mismatched": [
        {"key": "conv1.weight", "checkpoint_shape": [8, 3, 3, 3], "model_shape": [8, 4, 3, 3]}]}


def test_verify_json_clean_load_exits_0(capsys):
    code = main(["verify", str(SAMPLES / "convnet_rgba.pt"), "--model", "sample_ckpts.models:ConvNet",
                 "--model-kwargs", '{"in_chans": 4}', "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert out == {"missing": [], "unexpected": [], "mismatched": [], "ok": True}


def test_verify_nested_container_and_the_silent_empty_load(capsys):
    code = main(["verify", str(SAMPLES / "attention_net_ckpt.pt"), "--model",
                 "sample_ckpts.models:AttentionWrapper", "--container", "net", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 1
    assert len(out["unexpected"]) == 23 and all(not k.startswith("attention_map.") for k in out["unexpected"])
    assert sum(k.startswith("attention_map.") for k in out["missing"]) == 23


def test_verify_text_output(capsys):
    code = main(["verify", str(SAMPLES / "smallnet.pt"), "--model", "sample_ckpts.models:WarmStartNet"])
    text = capsys.readouterr().out
    assert code == 1
    assert text.startswith("does not load strictly: 4 missing, 4 unexpected (first missing: backbone_conv.weight)")
    assert "  missing     backbone_conv.weight" in text
    assert "  unexpected  conv1.weight" in text
    assert "  missing     new_fc.weight" in text and "mismatched" not in text


def test_verify_model_file_needs_allow_code(_run, tmp_path):
    model_file = tmp_path / "m.py"
    model_file.write_text("import pathlib\npathlib.Path(__file__).with_name('marker').touch()\n"
                          "from sample_ckpts.models import ConvNet\n")
    args = (str(SAMPLES / "convnet_rgb.pt"), "--model", f"{model_file}:ConvNet", "--json")
    refused = _run(*args)
    assert refused.returncode == 1
    assert json.loads(refused.stdout)["error"] == refused.stderr.strip().removeprefix("ckptlab: error: ")
    assert refused.stderr.strip().count("\n") == 0
    assert "--allow-code or set CKPTLAB_ALLOW_CODE=1" in refused.stderr
    assert not (tmp_path / "marker").exists()
    allowed = _run(*args, "--allow-code")
    assert allowed.returncode == 0, allowed.stderr
    assert json.loads(allowed.stdout)["ok"] is True
    assert (tmp_path / "marker").exists()
    assert _run(*args, env={"CKPTLAB_ALLOW_CODE": "1"}).returncode == 0


@pytest.mark.parametrize("extra, message", [
    (["--model", "sample_ckpts.models:Nope"], "has no attribute 'Nope'"),
    (["--model", "sample_ckpts.models:ConvNet", "--model-kwargs", "{bad"], "--model-kwargs: model kwargs are not valid JSON"),
])
def test_verify_errors_are_one_line(capsys, extra, message):
    code = main(["verify", str(SAMPLES / "convnet_rgb.pt"), *extra, "--json"])
    captured = capsys.readouterr()
    assert code == 1 and json.loads(captured.out)["error"] == captured.err.strip().removeprefix("ckptlab: error: ")
    assert message in captured.err and captured.err.count("\n") == 1


def test_verify_help_documents_the_exit_status():
    proc = subprocess.run([sys.executable, "-m", "ckptlab", "verify", "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert "0 when all three are empty, 1 otherwise" in " ".join(proc.stdout.split())


def test_align_target_model_file_needs_allow_code_too(cli, tmp_path):
    """The same refusal where align/remap take a model definition as TARGET."""
    model_file = tmp_path / "m.py"
    model_file.write_text("import pathlib\npathlib.Path(__file__).with_name('marker').touch()\n"
                          "from sample_ckpts.models import ConvNet\n")
    args = ["align", str(SAMPLES / "convnet_rgb.pt"), f"{model_file}:ConvNet", "--target-kwargs", '{"in_chans": 3}',
            "--json"]
    refused = cli(*args)
    assert refused.returncode == 1 and "--allow-code" in refused.stderr
    assert json.loads(refused.stdout)["error"] == refused.stderr.strip().removeprefix("ckptlab: error: ")
    assert not (tmp_path / "marker").exists()
    allowed = cli(*args, "--allow-code")
    assert allowed.returncode == 0, allowed.stderr
    assert json.loads(allowed.stdout)["summary"]["exact"] == 16
    assert (tmp_path / "marker").exists()
