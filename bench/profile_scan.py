"""Where a value scan's time goes: each kernel of a stats run, timed alone; and cache blocking tried.

    python bench/profile_scan.py [--mb 256] [--run 18] [--repeat 5] [--blocks 14,15,16,17]
                                 [--dtypes float32,bfloat16,float16] [--threads 1] [--only passes,hot,blocked]

Torch intra-op threads 1 (as the scan's workers run). CPU seconds (process time of every thread,
so neighbours' load inflates it less than wall time), best of ``--repeat`` interleaved rounds, as
ms per GB of input. Three sections:

``passes``: a float32 tensor of ``--mb`` MB of random normal values is walked in runs of 2**RUN
elements, and each kernel the scan uses (and some it does not) is timed over the whole tensor.
Floors: ``copy_`` into a reused buffer of the same size (memory bandwidth) and one ``max`` per
run (one read of the bytes). ``old run`` / ``new run``: the whole per-run work of the scan before
and after the change that introduced this script. The kernels over ``a`` walk the tensor (RAM);
the float64 buffer's ones (copy_, sum, dot) stay on one run's buffer (cache).

``hot``: each pass over ONE block of 2**k elements, repeated (the block stays in cache): what a
pass costs once its data is in L1/L2, and the per-call overhead that bounds how small a block can be.

``blocked``: the pipeline as ``stats`` and ``diff`` run it: each run of 2**RUN elements copied out of
the source into a reused run buffer (as ``windows.runs`` reads the page cache with ``preadv``),
then scanned: by today's code (``stats._scan_float_run``, ``diff.Sums.add``) and, beside it in
the same rounds, by a cache-blocked version of the same passes (``_blocked_stats``,
``_blocked_diff`` below: every pass over one block of 2**k elements, the float64 copies in
reused block-sized buffers, before the next block), for each ``--blocks`` size and ``--dtypes``.
Prints ms/GB, today / blocked (> 1: blocked is cheaper), and the largest relative difference of
the blocked figures from today's (min, max and counts must be equal; sums differ by float64
round-off only). ``--threads 2`` runs every kernel on two threads at once (each its half of the
runs), as the scan's two default workers share the cores' caches.
"""
from __future__ import annotations

import argparse
import importlib
import math
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
stats = importlib.import_module("ckptlab.values.stats")  # the module (ckptlab.stats is also the function)
diff = importlib.import_module("ckptlab.values.diff")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=256)
    parser.add_argument("--run", type=int, default=18, help="log2 of the elements per run")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--blocks", default="14,15,16,17", help="log2 of the block sizes tried (blocked, hot)")
    parser.add_argument("--dtypes", default="float32,bfloat16,float16", help="dtypes of the blocked section")
    parser.add_argument("--threads", type=int, default=1, help="threads running each blocked kernel at once")
    parser.add_argument("--only", default="passes,hot,blocked", help="sections to run")
    args = parser.parse_args()
    torch.set_num_threads(1)
    sections = args.only.split(",")
    blocks = [int(b) for b in args.blocks.split(",")]
    if "passes" in sections:
        passes(args.mb, args.run, args.repeat)
    if "hot" in sections:
        hot(sorted(set(blocks + [args.run])), args.repeat)
    if "blocked" in sections:
        for name in args.dtypes.split(","):
            blocked(getattr(torch, name), args.mb, args.run, blocks, args.repeat, args.threads)


def _best(kernels: dict, repeat: int) -> dict[str, float]:
    """Best CPU seconds of each kernel over ``repeat`` interleaved rounds."""
    best = {name: math.inf for name in kernels}
    for _ in range(repeat):
        for name, fn in kernels.items():
            t0 = time.process_time()
            fn()
            best[name] = min(best[name], time.process_time() - t0)
    return best


# -- passes: each kernel alone over the whole tensor -------------------------------------------
def passes(mb: int, run_log2: int, repeat: int) -> None:
    x = torch.randn(mb * 2**18, generator=torch.Generator().manual_seed(0)) * 0.02
    run = 1 << run_log2
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
    best = _best(kernels, repeat)
    gb = x.numel() * 4 / 2**30
    print(f"passes: {mb} MB float32, runs of 2**{run_log2}, best of {repeat}, CPU ms per GB of input")
    for name, seconds in best.items():
        print(f"  {name:42} {seconds / gb * 1000:8.0f}")


