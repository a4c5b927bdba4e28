"""Stats and diff speed and memory beside a plain read of the same bytes.

    python bench/bench_values.py [--sets large,realistic] [--size-gb 1] [--tensor-mb 64] [--layers 125]
                                 [--shards 10] [--dir DIR] [--repeat 3] [--cold] [--only JOB,JOB]
                                 [--baseline GIT_REV]

Two sets of files, one after the other (each deleted before the next is written):
``large``: float32 tensors of ``--tensor-mb`` (64 MB) and their 4 KB biases, ``--size-gb`` in all;
``realistic``: a transformer's shape, ``--layers`` GPT-2-style blocks of width 384 (16 tensors
each: layer norms, q/k/v/o projections of 0.56 MB, two 2.25 MB MLP matrices, their biases;
125 layers = 2,000 tensors, 0.83 GB), every tensor under the scans' 16 MB window.
In ONE run, on freshly written files (so all read from the page cache alike), each job in a
fresh subprocess:
1. ``cat FILE > /dev/null`` (the floor: every byte read once), and ``cat A B`` for a diff;
2. ``ckptlab.values.stats`` of a float32 ``torch.save`` zip (random normal values), with the default
   worker threads (single-threaded torch each), and with one such worker;
3. ``ckptlab.values.diff`` of it against its byte copy (``cp``): the "is it the same?" case;
4. ``ckptlab.values.diff`` against a copy whose every tensor changed by 1e-3 (the float path:
   max_abs, rel_l2, cosine over every value);
5. the same stats and diff on a 10-shard ``model.safetensors.index.json`` set of the same tensors
   (against its byte copy, and against the changed ``.pt``: the float path with shards on A's side);
6. (realistic set) stats of a ``.pt`` of the same tensors saved as non-contiguous views, which no
   reader can offer as a file span: each tensor is loaded whole (memory bounded by the largest).
Reported: wall time of the call and its ratio to ``cat`` of the same bytes, the same for CPU
seconds (user + system, every thread: what the neighbours' load does not inflate), the peak of
anonymous memory (``RssAnon``, sampled every 10 ms by a thread of the child; the scan's workers
are threads of it) above its level after ``import torch`` and ckptlab, and the peak RSS (VmHWM,
reset at that point: also counts the file pages a mapped window touches) above that point.
``--baseline REV`` also runs every job with the ``ckptlab`` package of that git revision
(extracted with ``git archive`` into the temp dir), interleaved with the current code in the
same repeats, and prints the baseline's time, its peaks and the speed-up (baseline / current).
Targets (issue 20): <= 1.5x the read, <= 64 MB of anonymous memory above ``import torch``.
``--cold`` evicts the benchmark's own files from the page cache (``posix_fadvise DONTNEED``)
before each cat and each job, so both read from disk. Files are deleted at the end.
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
folder, kind, size, tensor_bytes, layers, shards = sys.argv[1:7]
g = torch.Generator().manual_seed(0)
sd = {}
if kind == "large":
    total, i = 0, 0
    while total < int(size):
        n = min(int(tensor_bytes), int(size) - total) // 4
        sd[f"layers.{i}.weight"] = torch.randn(n // 1024, 1024, generator=g) * 0.02
        sd[f"layers.{i}.bias"] = torch.zeros(1024)
        total += n // 1024 * 4096 + 4096
        i += 1
else:  # GPT-2-style blocks, width 384: 16 tensors each, none above 2.25 MB
    d = 384
    for i in range(int(layers)):
        p = f"h.{i}."
        for ln in ("ln_1", "ln_2"):
            sd[p + ln + ".weight"] = 1 + torch.randn(d, generator=g) * 0.05
            sd[p + ln + ".bias"] = torch.randn(d, generator=g) * 0.01
        for proj in ("q_proj", "k_proj", "v_proj", "o_proj"):
            sd[p + "attn." + proj + ".weight"] = torch.randn(d, d, generator=g) * 0.02
            sd[p + "attn." + proj + ".bias"] = torch.zeros(d)
        sd[p + "mlp.fc_in.weight"] = torch.randn(4 * d, d, generator=g) * 0.02
        sd[p + "mlp.fc_in.bias"] = torch.randn(4 * d, generator=g) * 0.01
        sd[p + "mlp.fc_out.weight"] = torch.randn(d, 4 * d, generator=g) * 0.02
        sd[p + "mlp.fc_out.bias"] = torch.zeros(d)
    torch.save({k: v.t().contiguous().t() if v.dim() == 2 else v.clone() for k, v in sd.items()},
               f"{folder}/views.pt")
torch.save(sd, f"{folder}/a.pt")
changed = {k: v + 1e-3 for k, v in sd.items()}
torch.save(changed, f"{folder}/changed.pt")
keys = list(sd)
per = -(-len(keys) // int(shards))
weight_map = {}
for s in range(int(shards)):
    name = f"model-{s + 1:05d}-of-{int(shards):05d}.safetensors"
    part = {k: sd[k] for k in keys[s * per:(s + 1) * per]}
    save_file(part, f"{folder}/shards/{name}")
    weight_map.update({k: name for k in part})
with open(f"{folder}/shards/model.safetensors.index.json", "w") as f:
    json.dump({"metadata": {}, "weight_map": weight_map}, f)
print(len(sd))
"""

