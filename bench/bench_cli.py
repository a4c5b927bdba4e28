"""How long ``ckptlab --help`` takes (target <= 0.3 s: no torch import), beside references.

Usage: python bench/bench_cli.py [--repeat 15] [--app 3]

Each command runs in a fresh interpreter; the runs are interleaved (one of each per round) so
the shared machine's noise hits all of them alike. Prints the median and min wall time of:
``python -c pass`` (the interpreter alone), ``ckptlab --help``, ``ckptlab inspect --help``,
bare ``ckptlab`` (usage, exit 2), and ``import torch`` (what --help used to pay for).
``ckptlab`` is the console script when it is on PATH, else ``python -m ckptlab``.

``--app N``: also N interleaved rounds of seconds until ``/_stcore/health`` answers, for
``ckptlab app`` started from a folder outside the repo and ``streamlit run app.py`` from the
repo root; after each, SIGTERM and whether the Streamlit process outlived it.
"""
from __future__ import annotations

import argparse
import os
import signal
import socket
import tempfile
import urllib.request
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
    parser.add_argument("--app", type=int, default=0, metavar="N", help="rounds of app start-up timing")
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
    if args.app:
        bench_app(args.app, ckptlab, env)


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _healthy_after(cmd: list[str], cwd: str, env: dict) -> tuple[float, bool]:
    """Seconds until the health endpoint answers; then SIGTERM: did a process survive it?"""
    port = _port()
    start = time.perf_counter()
    proc = subprocess.Popen(cmd + [f"--server.port={port}" if "streamlit" in cmd else "--port", *(
        [] if "streamlit" in cmd else [str(port)])], cwd=cwd, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    while True:
        try:
            if urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1).read() == b"ok":
                break
        except OSError:
            time.sleep(0.05)
        if time.perf_counter() - start > 120:
            break
    took = time.perf_counter() - start
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    time.sleep(1)
    try:
        os.killpg(proc.pid, 0)  # anything left in its process group (the Streamlit child)?
        survived = True
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        survived = False
    return took, survived


def bench_app(rounds: int, ckptlab: list[str], env: dict) -> None:
    away = tempfile.mkdtemp(prefix="bench_cli_")
    runs = {"ckptlab app (outside the repo)": (ckptlab + ["app"], away),
            "streamlit run app.py (repo root)": ([sys.executable, "-m", "streamlit", "run", "app.py"], str(ROOT))}
    times: dict[str, list[float]] = {name: [] for name in runs}
    left: dict[str, int] = dict.fromkeys(runs, 0)
    for _ in range(rounds):
        for name, (cmd, cwd) in runs.items():
            took, survived = _healthy_after(cmd, cwd, env)
            times[name].append(took)
            left[name] += survived
    base = statistics.median(times["streamlit run app.py (repo root)"])
    print(f"{'app start-up until /_stcore/health':36} {'median s':>9} {'min s':>7} {'ratio':>7} survivors of SIGTERM")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"{name:36} {med:9.2f} {min(ts):7.2f} {med / base:6.2f}x {left[name]}/{rounds}")


if __name__ == "__main__":
    main()
