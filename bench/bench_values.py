"""Stats and diff speed and memory beside a plain read of the same bytes.

    python bench/bench_values.py [--size-gb 2.5] [--tensor-mb 64] [--shards 10] [--dir DIR] [--repeat 3]
                                 [--cold] [--only JOB,JOB] [--baseline GIT_REV]

In ONE run, on freshly written files (so all read from the page cache alike), each job in a
fresh subprocess:
1. ``cat FILE > /dev/null`` (the floor: every byte read once), and ``cat A B`` for a diff;
2. ``ckptlab.stats`` of a 2.5 GB float32 ``torch.save`` zip (random normal values), with the
   default worker threads (single-threaded torch each), with one such worker, and with one
   worker letting torch use 2 intra-op threads (is our own parallelism worth it?);
3. ``ckptlab.diff`` of it against its byte copy (``cp``): the "is it the same?" case;
4. ``ckptlab.diff`` against a copy whose every tensor changed by one ulp-ish step (the
   float path: max_abs, rel_l2, cosine over every value);
5. the same stats and diff on a 10-shard ``model.safetensors.index.json`` set of the same tensors
   (against its byte copy, and against the changed ``.pt``: the float path with shards on A's side).
Reported: wall time of the call and its ratio to ``cat`` of the same bytes, the same for CPU
seconds (user + system, every thread: what the neighbours' load does not inflate), and peak RSS
(VmHWM, reset after ``import torch`` and ckptlab) as MB above that point.
``--baseline REV`` also runs every job with the ``ckptlab`` package of that git revision
(extracted with ``git archive`` into the temp dir), interleaved with the current code in the
same repeats, and prints the baseline's time and the speed-up (baseline / current).
Targets (DESIGN.md): <= 1.5x the read, <= 256 MB above ``import torch``. ``--cold`` evicts
the benchmark's own files from the page cache (``posix_fadvise DONTNEED``) before each cat and
each job, so both read from disk. Files are deleted at the end.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

MAKE = r"""
import json, sys, torch
from safetensors.torch import save_file
folder, size, tensor_bytes, shards = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
g = torch.Generator().manual_seed(0)
sd, total, i = {}, 0, 0
while total < size:
    n = min(tensor_bytes, size - total) // 4
    sd[f"layers.{i}.weight"] = torch.randn(n // 1024, 1024, generator=g) * 0.02
    sd[f"layers.{i}.bias"] = torch.zeros(1024)
    total += n // 1024 * 4096 + 4096
    i += 1
torch.save(sd, f"{folder}/a.pt")
changed = {k: v + 1e-3 for k, v in sd.items()}
torch.save(changed, f"{folder}/changed.pt")
keys = list(sd)
per = -(-len(keys) // shards)
weight_map = {}
for s in range(shards):
    name = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
    part = {k: sd[k] for k in keys[s * per:(s + 1) * per]}
    save_file(part, f"{folder}/shards/{name}")
    weight_map.update({k: name for k in part})
with open(f"{folder}/shards/model.safetensors.index.json", "w") as f:
    json.dump({"metadata": {}, "weight_map": weight_map}, f)
"""

CHILD = r"""
import json, resource, sys, time


def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024  # kB -> MB
    raise KeyError(field)


import torch
import ckptlab
import importlib
for name in ("ckptlab.values.stats", "ckptlab.values.diff", "ckptlab.io.windows", "ckptlab.values.parallel"):
    importlib.import_module(name)  # imported before the clock starts
mode, a, b = sys.argv[1], sys.argv[2], sys.argv[3]
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # reset the peak (VmHWM) to the current RSS: measure only what follows
rss0 = status("VmRSS")
u0 = resource.getrusage(resource.RUSAGE_SELF)
t0 = time.perf_counter()
if mode == "stats":
    result = ckptlab.stats(a)
    n = len(result)
else:
    result = ckptlab.diff(a, b)
    n = result.summary["equal"]
seconds = time.perf_counter() - t0
u1 = resource.getrusage(resource.RUSAGE_SELF)
cpu = u1.ru_utime - u0.ru_utime + u1.ru_stime - u0.ru_stime
print(json.dumps({"seconds": seconds, "cpu": cpu, "peak_above_mb": status("VmHWM") - rss0, "n": n,
                  "code": ckptlab.__file__}))
"""


def child(mode: str, a: Path, b: Path | str = "-", code: Path = ROOT, **extra_env: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(code), **extra_env}
    # run in ``code``: ``python -c`` puts the working directory first on sys.path, ahead of PYTHONPATH
    out = subprocess.run([sys.executable, "-c", CHILD, mode, str(a), str(b)], capture_output=True, text=True,
                         check=True, env=env, cwd=code)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert Path(got["code"]).resolve().is_relative_to(Path(code).resolve()), (got["code"], code)
    return got


def evict(paths) -> None:
    """Drop these files' pages from the page cache (only theirs: other processes keep theirs)."""
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fdatasync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def cat(*paths: Path) -> tuple[float, float]:
    """(wall, CPU) seconds of ``cat`` reading these files."""
    u0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(["cat", *map(str, paths)], stdout=subprocess.DEVNULL, check=True)
    seconds = time.perf_counter() - t0
    u1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return seconds, u1.ru_utime - u0.ru_utime + u1.ru_stime - u0.ru_stime


def shard_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.safetensors"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-gb", type=float, default=2.5)
    parser.add_argument("--tensor-mb", type=float, default=64)
    parser.add_argument("--shards", type=int, default=10)
    parser.add_argument("--dir", default=None, help="where to write the files (default: a temp dir)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (best time, max RSS)")
    parser.add_argument("--only", default=None, help="comma-separated job names to run (default: all)")
    parser.add_argument("--baseline", default=None, metavar="GIT_REV",
                        help="also time the ckptlab package of this git revision, interleaved (before/after)")
    parser.add_argument("--cold", action="store_true",
                        help="evict the files from the page cache before every cat and every job (disk reads)")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="bench_values_", dir=args.dir))
    try:
        (base / "shards").mkdir()
        (base / "shards_copy").mkdir()
        size = int(args.size_gb * 2**30)
        subprocess.run([sys.executable, "-c", MAKE, str(base), str(size), str(int(args.tensor_mb * 2**20)),
                        str(args.shards)], check=True)
        shutil.copyfile(base / "a.pt", base / "b.pt")
        for f in shard_files(base / "shards"):
            shutil.copyfile(f, base / "shards_copy" / f.name)
        shutil.copyfile(base / "shards" / "model.safetensors.index.json",
                        base / "shards_copy" / "model.safetensors.index.json")
        old_code = None
        if args.baseline:
            old_code = base / "baseline"
            old_code.mkdir()
            archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.baseline, "ckptlab"],
                                     capture_output=True, check=True).stdout
            subprocess.run(["tar", "-x", "-C", str(old_code)], input=archive, check=True)
        a, b, changed = base / "a.pt", base / "b.pt", base / "changed.pt"
        sa = base / "shards" / "model.safetensors.index.json"
        sb = base / "shards_copy" / "model.safetensors.index.json"
        jobs = {
            "stats .pt": (("stats", a), (a,)),
            "stats .pt 1 worker": (("stats", a), (a,), {"CKPTLAB_WORKERS": "1"}),
            "stats .pt 2 workers": (("stats", a), (a,), {"CKPTLAB_WORKERS": "2"}),
            "stats .pt 1 worker x 2 torch threads": (("stats", a), (a,),
                                                       {"CKPTLAB_WORKERS": "1", "CKPTLAB_WORKER_THREADS": "2"}),
            "diff .pt vs copy": (("diff", a, b), (a, b)),
            "diff .pt vs changed": (("diff", a, changed), (a, changed)),
            "stats 10 shards": (("stats", sa), tuple(shard_files(base / "shards"))),
            "diff 10 shards vs copy": (("diff", sa, sb),
                                       tuple(shard_files(base / "shards")) + tuple(shard_files(base / "shards_copy"))),
            "diff 10 shards vs changed .pt": (("diff", sa, changed), tuple(shard_files(base / "shards")) + (changed,)),
        }
        only = set(args.only.split(",")) if args.only else None
        os.sync()
        if not args.cold:
            cat(*base.rglob("*.pt"), *base.rglob("*.safetensors"))  # warm the page cache for everyone
        print(f"machine: {platform.system()} {platform.machine()}, {os.cpu_count()} cpus (shared), "
              f"python {platform.python_version()}; {a.stat().st_size / 2**30:.2f} GB per checkpoint; "
              f"load average {os.getloadavg()[0]:.2f}; "
              f"{'cold (evicted before each read)' if args.cold else 'page cache'}\n")
        head = (f"{'job':38} {'wall s':>7} {'cat s':>6} {'ratio':>7} {'CPU s':>6} {'cat CPU':>7} {'ratio':>7} "
                f"{'peak MB':>8}")
        if old_code:
            head += f" | {'baseline wall':>13} {'ratio':>7} {'CPU':>6} {'ratio':>7} {'speed-up wall/CPU':>18}"
        print(head)
        for name, (call, read, *env) in jobs.items():
            if only and name not in only:
                continue
            runs, reads, olds = [], [], []
            files = [p for p in base.rglob("*") if p.is_file()]
            for _ in range(args.repeat):  # alternate, so load changes hit both alike
                if args.cold:
                    evict(files)
                reads.append(cat(*read))
                if args.cold:
                    evict(files)
                runs.append(child(*call, **(env[0] if env else {})))
                if old_code:
                    if args.cold:
                        evict(files)
                    olds.append(child(*call, code=old_code, **(env[0] if env else {})))
            best, cpu = min(r["seconds"] for r in runs), min(r["cpu"] for r in runs)
            floor, floor_cpu = min(w for w, _ in reads), max(1e-3, min(c for _, c in reads))
            line = (f"{name:38} {best:7.2f} {floor:6.2f} {best / floor:6.2f}x {cpu:6.2f} {floor_cpu:7.2f} "
                    f"{cpu / floor_cpu:6.2f}x {max(r['peak_above_mb'] for r in runs):8.0f}")
            if olds:
                old, old_cpu = min(r["seconds"] for r in olds), min(r["cpu"] for r in olds)
                line += (f" | {old:13.2f} {old / floor:6.2f}x {old_cpu:6.2f} {old_cpu / floor_cpu:6.2f}x "
                         f"{old / best:8.2f}x/{old_cpu / cpu:.2f}x")
            print(line, flush=True)
        print(f"\nload average at the end: {os.getloadavg()[0]:.2f}")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