# -- hot: each pass over one cache-resident block ------------------------------------------------
def hot(block_logs: list[int], repeat: int) -> None:
    print(f"hot: each pass over one float32 block kept in cache, best of {repeat}: us per call, CPU ms per GB")
    for k in block_logs:
        n = 1 << k
        t = torch.randn(n, generator=torch.Generator().manual_seed(0)) * 0.02
        a = t.numpy()
        f64 = t.double()
        bools = np.empty(n, dtype=np.bool_)
        ones = np.ones(n)
        kernels = {
            "numpy min": lambda: float(a.min()),
            "numpy max": lambda: float(a.max()),
            "torch aminmax (one call)": lambda: [float(v) for v in torch.aminmax(t)],
            "numpy zeros (equal into bools + count)": lambda: int(np.count_nonzero(np.equal(a, 0, out=bools))),
            "np.count_nonzero of the float32": lambda: int(np.count_nonzero(a)),
            "float64 copy_ (torch)": lambda: f64.copy_(t),
            "float64 copyto (numpy)": lambda: np.copyto(f64.numpy(), a),
            "float64 sum (torch)": lambda: float(f64.sum()),
            "float64 np.add.reduce": lambda: float(np.add.reduce(f64.numpy())),
            "float64 dot (torch)": lambda: float(torch.dot(f64, f64)),
            "float64 np.dot (numpy's OpenBLAS threads)": lambda: float(np.dot(f64.numpy(), f64.numpy())),
            "float64 np.dot with ones (a sum)": lambda: float(np.dot(f64.numpy(), ones)),
            "np.add.reduce(float32, dtype=float64)": lambda: float(np.add.reduce(a, dtype=np.float64)),
            "np.einsum('i,i->', dtype=float64)": lambda: float(np.einsum("i,i->", a, a, dtype=np.float64)),
        }
        calls = max(20, 2**22 // n)
        best = _best({name: (lambda fn=fn: [fn() for _ in range(calls)]) for name, fn in kernels.items()}, repeat)
        print(f"  block 2**{k} ({n * 4 // 1024} KB of float32), {calls} calls")
        for name, seconds in best.items():
            per_call = seconds / calls
            print(f"    {name:42} {per_call * 1e6:8.2f} us {per_call / (n * 4 / 2**30) * 1000:8.0f}")


# -- blocked: today's run scan against the same passes block by block ----------------------------
def _blocked_stats(block: int):
    """The float stats passes (``_scan_float_run``'s, finite values) block by block, into this
    thread's block-sized buffers (``scratch``: allocated once); a run's block sums are added
    in float64, then split into mean and m2 as today's run sums are."""
    def scan(raw: torch.Tensor) -> stats.Part:
        f32 = stats.scratch.buffer("bench.f32", torch.float32, block)
        f64 = stats.scratch.buffer("bench.f64", torch.float64, block)
        bools = stats.scratch.buffer("bench.bools", torch.bool, block).numpy()
        n = raw.numel()
        lo, hi, zeros, s1, s2 = math.inf, -math.inf, 0, 0.0, 0.0
        for start in range(0, n, block):
            part = raw[start:start + block]
            m = part.numel()
            values = part if raw.dtype == torch.float32 else f32[:m].copy_(part)
            a = values.numpy()
            lo, hi = min(lo, float(a.min())), max(hi, float(a.max()))
            zeros += int(np.count_nonzero(np.equal(a, 0, out=bools[:m])))
            wide = f64[:m].copy_(values)
            s1 += float(wide.sum())
            s2 += float(torch.dot(wide, wide))
        return stats.Part(n, n, zeros, 0, 0, s1 / n, max(s2 - s1 * s1 / n, 0.0), lo, hi)
    return scan


def _blocked_diff(block: int):
    """``Sums.add``'s passes block by block into this thread's block-sized float64 buffers."""
    def add(sums: diff.Sums, a: torch.Tensor, b: torch.Tensor) -> None:
        xs, ys, ds = (stats.scratch.buffer(f"bench.{s}", torch.float64, block) for s in "xyd")
        for start in range(0, a.numel(), block):
            m = min(block, a.numel() - start)
            x, y = xs[:m].copy_(a[start:start + m]), ys[:m].copy_(b[start:start + m])
            d = torch.sub(x, y, out=ds[:m])
            v = d.numpy()
            sums.max_abs = max(sums.max_abs, -float(v.min()), float(v.max()))
            sums.dd += float(torch.dot(d, d))
            sums.aa += float(torch.dot(x, x))
            sums.bb += float(torch.dot(y, y))
            sums.ab += float(torch.dot(x, y))
    return add


def _on_threads(threads: int, job):
    """``job(i, threads)`` on ``threads`` threads at once (torch intra-op threads 1 in each)."""
    if threads == 1:
        return lambda: [job(0, 1)]
    pool = ThreadPoolExecutor(threads, initializer=torch.set_num_threads, initargs=(1,))
    return lambda: list(pool.map(job, range(threads), [threads] * threads))


def _stats_job(x: torch.Tensor, run: int, scan):
    """Thread i of k: reads its runs (every k-th) into its own reused buffer, scans each."""
    def job(i: int, k: int) -> stats.Part:
        buf = torch.empty(run, dtype=x.dtype)
        part = stats.Part()
        for start in range(i * run, x.numel(), k * run):
            values = buf[:min(run, x.numel() - start)].copy_(x[start:start + run])
            if scan is not None:
                part = part.merge(scan(values))
        return part
    return job


def _diff_job(a: torch.Tensor, b: torch.Tensor, run: int, add):
    def job(i: int, k: int) -> diff.Sums:
        ba, bb = torch.empty(run, dtype=a.dtype), torch.empty(run, dtype=b.dtype)
        sums = diff.Sums()
        for start in range(i * run, a.numel(), k * run):
            m = min(run, a.numel() - start)
            ra, rb = ba[:m].copy_(a[start:start + m]), bb[:m].copy_(b[start:start + m])
            if add is not None:
                add(sums, ra, rb)
        return sums
    return job


def _stats_gap(got: list, want: list) -> str:
    """Counts and range must be equal; the largest relative difference of mean and m2."""
    g, w = _merged(got), _merged(want)
    if (g.numel, g.zeros, g.min, g.max) != (w.numel, w.zeros, w.min, w.max):
        return f"DIFFERENT counts/range: {g} vs {w}"
    return f"{max(_rel(g.mean, w.mean), _rel(g.m2, w.m2)):.1e}"


def _diff_gap(got: list, want: list) -> str:
    g, w = _summed(got), _summed(want)
    if g.max_abs != w.max_abs:
        return f"DIFFERENT max_abs: {g.max_abs} vs {w.max_abs}"
    return f"{max(_rel(getattr(g, f), getattr(w, f)) for f in ('dd', 'aa', 'bb', 'ab')):.1e}"


def _merged(parts: list) -> stats.Part:
    out = stats.Part()
    for p in parts:
        out = out.merge(p)
    return out


def _summed(parts: list) -> diff.Sums:
    out = diff.Sums()
    for p in parts:
        out.max_abs = max(out.max_abs, p.max_abs)
        out.dd, out.aa, out.bb, out.ab = out.dd + p.dd, out.aa + p.aa, out.bb + p.bb, out.ab + p.ab
    return out


def _rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-300)


