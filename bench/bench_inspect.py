"""Benchmark: ``ckptlab.open`` + every tensor's info, beside a full load and ``safe_open``, one run.

    python bench/bench_inspect.py [--sets large,realistic] [--size-gb 2.5] [--layers 125]
                                  [--repeat 3] [--baseline GIT_REV] [--dir DIR]

Two sets of files, written into a temporary folder (deleted afterwards), each as ``.pt`` and
``.safetensors``:

- **large**: a transformer-like checkpoint of ``--size-gb`` (default 2.5) of 4-64 MB tensors;
- **realistic**: ``--layers`` blocks of 16 tensors (2,000 at the default 125: attention,
  MLP, norms; width 256, every tensor <= 4 MB), the shape of a real checkpoint's tensor list.

Each measurement runs in a fresh subprocess that imports torch first (outside every clock: all
sides pay it alike). **first call** is the first open in the process, the reader's own imports
included (``import ckptlab`` + ``ckptlab.open`` + ``info`` of every key; for the reference
``from safetensors import safe_open`` + ``safe_open`` + ``keys()`` + ``get_slice(k).get_shape()``
of every key); **warm** is the best of 5 more calls in the same process. Both are wall time
(best of ``--repeat`` processes) and CPU time of the process (``process_time``). Peak RSS is
VmHWM, reset after ``import torch``, reported as MB above a process that only imports torch.
The full ``torch.load(weights_only=True)`` of the .pt is the yardstick of the large set
(targets, DESIGN.md: inspect <= 2% of it, <= 64 MB above ``import torch``); ``safe_open`` the
one of .safetensors inspect (issue 20: no slower than it). ``--baseline REV`` also runs the
``ckptlab`` package of that git revision (``git archive``), interleaved with the current code.
Both versions are compiled first (``compileall``: ``.pyc`` files beside them, as an installed
package has), so a first call never pays compiling a module.
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


def inspect():
    import ckptlab
    ck = ckptlab.open(path)
    return [(k, ck.info(k)) for k in ck.keys()]


def reference():
    from safetensors import safe_open
    with safe_open(path, framework="pt") as f:
        return [(k, f.get_slice(k).get_shape()) for k in f.keys()]


def full_load():
    return torch.load(path, weights_only=True)


calls = {"inspect": (inspect, 6), "safe_open": (reference, 6), "torch.load": (full_load, 1)}
timings, cpu, n = [], [], 0
if mode in calls:
    fn, times = calls[mode]
    for _ in range(times):  # the first call pays the reader's imports; the rest are warm
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        timings.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        n = len(out)
        del out
else:
    timings, cpu = [0.0], [0.0]
if mode == "inspect":
    import ckptlab
    assert ckptlab.__file__.startswith(sys.argv[3]), (ckptlab.__file__, sys.argv[3])
print(json.dumps({"first": timings[0], "warm": min(timings[1:] or timings), "first_cpu": cpu[0],
                  "warm_cpu": min(cpu[1:] or cpu), "tensors": n, "peak_mb": status("VmHWM")}))
"""


def make_state(size_gb: float, width: int = 1024) -> dict:
    """Embedding + N transformer blocks (attention, MLP, norms) adding up to ``size_gb``."""
    import torch

    per_block = 12 * width * width + 13 * width
    vocab = 32000
    blocks = max(1, int((size_gb * 1e9 / 4 - 2 * vocab * width) / per_block))
    state = {"embed.weight": torch.full((vocab, width), 0.5)}
    for i in range(blocks):
        state.update(_block(i, width, lambda shape, i=i: torch.full(shape, float(i))))
    state["norm.weight"] = torch.ones(width)
    state["lm_head.weight"] = torch.full((vocab, width), 0.25)
    return state


def _block(i: int, width: int, make) -> dict:
    """One block's 16 tensors: q/k/v/o weights and biases, MLP up/down, two layer norms."""
    import torch

    p, out = f"blocks.{i}.", {}
    for name in ("q", "k", "v", "o"):
        out[p + f"attn.{name}.weight"] = make((width, width))
        out[p + f"attn.{name}.bias"] = torch.zeros(width)
    out[p + "mlp.up.weight"] = make((4 * width, width))
    out[p + "mlp.up.bias"] = torch.zeros(4 * width)
    out[p + "mlp.down.weight"] = make((width, 4 * width))
    out[p + "mlp.down.bias"] = torch.zeros(width)
    for norm in ("ln1", "ln2"):
        out[p + f"{norm}.weight"] = torch.ones(width)
        out[p + f"{norm}.bias"] = torch.zeros(width)
    return out


