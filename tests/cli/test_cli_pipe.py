"""A reader that leaves early (``ckptlab inspect X | head -1``) ends the command quietly, exit 0, always.

Whether the pipe closes before, during or after the writes is a race in a shell, so each
timing is made on purpose in-process (stdout is a real pipe whose reader closes it before
the command starts, after one line, or after everything), for every kind of output; and a
few real ``| head -1`` runs check what only a whole process shows (the interpreter's last
flush at exit, the exit status the shell sees).
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from ckptlab.cli import main

ROOT = Path(__file__).resolve().parents[1]
from tests.paths import ROOT

SAMPLES = ROOT / "sample_ckpts"
SHELL_RUNS = 3


@pytest.fixture(scope="module")
def big(tmp_path_factory) -> Path:
    """3,000 keys: the table is far bigger than a pipe's buffer, so the writer must hit the closed pipe."""
    path = tmp_path_factory.mktemp("pipe") / "big.safetensors"
    save_file({f"encoder.layers.{i}.attention.query.weight": torch.zeros(2, 3) for i in range(3000)}, path)
    return path


def run_into_pipe(argv: list[str], reader_leaves: str, monkeypatch) -> tuple[int, bytes]:
    """``main(argv)`` writing into a pipe whose reader closes it ``before`` the command
    starts, after the ``first-line``, or at the ``end`` (reads all). The exit code and what
    the reader got."""
    read_end, write_end = os.pipe()
    got = bytearray()

    def read() -> None:
        with os.fdopen(read_end, "rb") as reader:
            if reader_leaves == "first-line":
                got.extend(reader.readline())
            else:
                got.extend(reader.read())

    thread = threading.Thread(target=read)
    if reader_leaves == "before":
        os.close(read_end)
    else:
        thread.start()
    stdout = os.fdopen(write_end, "w")
    monkeypatch.setattr(sys, "stdout", stdout)
    try:
        try:
            code = main(argv)
        except SystemExit as done:      # --help ends through argparse's exit
            code = done.code
    finally:
        monkeypatch.undo()
        try:
            stdout.close()
        except BrokenPipeError:     # only if main left bytes behind: the assertions below say so
            pass
        if thread.is_alive() or reader_leaves != "before":
            thread.join(timeout=60)
    return code, bytes(got)


ARGS = {"table": ["inspect", "{big}", "--no-fold"], "json": ["inspect", "{big}", "--json"],
        "small table": ["inspect", "{small}"], "align": ["align", "{small}", "{small}"], "help": ["--help"]}


@pytest.mark.parametrize("reader_leaves", ["before", "first-line", "end"])
@pytest.mark.parametrize("output", list(ARGS))
def test_a_reader_leaving_at_any_time_is_exit_0_with_nothing_on_stderr(big, capsys, monkeypatch, output,
                                                                          reader_leaves):
    small = SAMPLES / "font_unet_self_attention.pt"
    argv = [a.format(big=big, small=small) for a in ARGS[output]]
    code, got = run_into_pipe(argv, reader_leaves, monkeypatch)
    assert code == 0
    assert capsys.readouterr().err == ""
    if reader_leaves == "first-line":
        assert got.count(b"\n") == 1
    if reader_leaves == "end":                   # nobody left: the whole output arrived
        assert got.endswith(b"\n") and (output != "table" or got.count(b"\n") > 3000)


def head_exit_codes(args: list[str], folder: Path, runs: int = SHELL_RUNS) -> list[tuple[int, str]]:
    """``ckptlab ARGS | head -1`` in bash ``runs`` times: (the command's exit status, bytes on its stderr)."""
    cmd = " ".join([f"'{sys.executable}'", "-m", "ckptlab", *(f"'{a}'" for a in args)])
    err = folder / "stderr"
    script = (f'for i in $(seq {runs}); do {cmd} 2>"{err}" | head -1 >/dev/null; '
              f'echo "${{PIPESTATUS[0]}} $(wc -c <"{err}")"; done')
    out = subprocess.run(["bash", "-c", script], cwd=ROOT, capture_output=True, text=True, check=True,
                         env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})
    return [(int(code), size) for code, size in (line.split() for line in out.stdout.splitlines())]


def test_inspect_into_head_in_a_shell_is_exit_0_with_nothing_on_stderr(big, tmp_path):
    assert head_exit_codes(["inspect", str(big), "--no-fold"], tmp_path) == [(0, "0")] * SHELL_RUNS


def test_help_into_head_in_a_shell_is_exit_0_too(tmp_path):
    assert head_exit_codes(["--help"], tmp_path, runs=1) == [(0, "0")]
