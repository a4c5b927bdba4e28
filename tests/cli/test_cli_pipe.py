"""A reader that leaves early (``ckptlab inspect X | head -1``) ends the command quietly, exit 0, always.

Run through a real shell pipe many times: whether the pipe closes before, during or after the
writes is a race, so every timing has to come out the same.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from tests.paths import ROOT

SAMPLES = ROOT / "sample_ckpts"
RUNS = 20


@pytest.fixture(scope="module")
def big(tmp_path_factory) -> Path:
    """3,000 keys: the table is far bigger than a pipe's buffer, so the writer must hit the closed pipe."""
    path = tmp_path_factory.mktemp("pipe") / "big.safetensors"
    save_file({f"encoder.layers.{i}.attention.query.weight": torch.zeros(2, 3) for i in range(3000)}, path)
    return path


def head_exit_codes(args: list[str], runs: int = RUNS) -> list[tuple[int, str]]:
    cmd = " ".join([f"'{sys.executable}'", "-m", "ckptlab", *(f"'{a}'" for a in args)])
    script = f'for i in $(seq {runs}); do {cmd} 2>err | head -1 >/dev/null; echo "${{PIPESTATUS[0]}} $(wc -c <err)"; done'
    out = subprocess.run(["bash", "-c", script], cwd=ROOT, capture_output=True, text=True, check=True,
                         env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})
    return [(int(code), size) for code, size in (line.split() for line in out.stdout.splitlines())]


def test_inspect_into_head_is_exit_0_with_nothing_on_stderr_every_time(big):
    assert head_exit_codes(["inspect", str(big), "--no-fold"]) == [(0, "0")] * RUNS


@pytest.mark.parametrize("args", [["inspect", "{big}", "--json"], ["inspect", "{small}"],
                                  ["align", "{small}", "{small}"], ["--help"]])
def test_other_outputs_into_head_are_exit_0_too(big, args):
    small = SAMPLES / "font_unet_self_attention.pt"
    assert head_exit_codes([a.format(big=big, small=small) for a in args], runs=2) == [(0, "0")] * 2
