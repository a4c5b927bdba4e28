"""Conversions at scale: a transposing remap beside ``cp``, and align on degenerate pairs.

    python bench/bench_convert.py [--gb 1.0] [--dir DIR] [--keys 20000] [--repeats 3] [--skip-remap]
                                  [--skip-align] [--old-write] [--baseline GIT_REV] [--pt]

1. Remap: a GPT-2-style float32 checkpoint of about ``--gb`` GB (HF layout: every
   ``Conv1D`` weight stored (in, out)) is written as ``.safetensors`` through the
   transpose recipe (``ckptlab/known/gpt2_to_nanogpt.yaml``: every attention and MLP weight
   transposed, the rest copied) in a child process whose peak RSS is its own ``VmHWM``
   (``wait4``'s ru_maxrss can carry the parent's size over the fork); ``cp`` of the same file runs in the same run, interleaved, and the ratio of
   the best times is printed. ``--old-write`` adds a third job in the same rounds: the same
   remap with every tensor written in one ``pwrite`` (the writer before ``WRITE_PIECE``).
   ``--baseline REV`` adds the same remap by revision REV's ``ckptlab`` (``git archive``) in
   the same rounds, and ``--pt`` the same remaps to ``.pt`` (every converted tensor CRC-32
   hashed); the round order is reversed every other round, and the outputs of the first
   round are hashed (sha256, untimed): every version must write the same bytes.
2. Align: two ``--keys``-key checkpoints with every tensor of the same shape under other
   names (nothing but the names to go on), and two with zero-size tensors under the same
   names (in memory they all sit at data_ptr 0: once taken for one tied group of 20,000).
   Checkpoints are built before timing; ``align(auto="all")`` is timed, median of 3.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def machine() -> str:
    return (f"{platform.platform()}, {platform.machine()}, {os.cpu_count()} CPUs, "
            f"Python {platform.python_version()}")


# -- 2. align -----------------------------------------------------------------------------
def bench_align(n: int) -> None:
    import torch

    sys.path.insert(0, str(ROOT / "bench"))
    from bench_align import timed  # (median wall, last result, median CPU) over repeats

    from ckptlab.align.matcher import align
    from ckptlab.io.checkpoint import Checkpoint

    same_src = Checkpoint.from_mapping({f"encoder.{i}.w": torch.empty(8, 8, device="meta") for i in range(n)})
    same_tgt = Checkpoint.from_mapping({f"blocks.{i}.weight": torch.empty(8, 8, device="meta") for i in range(n)})
    seconds, al, cpu = timed(lambda: align(same_src, same_tgt, auto="all"), 3)
    print(f"align {n} x {n} keys, every tensor (8, 8), other names: median {seconds:.3f} s wall, {cpu:.3f} s CPU; "
          f"{al.summary}; suggestions: " + ", ".join(f"{s.confidence} ({s.keys} keys)" for s in al.suggestions))
    zero_src = Checkpoint.from_mapping({f"layers.{i}.w": torch.empty(0) for i in range(n)})
    zero_tgt = Checkpoint.from_mapping({f"layers.{i}.w": torch.empty(0) for i in range(n)})
    seconds, al, cpu = timed(lambda: align(zero_src, zero_tgt, auto="all"), 3)
    print(f"align {n} x {n} zero-size in-memory tensors, same names: median {seconds:.3f} s wall, {cpu:.3f} s CPU; "
          f"{al.summary}")


# -- 1. remap -----------------------------------------------------------------------------
MAKE_GPT2 = """
import sys, torch
from safetensors.torch import save_file
path, gb = sys.argv[1], float(sys.argv[2])
d, vocab = 1024, 50257
shapes = {"ln_1.weight": (d,), "ln_1.bias": (d,), "attn.c_attn.weight": (d, 3 * d), "attn.c_attn.bias": (3 * d,),
          "attn.c_proj.weight": (d, d), "attn.c_proj.bias": (d,), "ln_2.weight": (d,), "ln_2.bias": (d,),
          "mlp.c_fc.weight": (d, 4 * d), "mlp.c_fc.bias": (4 * d,), "mlp.c_proj.weight": (4 * d, d),
          "mlp.c_proj.bias": (d,)}