CHILD = r"""
import json, resource, sys, threading, time


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
rss0, anon0 = status("VmRSS"), status("RssAnon")
anon_peak, done = [anon0], threading.Event()


def sample():  # RssAnon has no high-water mark of its own
    while not done.is_set():
        anon_peak[0] = max(anon_peak[0], status("RssAnon"))
        done.wait(0.01)


sampler = threading.Thread(target=sample, daemon=True)
sampler.start()
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
done.set()
sampler.join()
anon = max(anon_peak[0], status("RssAnon")) - anon0
cpu = u1.ru_utime - u0.ru_utime + u1.ru_stime - u0.ru_stime
print(json.dumps({"seconds": seconds, "cpu": cpu, "peak_above_mb": status("VmHWM") - rss0, "anon_mb": anon,
                  "n": n, "code": ckptlab.__file__}))
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


def make_set(base: Path, kind: str, args) -> int:
    """Write one set's files under ``base`` (a.pt, b.pt, changed.pt, shards/, shards_copy/, and
    views.pt for the realistic set); the number of tensors."""
    (base / "shards").mkdir(parents=True)
    (base / "shards_copy").mkdir()
    out = subprocess.run([sys.executable, "-c", MAKE, str(base), kind, str(int(args.size_gb * 2**30)),
                          str(int(args.tensor_mb * 2**20)), str(args.layers), str(args.shards)],
                         check=True, capture_output=True, text=True)
    shutil.copyfile(base / "a.pt", base / "b.pt")
    for f in shard_files(base / "shards"):
        shutil.copyfile(f, base / "shards_copy" / f.name)
    shutil.copyfile(base / "shards" / "model.safetensors.index.json",
                    base / "shards_copy" / "model.safetensors.index.json")
    return int(out.stdout.split()[-1])


def set_jobs(base: Path, kind: str) -> dict[str, tuple]:
    a, b, changed = base / "a.pt", base / "b.pt", base / "changed.pt"
    sa = base / "shards" / "model.safetensors.index.json"
    sb = base / "shards_copy" / "model.safetensors.index.json"
    shards, shards_copy = tuple(shard_files(base / "shards")), tuple(shard_files(base / "shards_copy"))
    jobs = {
        "stats .pt": (("stats", a), (a,)),
        "stats .pt 1 worker": (("stats", a), (a,), {"CKPTLAB_WORKERS": "1"}),
        "diff .pt vs copy": (("diff", a, b), (a, b)),
        "diff .pt vs changed": (("diff", a, changed), (a, changed)),
        "stats 10 shards": (("stats", sa), shards),
        "diff 10 shards vs copy": (("diff", sa, sb), shards + shards_copy),
        "diff 10 shards vs changed .pt": (("diff", sa, changed), shards + (changed,)),
    }
    if kind == "realistic":
        jobs["stats .pt of views (whole loads)"] = (("stats", base / "views.pt"), (base / "views.pt",))
    return jobs


def run_set(base: Path, kind: str, args, old_code: Path | None) -> None:
    count = make_set(base, kind, args)
    only = set(args.only.split(",")) if args.only else None
    os.sync()
    if not args.cold:
        cat(*base.rglob("*.pt"), *base.rglob("*.safetensors"))  # warm the page cache for everyone
    size = (base / "a.pt").stat().st_size
    print(f"\n== {kind}: {count} tensors, {size / 2**30:.2f} GB per checkpoint; load average "
          f"{os.getloadavg()[0]:.2f}; {'cold (evicted before each read)' if args.cold else 'page cache'}")
    head = (f"{'job':34} {'wall s':>7} {'cat s':>6} {'ratio':>7} {'CPU s':>6} {'cat CPU':>7} {'ratio':>7} "
            f"{'anon MB':>7} {'RSS MB':>6}")
    if old_code:
        head += f" | {'base wall':>9} {'ratio':>6} {'CPU':>5} {'ratio':>6} {'anon':>5} {'speed-up wall/CPU':>17}"
    print(head)
    files = [p for p in base.rglob("*") if p.is_file()]
    for name, (call, read, *env) in set_jobs(base, kind).items():
        if only and name not in only:
            continue
        runs, reads, olds = [], [], []
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
        line = (f"{name:34} {best:7.2f} {floor:6.2f} {best / floor:6.2f}x {cpu:6.2f} {floor_cpu:7.2f} "
                f"{cpu / floor_cpu:6.2f}x {max(r['anon_mb'] for r in runs):7.0f} "
                f"{max(r['peak_above_mb'] for r in runs):6.0f}")
        if olds:
            old, old_cpu = min(r["seconds"] for r in olds), min(r["cpu"] for r in olds)
            old_anon = max(r.get("anon_mb", float("nan")) for r in olds)
            line += (f" | {old:9.2f} {old / floor:5.2f}x {old_cpu:5.2f} {old_cpu / floor_cpu:5.2f}x "
                     f"{old_anon:5.0f} {old / best:8.2f}x/{old_cpu / cpu:.2f}x")
        print(line, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default="large,realistic", help="which sets of files: large, realistic")
    parser.add_argument("--size-gb", type=float, default=1.0, help="size of the large set's checkpoint")
    parser.add_argument("--tensor-mb", type=float, default=64, help="the large set's tensor size")
    parser.add_argument("--layers", type=int, default=125, help="the realistic set's blocks (16 tensors each)")
    parser.add_argument("--shards", type=int, default=10)
    parser.add_argument("--dir", default=None, help="where to write the files (default: a temp dir)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (best time, max memory)")
    parser.add_argument("--only", default=None, help="comma-separated job names to run (default: all)")
    parser.add_argument("--baseline", default=None, metavar="GIT_REV",
                        help="also time the ckptlab package of this git revision, interleaved (before/after)")
    parser.add_argument("--cold", action="store_true",
                        help="evict the files from the page cache before every cat and every job (disk reads)")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="bench_values_", dir=args.dir))
    try:
        old_code = None
        if args.baseline:
            old_code = base / "baseline"
            old_code.mkdir()
            archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.baseline, "ckptlab"],
                                     capture_output=True, check=True).stdout
            subprocess.run(["tar", "-x", "-C", str(old_code)], input=archive, check=True)
        print(f"machine: {platform.system()} {platform.machine()}, {os.cpu_count()} cpus (shared), "
              f"python {platform.python_version()}; workers {os.environ.get('CKPTLAB_WORKERS', 'default')}; "
              f"load average {os.getloadavg()[0]:.2f}; {time.strftime('%H:%M UTC', time.gmtime())}")
        for kind in args.sets.split(","):
            folder = base / kind
            try:
                run_set(folder, kind, args, old_code)
            finally:
                shutil.rmtree(folder, ignore_errors=True)
        print(f"\nload average at the end: {os.getloadavg()[0]:.2f}; {time.strftime('%H:%M UTC', time.gmtime())}")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
