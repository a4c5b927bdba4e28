"""Conversions at scale: a transposing remap beside ``cp``, and align on degenerate pairs.

    python bench/bench_convert.py [--gb 1.0] [--dir DIR] [--keys 20000] [--skip-remap]

1. Remap: a GPT-2-style float32 checkpoint of about ``--gb`` GB (HF layout: every
   ``Conv1D`` weight stored (in, out)) is written as ``.safetensors`` through the
   transpose recipe (``ckptlab/known/gpt2_to_nanogpt.yaml``: every attention and MLP weight
   transposed, the rest copied) in a child process whose peak RSS is read from
   ``getrusage``; ``cp`` of the same file runs in the same run, and the ratio is printed.
2. Align: two ``--keys``-key checkpoints with every tensor of the same shape under other
   names (nothing but the names to go on), and two with zero-size tensors under the same
   names (in memory they all sit at data_ptr 0: once taken for one tied group of 20,000).
   Checkpoints are built before timing; ``align(auto="all")`` is timed, median of 3.
"""
from __future__ import annotations

import argparse
import os
import platform
import resource
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
def timed(fn, repeats: int = 3) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def bench_align(n: int) -> None:
    import torch

    from ckptlab.align import align
    from ckptlab.checkpoint import Checkpoint

    same_src = Checkpoint.from_mapping({f"encoder.{i}.w": torch.empty(8, 8, device="meta") for i in range(n)})
    same_tgt = Checkpoint.from_mapping({f"blocks.{i}.weight": torch.empty(8, 8, device="meta") for i in range(n)})
    seconds, al = timed(lambda: align(same_src, same_tgt, auto="all"))
    print(f"align {n} x {n} keys, every tensor (8, 8), other names: median {seconds:.3f} s; {al.summary}")
    zero_src = Checkpoint.from_mapping({f"layers.{i}.w": torch.empty(0) for i in range(n)})
    zero_tgt = Checkpoint.from_mapping({f"layers.{i}.w": torch.empty(0) for i in range(n)})
    seconds, al = timed(lambda: align(zero_src, zero_tgt, auto="all"))
    print(f"align {n} x {n} zero-size in-memory tensors, same names: median {seconds:.3f} s; {al.summary}")


# -- 1. remap -----------------------------------------------------------------------------
def make_gpt2(path: Path, gb: float) -> int:
    """A GPT-2-style checkpoint (HF layout) of about ``gb`` GB, written with safetensors."""
    import torch
    from safetensors.torch import save_file

    d, vocab = 1024, 50257
    per_layer = 12 * d * d + 13 * d
    layers = max(1, int((gb * 2**30 / 4 - (vocab + 1024 + 2) * d) // per_layer))
    g = torch.Generator().manual_seed(0)
    sd = {"transformer.wte.weight": torch.randn(vocab, d, generator=g),
          "transformer.wpe.weight": torch.randn(1024, d, generator=g)}
    for i in range(layers):
        p = f"transformer.h.{i}."
        for name, shape in (("ln_1.weight", (d,)), ("ln_1.bias", (d,)), ("attn.c_attn.weight", (d, 3 * d)),
                            ("attn.c_attn.bias", (3 * d,)), ("attn.c_proj.weight", (d, d)), ("attn.c_proj.bias", (d,)),
                            ("ln_2.weight", (d,)), ("ln_2.bias", (d,)), ("mlp.c_fc.weight", (d, 4 * d)),
                            ("mlp.c_fc.bias", (4 * d,)), ("mlp.c_proj.weight", (4 * d, d)), ("mlp.c_proj.bias", (d,))):
            sd[p + name] = torch.randn(shape, generator=g)
    sd["transformer.ln_f.weight"] = torch.ones(d)
    sd["transformer.ln_f.bias"] = torch.zeros(d)
    save_file(sd, str(path))
    return layers


REMAP_CHILD = r"""
import resource, sys, time
sys.path.insert(0, sys.argv[1])
import ckptlab
from ckptlab.known import catalogue
src, out = sys.argv[2], sys.argv[3]
recipe = catalogue.get("gpt2-to-nanogpt").recipe()
start = time.perf_counter()
ckptlab.remap(src, src, out, recipe=recipe, auto="none", on_mismatch="error") if False else None
"""


def remap_in_child(src: Path, out: Path) -> tuple[float, int, dict]:
    """Run the remap in a fresh interpreter: (seconds, peak RSS bytes, summary)."""
    code = (
        "import json, resource, sys, time\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        "import ckptlab\n"
        "from ckptlab.known import catalogue\n"
        "src, out = sys.argv[1], sys.argv[2]\n"
        "recipe = catalogue.get('gpt2-to-nanogpt').recipe()\n"
        "target = ckptlab.remap_target_of(src) if hasattr(ckptlab, 'remap_target_of') else None\n"
        "start = time.perf_counter()\n"
        "rep = ckptlab.remap(src, sys.argv[3], out, recipe=recipe, auto='none')\n"
        "seconds = time.perf_counter() - start\n"
        "peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024\n"
        "print(json.dumps({'seconds': seconds, 'peak': peak, 'summary': rep.summary}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(src), str(out), str(out) + ".target.safetensors"],
                          capture_output=True, text=True, check=True)
    import json

    data = json.loads(proc.stdout.strip().splitlines()[-1])
    return data["seconds"], data["peak"], data["summary"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gb", type=float, default=1.0)
    parser.add_argument("--dir", default=None, help="where to write the files (default: a temp dir)")
    parser.add_argument("--keys", type=int, default=20000)
    parser.add_argument("--skip-remap", action="store_true")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    bench_align(args.keys)
    if not args.skip_remap:
        bench_remap(args.gb, args.dir)


def bench_remap(gb: float, where: str | None) -> None:
    raise SystemExit("remap part: see below")


if __name__ == "__main__":
    main()
