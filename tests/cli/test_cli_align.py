"""``ckptlab align``: JSON on stdout only, warning on stderr, exit codes. One run in a python
of its own (what a script calling the command sees), the rest through ``main`` in this
process with file-descriptor capture (whatever reaches fd 1 or 2 is seen)."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ckptlab.align import STATUSES, align
from ckptlab.cli import main
from tests.paths import ROOT

SAMPLES = ROOT / "sample_ckpts"


@pytest.fixture
def run(capfd):
    """``ckptlab align ARGS`` in this process: (returncode, stdout, stderr) as a CompletedProcess."""
    def align_cmd(*args) -> subprocess.CompletedProcess:
        code = main(["align", *map(str, args)])
        out, err = capfd.readouterr()
        return subprocess.CompletedProcess(["ckptlab", "align", *map(str, args)], code, out, err)
    return align_cmd


def run_process(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ckptlab", "align", *map(str, args)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_json_is_the_contract_and_matches_the_api():
    proc = run_process(SAMPLES / "projector.pt", SAMPLES / "classifier_100.pt", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)  # stdout holds the one object and nothing else
    assert set(data) == {"rows", "summary", "suggestions", "warning", "warnings"}
    for row in data["rows"]:
        assert set(row) == {"target", "source", "status", "target_shape", "source_shape", "reason"}
    for s in data["suggestions"]:
        assert set(s) == {"rule", "confidence", "reason"}
    assert list(data["summary"]) == list(STATUSES)
    expected = align(SAMPLES / "projector.pt", SAMPLES / "classifier_100.pt").to_dict()
    assert data == json.loads(json.dumps(expected))
    assert proc.stderr == ""


def test_empty_load_warns_on_stderr_and_strict_exits_2(run):
    args = (SAMPLES / "attention_net_ckpt.pt", SAMPLES / "attention_wrapper.pt", "--auto", "none", "--json")
    proc = run(*args, "--strict")
    assert proc.returncode == 2
    data = json.loads(proc.stdout)
    assert data["summary"]["missing"] == len(data["rows"]) - data["summary"]["unused"]
    assert "only 0 of 27 target keys are fed" in proc.stderr
    assert "add_prefix 'attention_map.'" in proc.stderr
    assert proc.stderr.splitlines()[0] == f"ckptlab: warning: {data['warning']}"
    assert "not strict: 27 target keys not fed" in proc.stderr and "23 source keys used by nothing" in proc.stderr


def test_strict_means_every_key_accounted_for_on_purpose(run, tmp_path):
    """The prefix fixed, 23 of 27 keys load; the wrapper's own backbone and head stay fresh: PyTorch's
    strict=True would refuse that, so --strict does too, until the recipe says it is on purpose."""
    pair = (SAMPLES / "attention_net_ckpt.pt", SAMPLES / "attention_wrapper.pt")
    fixed = run(*pair, "--json", "--strict")
    assert fixed.returncode == 2
    assert json.loads(fixed.stdout)["summary"]["renamed"] == 23
    assert "modules 'backbone', 'head' left at their init" in fixed.stderr
    assert "not strict: 4 target keys not fed: 'backbone.weight'" in fixed.stderr
    recipe = tmp_path / "keep.yaml"
    recipe.write_text("keep_target: '^(backbone|head)\\.'\n")
    on_purpose = run(*pair, "--json", "--strict", "--recipe", recipe)
    assert on_purpose.returncode == 0 and on_purpose.stderr == ""
    rows = {r["target"]: r for r in json.loads(on_purpose.stdout)["rows"]}
    assert rows["head.weight"]["status"] == "missing" and "kept on purpose" in rows["head.weight"]["reason"]


def test_recipe_file_and_readable_table(run, tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("rules:\n  - replace: {pattern: '^conv1\\.', with: 'backbone_conv.'}\n")
    proc = run(SAMPLES / "smallnet.pt", SAMPLES / "warmstart_net.pt", "--recipe", recipe, "--auto", "none")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "backbone_conv.weight" in out and "renamed" in out
    assert "replace '^conv1\\.' -> 'backbone_conv.' (rule 1)" in out
    assert "summary: exact 12, renamed 2, adapted 0, converted 0, mismatch 0, missing 2, unused 2, conflict 0" in out
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  - drop: '('\n")
    proc = run(SAMPLES / "smallnet.pt", SAMPLES / "warmstart_net.pt", "--recipe", bad, "--json")
    assert proc.returncode == 1 and json.loads(proc.stdout)["file"] == str(bad)   # the error as JSON on stdout
    assert proc.stderr.count("\n") == 1 and "rule 1 (drop): bad regex '('" in proc.stderr


def test_piped_table_keeps_every_key_and_reason_on_one_line(run, tmp_path):
    import torch

    source = {f"model.encoder.layers.{i}.self_attention.query_key_value.weight": torch.zeros(6, 2) for i in range(3)}
    source["model.head[0].weight"] = torch.zeros(2, 2)
    torch.save(source, tmp_path / "s.pt")
    torch.save({k.removeprefix("model."): v for k, v in source.items()}, tmp_path / "t.pt")
    proc = run(tmp_path / "s.pt", tmp_path / "t.pt")
    assert proc.returncode == 0, proc.stderr
    [line] = [ln for ln in proc.stdout.splitlines() if "query_key_value" in ln]
    assert ("encoder.layers.{0..2}.self_attention.query_key_value.weight" in line
            and "model.encoder.layers.{0..2}.self_attention.query_key_value.weight" in line
            and "renamed x3" in line and "strip_prefix 'model.' (suggested, high)" in line)
    assert any("model.head[0].weight" in ln for ln in proc.stdout.splitlines())