def blocked(dtype: torch.dtype, mb: int, run_log2: int, block_logs: list[int], repeat: int, threads: int) -> None:
    run = 1 << run_log2
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(mb * 2**20 // dtype.itemsize, generator=g) * 0.02).to(dtype)
    half = x[: x.numel() // 2]
    y = (half.float() + 1e-3).to(dtype)  # the diff's pair: 1/2 of the tensor each, as many bytes in all
    stats_k = {"read only": _stats_job(x, run, None), "today": _stats_job(x, run, stats._scan_float_run)}
    diff_k = {"read only": _diff_job(half, y, run, None),
              "today": _diff_job(half, y, run, lambda s, a, b: s.add(a, b))}
    for k in block_logs:
        stats_k[f"blocked 2**{k}"] = _stats_job(x, run, _blocked_stats(1 << k))
        diff_k[f"blocked 2**{k}"] = _diff_job(half, y, run, _blocked_diff(1 << k))
    results: dict[str, list] = {}
    kernels = {}
    for kind, jobs in (("stats", stats_k), ("diff", diff_k)):
        for name, job in jobs.items():
            runner = _on_threads(threads, job)
            kernels[(kind, name)] = lambda key=(kind, name), runner=runner: results.__setitem__(key, runner())
    best = _best(kernels, repeat)
    gb = x.numel() * dtype.itemsize / 2**30
    print(f"blocked: {mb} MB of {str(dtype).removeprefix('torch.')} (diff: two halves), runs of 2**{run_log2}, "
          f"{threads} thread(s), best of {repeat}: CPU ms per GB, today / this, largest relative gap from today")
    for (kind, name), seconds in best.items():
        today = best[(kind, "today")]
        gap = ""
        if name.startswith("blocked"):
            gap_of = _stats_gap if kind == "stats" else _diff_gap
            gap = gap_of(results[(kind, name)], results[(kind, "today")])
        print(f"  {kind:5} {name:14} {seconds / gb * 1000:8.0f} {today / seconds:7.2f}x  {gap}")


if __name__ == "__main__":
    main()
