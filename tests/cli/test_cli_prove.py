"""``--prove`` on ``ckptlab align`` and ``ckptlab remap``, in a subprocess as a user runs them:
an HF GPT-2 folder (weights + config.json) against nanoGPT's model definition."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from tests.models.proof_cases import gpt2_without_c_proj_transpose, saved
from tests.paths import ROOT
from tests.zoo import hf

NANOGPT = "tests.zoo.gpt:nanogpt"
CONTRACT = {"proved", "max_abs", "first_divergence", "reason"}


def ckptlab(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ckptlab", *map(str, args)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)


@pytest.fixture(scope="module")
def job(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("gpt2")
    wrong = folder / "wrong.yaml"
    wrong.write_text(yaml.safe_dump(gpt2_without_c_proj_transpose()))
    return saved(hf.gpt2(), folder), wrong


def test_align_prove_json_carries_the_proof_and_strict_passes_a_proved_job(job):
    source, _ = job
    proc = ckptlab("align", source, NANOGPT, "--prove", "--json", "--strict")
    assert proc.returncode == 0, proc.stderr
    proof = json.loads(proc.stdout)["proof"]
    assert set(proof) == CONTRACT
    assert proof["proved"] is True and proof["max_abs"] <= 1e-5 and proof["first_divergence"] is None


def test_strict_prove_exits_2_on_a_strict_clean_but_wrong_recipe(job):
    source, wrong = job
    args = ("align", source, NANOGPT, "--recipe", wrong, "--auto", "none", "--strict")
    assert ckptlab(*args).returncode == 0                  # strict alone: every key fed on purpose
    proc = ckptlab(*args, "--prove")
    assert proc.returncode == 2
    assert "not proved: first divergence at 'transformer.h.0.attn.c_proj' (max |diff| " in proc.stderr


def test_remap_prove_json_proves_the_written_file(job, tmp_path):
    source, wrong = job
    out = tmp_path / "out.pt"
    proc = ckptlab("remap", source, NANOGPT, "-o", out, "--recipe", wrong, "--auto", "none", "--prove", "--json",
                   "--no-progress")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert set(report["proof"]) == CONTRACT and out.is_file()
    assert report["proof"]["proved"] is False
    assert report["proof"]["first_divergence"] == "transformer.h.0.attn.c_proj"