per_layer = sum(torch.Size(s).numel() for s in shapes.values())
layers = max(1, int((gb * 1e9 / 4 - (vocab + 1024 + 2) * d) // per_layer))
g = torch.Generator().manual_seed(0)
sd = {"transformer.wte.weight": torch.randn(vocab, d, generator=g), "transformer.wpe.weight": torch.randn(1024, d, generator=g)}
for i in range(layers):
    for name, shape in shapes.items():
        sd[f"transformer.h.{i}.{name}"] = torch.randn(shape, generator=g)
sd["transformer.ln_f.weight"], sd["transformer.ln_f.bias"] = torch.ones(d), torch.zeros(d)
save_file(sd, path)
print(layers)
"""

# the nanoGPT layout as the target (meta tensors: nothing allocated), the known recipe
REMAP_TRANSPOSED = """
import json, sys, time, resource, torch
import ckptlab, ckptlab.merge.planning, ckptlab.align.matcher  # imported before the clock starts, with the modules
import ckptlab.align.suggest.pipeline, ckptlab.align.suggest.structure, ckptlab.align.warnings, ckptlab.models.finetune, ckptlab.align.suggest.known  # a remap
import ckptlab.io.windows, ckptlab.io.containers, ckptlab.io.formats.safetensors_fmt  # imports lazily (each is
import safetensors  # compiled from source where PYTHONDONTWRITEBYTECODE is set: ckptlab.align.suggest.pipeline ~0.1 s)
from ckptlab.io.checkpoint import Checkpoint
from ckptlab.recipe.known import get
import gc
gc.collect()  # the imports leave ~170k objects: their first full collection (~0.2 s) is import cost
src, out = sys.argv[1], sys.argv[2]
if sys.argv[3:] == ["old-write"]:  # the writer as it was: one pwrite per tensor
    import ckptlab.io.writers.sink
    ckptlab.io.writers.sink.WRITE_PIECE = 1 << 62
usage0 = resource.getrusage(resource.RUSAGE_SELF)
rss0 = usage0.ru_maxrss / 1024
t0 = time.perf_counter()
source = ckptlab.open(src)
flip = (".attn.c_attn.weight", ".attn.c_proj.weight", ".mlp.c_fc.weight", ".mlp.c_proj.weight")
target = Checkpoint.from_mapping({k: torch.empty(tuple(source.info(k).shape)[::-1] if k.endswith(flip)
                                                 else source.info(k).shape, device="meta") for k in source.keys()})
rep = ckptlab.remap(source, target, out, recipe=get("gpt2-to-nanogpt").recipe(), auto="none")
seconds = time.perf_counter() - t0
usage1 = resource.getrusage(resource.RUSAGE_SELF)
cpu = usage1.ru_utime - usage0.ru_utime + usage1.ru_stime - usage0.ru_stime
assert rep.summary["converted"] and not rep.summary["mismatch"] and not rep.summary["missing"], rep.summary
with open("/proc/self/status") as f:  # this process's own peak (ru_maxrss may carry the parent's over fork)
    hwm = next((int(line.split()[1]) / 1024 for line in f if line.startswith("VmHWM:")), None)
print(json.dumps({"seconds": seconds, "cpu_seconds": cpu, "rss_start_mb": rss0, "vm_hwm_mb": hwm,
                  "converted": rep.summary["converted"]}))
"""


def measure(argv: list[str], cwd: Path = ROOT) -> dict:
    """Run a command; wall seconds, CPU seconds (user + system) and peak RSS (the child's VmHWM
    when it reports one, else wait4's). On
    a shared machine the CPU figure is the one the neighbours do not inflate."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, cwd=cwd)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status):
        raise SystemExit(f"job failed: {argv[:3]}")
    text = out.decode().strip().splitlines()
    extra = json.loads(text[-1]) if text and text[-1].startswith("{") else {}
    peak = extra.get("vm_hwm_mb") or usage.ru_maxrss / 1024
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "peak_rss_mb": peak, **extra}


def extract(rev: str, where: Path) -> Path:
    """The ``ckptlab`` package of git revision ``rev`` under ``where`` (``git archive``): a
    child started there imports it (``python -c`` puts its working directory first)."""
    where.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "ckptlab"], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(where)], input=archive, check=True)
    return where


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 24):
            digest.update(block)
    return digest.hexdigest()


