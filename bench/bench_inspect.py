"""Benchmark: ``ckptlab.open`` + listing every tensor's info vs a full load, same files, one run.

Writes a transformer-like checkpoint of ``--size-gb`` (default 2.5) as ``.pt`` and
``.safetensors`` into a temporary folder (deleted afterwards), then measures each side in a
fresh subprocess: wall time of the open/load call (best of ``--repeat``; for inspect both
the first call in the process, which includes importing the readers, and a second one) and
peak RSS (VmHWM, reset after ``import torch``), reported as MB above a subprocess that only
does ``import torch``. Both files are compared with the full ``torch.load(weights_only=True)``
of the .pt (safetensors' ``load_file`` maps the file instead of reading it, so it is no
"full load"). Targets (DESIGN.md): inspect <= 2% of the full load's time, <= 64 MB above
``import torch``.

    python bench/bench_inspect.py --size-gb 2.5
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, sys, time


def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024  # kB -> MB
    raise KeyError(field)


import torch
mode, path = sys.argv[1], sys.argv[2]
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # reset the peak (VmHWM) to the current RSS: measure only what follows
timings = []
if mode == "inspect":
    import ckptlab
    for _ in range(2):  # cold (first call: lazy reader imports included), then warm
        t0 = time.perf_counter()
        ck = ckptlab.open(path)
        infos = [(k, ck.info(k)) for k in ck.keys()]
        timings.append(time.perf_counter() - t0)
    n = len(infos)
elif mode == "torch.load":
    t0 = time.perf_counter()
    sd = torch.load(path, weights_only=True)
    timings.append(time.perf_counter() - t0)
    n = len(sd)
else:
    timings, n = [0.0], 0
print(json.dumps({"cold": timings[0], "warm": timings[-1], "tensors": n, "peak_mb": status("VmHWM")}))
"""


def make_state(size_gb: float, width: int = 1024) -> dict:
    """Embedding + N transformer blocks (attention, MLP, norms) adding up to ``size_gb``."""
    import torch

    per_block = 12 * width * width + 13 * width
    vocab = 32000
    blocks = max(1, int((size_gb * 1e9 / 4 - 2 * vocab * width) / per_block))
    state = {"embed.weight": torch.full((vocab, width), 0.5)}
    for i in range(blocks):
        p = f"blocks.{i}."
        for name in ("q", "k", "v", "o"):
            state[p + f"attn.{name}.weight"] = torch.full((width, width), float(i))
            state[p + f"attn.{name}.bias"] = torch.zeros(width)
        state[p + "mlp.up.weight"] = torch.full((4 * width, width), 1.0)
        state[p + "mlp.up.bias"] = torch.zeros(4 * width)
        state[p + "mlp.down.weight"] = torch.full((width, 4 * width), 2.0)
        state[p + "mlp.down.bias"] = torch.zeros(width)
        for norm in ("ln1", "ln2"):
            state[p + f"{norm}.weight"] = torch.ones(width)
            state[p + f"{norm}.bias"] = torch.zeros(width)
    state["norm.weight"] = torch.ones(width)
    state["lm_head.weight"] = torch.full((vocab, width), 0.25)
    return state


def child(mode: str, path: Path | str = "-") -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", CHILD, mode, str(path)], capture_output=True, text=True,
                         check=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(mode: str, path: Path, repeat: int) -> dict:
    runs = [child(mode, path) for _ in range(repeat)]
    return {"cold": min(r["cold"] for r in runs), "warm": min(r["warm"] for r in runs),
            "peak_mb": max(r["peak_mb"] for r in runs), "tensors": runs[0]["tensors"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-gb", type=float, default=2.5)
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (best time, max RSS)")
    parser.add_argument("--dir", default=None, help="where to write the temporary files (default: system temp)")
    args = parser.parse_args()

    import torch
    from safetensors.torch import save_file

    folder = Path(tempfile.mkdtemp(prefix="ckptlab-bench-", dir=args.dir))
    try:
        state = make_state(args.size_gb)
        pt, st = folder / "model.pt", folder / "model.safetensors"
        torch.save(state, pt)
        save_file(state, str(st))
        del state
        print(f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, "
              f"{os.cpu_count()} CPUs, Python {platform.python_version()}, torch {torch.__version__}")
        print(f"checkpoint: {pt.stat().st_size / 1e9:.2f} GB .pt, {st.stat().st_size / 1e9:.2f} GB .safetensors "
              f"(files in the page cache for every run)")
        baseline = max(child("baseline")["peak_mb"] for _ in range(args.repeat))
        print(f"baseline: a process that only imports torch: {baseline:.0f} MB RSS\n")
        full = measure("torch.load", pt, max(1, args.repeat - 1))
        print(f"{'what':<40}{'tensors':>8}{'seconds':>10}{'MB above torch':>16}")
        print(f"{'torch.load(model.pt, weights_only=True)':<40}{full['tensors']:>8}{full['cold']:>10.3f}"
              f"{full['peak_mb'] - baseline:>16.1f}")
        for path in (pt, st):
            r = measure("inspect", path, args.repeat)
            for label, seconds in ((f"ckptlab.open+infos {path.name}, cold", r["cold"]),
                                   (f"ckptlab.open+infos {path.name}, warm", r["warm"])):
                print(f"{label:<40}{r['tensors']:>8}{seconds:>10.4f}{r['peak_mb'] - baseline:>16.1f}")
            print(f"  {path.name}: time vs full torch.load = {r['cold'] / full['cold']:.2%} cold, "
                  f"{r['warm'] / full['cold']:.2%} warm (target <= 2%); memory {r['peak_mb'] - baseline:.1f} MB "
                  f"above import torch (target <= 64)")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