def make_realistic(layers: int, width: int = 256) -> dict:
    """``layers`` blocks of 16 tensors (every one <= 4 MB at width 256): 2,000 at 125."""
    import torch

    g = torch.Generator().manual_seed(0)
    state = {}
    for i in range(layers):
        state.update(_block(i, width, lambda shape: torch.randn(shape, generator=g)))
    return state


def child(mode: str, path: Path | str = "-", code: Path = ROOT) -> dict:
    env = {**os.environ, "PYTHONPATH": str(code)}
    out = subprocess.run([sys.executable, "-c", CHILD, mode, str(path), str(code)], capture_output=True, text=True,
                         check=True, env=env, cwd=tempfile.gettempdir())
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(mode: str, path: Path, repeat: int, code: Path = ROOT) -> dict:
    runs = [child(mode, path, code) for _ in range(repeat)]
    return _best(runs)


def _best(runs: list[dict]) -> dict:
    return {"first": min(r["first"] for r in runs), "warm": min(r["warm"] for r in runs),
            "first_cpu": min(r["first_cpu"] for r in runs), "warm_cpu": min(r["warm_cpu"] for r in runs),
            "peak_mb": max(r["peak_mb"] for r in runs), "tensors": runs[0]["tensors"]}


def interleaved(jobs: dict[str, tuple[str, Path, Path]], repeat: int) -> dict[str, dict]:
    """Every job ``repeat`` times, round-robin (a slow spell of the shared machine hits all)."""
    runs: dict[str, list[dict]] = {name: [] for name in jobs}
    for _ in range(repeat):
        for name, (mode, path, code) in jobs.items():
            runs[name].append(child(mode, path, code))
    return {name: _best(r) for name, r in runs.items()}


def run_large(folder: Path, args, baseline: float, old: Path | None) -> None:
    import torch
    from safetensors.torch import save_file

    state = make_state(args.size_gb)
    pt, st = folder / "model.pt", folder / "model.safetensors"
    torch.save(state, pt)
    save_file(state, str(st))
    n = len(state)
    del state
    print(f"\n== large: {pt.stat().st_size / 1e9:.2f} GB .pt, {st.stat().st_size / 1e9:.2f} GB .safetensors, "
          f"{n} tensors (files in the page cache for every run)")
    full = measure("torch.load", pt, max(1, args.repeat - 1))
    print(f"{'what':<44}{'tensors':>8}{'seconds':>10}{'MB above torch':>16}")
    print(f"{'torch.load(model.pt, weights_only=True)':<44}{full['tensors']:>8}{full['first']:>10.3f}"
          f"{full['peak_mb'] - baseline:>16.1f}")
    for path in (pt, st):
        jobs = {"current": ("inspect", path, ROOT)}
        if old is not None:
            jobs["baseline"] = ("inspect", path, old)
        for version, r in interleaved(jobs, args.repeat).items():
            for label, seconds in (("first call", r["first"]), ("warm", r["warm"])):
                print(f"{f'ckptlab.open+infos {path.name}, {label} ({version})':<44}{r['tensors']:>8}{seconds:>10.4f}"
                      f"{r['peak_mb'] - baseline:>16.1f}")
            print(f"  {path.name} ({version}): time vs full torch.load = {r['first'] / full['first']:.2%} first call, "
                  f"{r['warm'] / full['first']:.2%} warm (target <= 2%); memory {r['peak_mb'] - baseline:.1f} MB "
                  f"above import torch (target <= 64)")


