"""How long ``ckptlab --help`` takes (target <= 0.3 s: no torch import), beside references.

Usage: python bench/bench_cli.py [--repeat 15]

Each command runs in a fresh interpreter; the runs are interleaved (one of each per round) so
the shared machine's noise hits all of them alike. Prints the median and min wall time of:
``python -c pass`` (the interpreter alone), ``ckptlab --help``, ``ckptlab inspect --help``,
bare ``ckptlab`` (usage, exit 2), and ``import torch`` (what --help used to pay for).
``ckptlab`` is the console script when it is on PATH, else ``python -m ckptlab``.
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    script = shutil.which("ckptlab")
    ckptlab = [script] if script else [sys.executable, "-m", "ckptlab"]
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "ckptlab --help": ckptlab + ["--help"],
        "ckptlab inspect --help": ckptlab + ["inspect", "--help"],
        "ckptlab (no arguments)": ckptlab,
        "python -c 'import torch'": [sys.executable, "-c", "import torch"],
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for _ in range(args.repeat):
        for name, cmd in commands.items():
            start = time.perf_counter()
            subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            times[name].append(time.perf_counter() - start)
    print(f"machine: {platform.system()} {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; "
          f"ckptlab = {' '.join(Path(c).name if i == 0 else c for i, c in enumerate(ckptlab))}; {args.repeat} rounds")
    base = statistics.median(times["ckptlab --help"])
    print(f"{'command':28} {'median s':>9} {'min s':>7} {'/ --help':>9}")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"{name:28} {med:9.3f} {min(ts):7.3f} {med / base:8.2f}x")


if __name__ == "__main__":
    main()
