"""Run a generated standalone script (``python script.py ARGS``) inside the test process:
torch is imported once for the whole suite instead of once per script. A test that needs
what only a new interpreter shows (exit status and stderr as a shell sees them, nothing of
the test process importable) starts one instead."""
from __future__ import annotations

import contextlib
import io
import runpy
import sys
from pathlib import Path

import torch


def run_script(script: Path, *args: str) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``script`` run as ``__main__`` with ``args``; its use of
    torch's RNG is kept from this process's. An exception it raises propagates (a traceback
    in the test report, where a process would print it and exit 1)."""
    out, err = io.StringIO(), io.StringIO()
    saved = sys.argv
    sys.argv = [str(script), *map(str, args)]
    try:
        with torch.random.fork_rng(devices=[]), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                runpy.run_path(str(script), run_name="__main__")
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
                if isinstance(exc.code, str):
                    print(exc.code, file=sys.stderr)
    finally:
        sys.argv = saved
    return code, out.getvalue(), err.getvalue()