def run_realistic(folder: Path, args, baseline: float, old: Path | None) -> None:
    import torch
    from safetensors.torch import save_file

    state = make_realistic(args.layers)
    pt, st = folder / "real.pt", folder / "real.safetensors"
    torch.save(state, pt)
    save_file(state, str(st))
    n, biggest = len(state), max(t.numel() * t.element_size() for t in state.values())
    del state
    print(f"\n== realistic: {n} tensors (the largest {biggest / 2**20:.1f} MB), {pt.stat().st_size / 1e6:.0f} MB "
          ".pt and .safetensors")
    full = measure("torch.load", pt, max(1, args.repeat - 1))
    jobs = {"safe_open": ("safe_open", st, ROOT), "current st": ("inspect", st, ROOT), "current pt": ("inspect", pt, ROOT)}
    if old is not None:
        jobs.update({"baseline st": ("inspect", st, old), "baseline pt": ("inspect", pt, old)})
    got = interleaved(jobs, args.repeat)
    ref = got["safe_open"]
    print(f"{'what':<56}{'first call':>11}{'(CPU)':>8}{'warm':>9}{'(CPU)':>8}{'x safe_open':>13}")
    print(f"{'torch.load(real.pt, weights_only=True)':<56}{full['first'] * 1e3:>9.1f}ms{full['first_cpu'] * 1e3:>6.1f}ms")
    rows = [("safe_open + keys() + get_slice(k).get_shape(), .safetensors", ref)]
    for name in ("current", "baseline"):
        if f"{name} st" in got:
            label = "ckptlab" if name == "current" else f"ckptlab {args.baseline}"
            rows.append((f"{label}: open + info of every key, .safetensors", got[f"{name} st"]))
            rows.append((f"{label}: open + info of every key, .pt", got[f"{name} pt"]))
    for label, r in rows:
        ratio = f"{r['first'] / ref['first']:.1f} / {r['warm'] / ref['warm']:.1f}" if r is not ref else ""
        print(f"{label:<56}{r['first'] * 1e3:>9.1f}ms{r['first_cpu'] * 1e3:>6.1f}ms{r['warm'] * 1e3:>7.2f}ms"
              f"{r['warm_cpu'] * 1e3:>6.2f}ms{ratio:>13}")
    print("  (x safe_open: first call / warm; every figure after import torch, which every side pays alike; "
          f"inspect of the .pt is {got['current pt']['first'] / full['first']:.1%} of the full load, first call)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default="large,realistic", help="which sets: large, realistic")
    parser.add_argument("--size-gb", type=float, default=2.5)
    parser.add_argument("--layers", type=int, default=125, help="the realistic set's blocks (16 tensors each)")
    parser.add_argument("--repeat", type=int, default=3, help="processes per measurement (best time, max RSS)")
    parser.add_argument("--baseline", default=None, metavar="GIT_REV", help="also run this revision's ckptlab")
    parser.add_argument("--dir", default=None, help="where to write the temporary files (default: system temp)")
    args = parser.parse_args()

    import torch

    folder = Path(tempfile.mkdtemp(prefix="ckptlab-bench-", dir=args.dir))
    try:
        old = None
        if args.baseline:
            old = folder / "baseline"
            old.mkdir()
            archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.baseline, "ckptlab"],
                                     capture_output=True, check=True).stdout
            subprocess.run(["tar", "-x", "-C", str(old)], input=archive, check=True)
        for code in (ROOT, old) if old is not None else (ROOT,):
            # both versions import from compiled modules (with PYTHONDONTWRITEBYTECODE set, an
            # edited module would otherwise be compiled again in every first call)
            subprocess.run([sys.executable, "-m", "compileall", "-q", str(code / "ckptlab")], check=True)
        print(f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, "
              f"{os.cpu_count()} CPUs (shared), Python {platform.python_version()}, torch {torch.__version__}; "
              f"PYTHONDONTWRITEBYTECODE={os.environ.get('PYTHONDONTWRITEBYTECODE', '')!r}; load average "
              f"{os.getloadavg()[0]:.2f}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
        baseline = max(child("baseline")["peak_mb"] for _ in range(args.repeat))
        print(f"baseline: a process that only imports torch: {baseline:.0f} MB RSS")
        for kind in args.sets.split(","):
            sub = folder / kind
            sub.mkdir()
            try:
                (run_large if kind == "large" else run_realistic)(sub, args, baseline, old)
            finally:
                shutil.rmtree(sub, ignore_errors=True)
        print(f"\nload average at the end: {os.getloadavg()[0]:.2f}; {time.strftime('%H:%M UTC', time.gmtime())}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
