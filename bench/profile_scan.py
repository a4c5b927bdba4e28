"""Where a value scan's time goes: each kernel of a stats run, timed alone over 256 MB of float32.

    python bench/profile_scan.py [--mb 256] [--run 18] [--repeat 5]

One thread, torch intra-op threads 1 (as the scan's workers run). A float32 tensor of random
normal values is walked in runs of 2**RUN elements, and each kernel the scan uses (and some it
does not) is timed over the whole tensor: CPU seconds (process time, so neighbours' load
inflates it less than wall time), best of ``--repeat`` interleaved rounds, as ms per GB of
float32 input. Floors: ``copy_`` into a reused buffer of the same size (memory bandwidth) and
one ``max`` per run (one read of the bytes). ``old run`` / ``new run`` are the whole per-run
work of the scan before and after the change that introduced this script.
"""
from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
stats = importlib.import_module("ckptlab.values.stats")  # the module (ckptlab.stats is also the function)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=256)
    parser.add_argument("--run", type=int, default=18, help="log2 of the elements per run")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    x = torch.randn(args.mb * 2**18, generator=torch.Generator().manual_seed(0)) * 0.02
    run = 1 << args.run
    runs = [x[s:s + run] for s in range(0, x.numel(), run)]
    arrays = [r.numpy() for r in runs]
    f64 = runs[0].double()  # the reused float64 buffer (its values: a run's)
    bools = np.empty(run, dtype=np.bool_)
    floor = torch.empty_like(x)

    def each(fn):
        return lambda: [fn(r, a) for r, a in zip(runs, arrays)]

    def old_run(r, a):  # the scan before: allocating float64 copy, torch count/aminmax, shifted sums
        int(torch.count_nonzero(r)); [float(v) for v in torch.aminmax(r)]
        w = r.double(); w.sub_(float(r[0])); float(w.sum()); float(torch.dot(w, w))

    kernels = {
        "floor: copy_ into a reused buffer": lambda: floor.copy_(x),
        "floor: numpy max per run (one read)": each(lambda r, a: float(a.max())),
        "numpy min + max": each(lambda r, a: (float(a.min()), float(a.max()))),
        "torch aminmax": each(lambda r, a: [float(v) for v in torch.aminmax(r)]),
        "numpy zeros (equal into bools + count)": each(lambda r, a: int(np.count_nonzero(np.equal(a, 0, out=bools)))),
        "torch count_nonzero": each(lambda r, a: int(torch.count_nonzero(r))),
        "float64 copy_ into a reused buffer": each(lambda r, a: f64[:r.numel()].copy_(r)),
        "r.double() (a new float64 tensor)": each(lambda r, a: r.double()),
        "float64 sum (of the buffer)": each(lambda r, a: float(f64.sum())),
        "float64 dot (of the buffer with itself)": each(lambda r, a: float(torch.dot(f64, f64))),
        "torch.sum(r, dtype=float64) (no copy)": each(lambda r, a: float(torch.sum(r, dtype=torch.float64))),
        "torch.var_mean(r, correction=0)": each(lambda r, a: [float(v) for v in torch.var_mean(r, correction=0)]),
        "old run (before)": each(old_run),
        "new run (stats._scan_float_run)": each(lambda r, a: stats._scan_float_run(r)),
    }
    best = {name: float("inf") for name in kernels}
    for _ in range(args.repeat):
        for name, fn in kernels.items():
            t0 = time.process_time()
            fn()
            best[name] = min(best[name], time.process_time() - t0)
    gb = x.numel() * 4 / 2**30
    print(f"{args.mb} MB float32, runs of 2**{args.run}, best of {args.repeat}, CPU ms per GB of input")
    for name, seconds in best.items():
        print(f"{name:42} {seconds / gb * 1000:8.0f}")


if __name__ == "__main__":
    main()