def bench_remap(gb: float, where: str | None, repeats: int, old_write: bool = False,
                baseline: str | None = None, pt: bool = False) -> None:
    work = Path(tempfile.mkdtemp(prefix="ckptlab-bench-convert-", dir=where))
    try:
        src = work / "gpt2.safetensors"
        layers = subprocess.run([sys.executable, "-c", MAKE_GPT2, str(src), str(gb)], check=True,
                                capture_output=True, text=True).stdout.strip()
        size = src.stat().st_size
        print(f"source: {size / 1e9:.2f} GB GPT-2-style float32 safetensors, {layers} blocks of d=1024 "
              f"(4 Conv1D weights each to transpose)")
        versions = {"remap": ROOT}
        if baseline:
            versions[f"baseline {baseline}"] = extract(baseline, work / "baseline")
        jobs: dict[str, tuple[list[str], Path, Path | None]] = {  # argv, working dir, output
            "cp": (["cp", "--reflink=never", str(src), str(work / "copy.safetensors")], ROOT, None)}
        for suffix in (".safetensors", ".pt") if pt else (".safetensors",):
            for version, cwd in versions.items():
                out = work / f"out{suffix}"
                name = version + (" .pt" if suffix == ".pt" else "")
                jobs[name] = ([sys.executable, "-c", REMAP_TRANSPOSED, str(src), str(out)], cwd, out)
        if old_write:
            argv, cwd, out = jobs["remap"]
            jobs["old-write"] = (argv + ["old-write"], cwd, out)
        runs: dict[str, list[dict]] = {name: [] for name in jobs}
        digests: dict[str, str] = {}
        for r in range(repeats):  # interleaved (the order reversed every other round): a slow spell hits all
            for name in list(jobs) if r % 2 == 0 else list(jobs)[::-1]:
                argv, cwd, out = jobs[name]
                os.sync()
                runs[name].append(measure(argv, cwd))
                if r == 0 and out is not None:  # untimed: every version must write the same bytes
                    digests[name] = sha256(out)
                for p in work.glob("copy.*"):
                    p.unlink()
                for p in work.glob("out.*"):
                    p.unlink()
        print("every round (wall s / cpu s [/ s after imports / CPU s after imports]): " + "; ".join(
            f"{n} " + " ".join(f"{r['wall']:.2f}/{r['cpu']:.2f}" + (
                f"/{r['seconds']:.2f}/{r['cpu_seconds']:.2f}" if "seconds" in r else "") for r in rs)
            for n, rs in runs.items()))
        for suffix in (".safetensors", ".pt") if pt else (".safetensors",):
            same = {d for n, d in digests.items() if n.endswith(" .pt") == (suffix == ".pt")}
            print(f"sha256 of every {suffix} output: " + (f"the same, {same.pop()[:16]}..." if len(same) == 1
                                                            else f"DIFFERENT: {digests}"))
        cp = min(runs["cp"], key=lambda r: r["wall"])
        cp_cpu = min(r["cpu"] for r in runs["cp"])
        print(f"cp {cp['wall']:.2f} s wall (best), {cp_cpu:.2f} s CPU (least)")
        for name in jobs:
            if name == "cp":
                continue
            rs = runs[name]
            best = min(rs, key=lambda r: r["seconds"])  # the best round after imports
            cpu = min(r["cpu_seconds"] for r in rs)
            # the child's own clock starts after its imports; its wall from outside includes them
            print(f"{name:28s} {best['seconds']:.2f} s wall after imports = {best['seconds'] / cp['wall']:.2f}x cp "
                  f"(target <= 2); {cpu:.2f} s CPU after imports = {cpu / cp_cpu:.2f}x cp's; median CPU "
                  f"{statistics.median(r['cpu_seconds'] for r in rs):.2f} s; peak RSS "
                  f"{max(r['peak_rss_mb'] for r in rs):.0f} MB (the most of the rounds; target <= 512); "
                  f"{best['converted']} tensors converted")
        for name in [n for n in jobs if n.startswith("baseline")]:
            mine = name.replace(f"baseline {baseline}", "remap")
            old, new = (statistics.median(r["cpu_seconds"] for r in runs[n]) for n in (name, mine))
            print(f"{mine} against {name}: median CPU {new:.2f} s vs {old:.2f} s = {old / new:.2f}x faster")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gb", type=float, default=1.0, help="size of the GPT-2-style source (default 1.0)")
    parser.add_argument("--dir", default=None, help="where the temp dir goes (default: the system's)")
    parser.add_argument("--keys", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds of cp and remap; best kept")
    parser.add_argument("--skip-remap", action="store_true")
    parser.add_argument("--skip-align", action="store_true")
    parser.add_argument("--old-write", action="store_true", help="also time the old one-pwrite-per-tensor writer")
    parser.add_argument("--baseline", default=None, metavar="GIT_REV",
                        help="also time this revision's ckptlab in the same rounds (and check it writes the same bytes)")
    parser.add_argument("--pt", action="store_true", help="also remap to .pt (every converted tensor CRC-32 hashed)")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    if not args.skip_align:
        bench_align(args.keys)
    if not args.skip_remap:
        bench_remap(args.gb, args.dir, args.repeats, args.old_write, args.baseline, args.pt)


if __name__ == "__main__":
    main()
