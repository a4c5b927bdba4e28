"""Model definitions as targets: what a meta-device build costs, and the attention swap.

    python bench/bench_models.py [--sizes 16 32 64 128] [--budget 60] [--threads 1] [--rss]

1. ``model_target`` of a ~7e9-parameter model (keys and shapes, no values): wall time and
   peak RSS growth, beside the bytes a real build would need.
2. The attention-swap story: FontUNet with SelfAttention vs LinearAttention over glyph
   sizes (``ckptlab.models.speed.compare_speed``: interleaved warmed-up pairs, the median of the
   per-pair time ratios with its interquartile range, peak tensor memory per pass).
   ``--rss`` cross-checks that memory figure: each model's first forward at each size in a
   fresh process, the growth of its peak RSS (VmHWM reset through /proc/self/clear_refs
   after the build), which also holds the allocator's and kernels' own buffers.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ckptlab.io.model_target import model_target  # noqa: E402
from ckptlab.models.speed import compare_speed  # noqa: E402


def _max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_meta_build() -> None:
    kwargs = {"d_model": 4096, "nhead": 32, "num_encoder_layers": 32, "num_decoder_layers": 0,
              "dim_feedforward": 16384, "batch_first": True}
    rss_before = _max_rss_mb()
    start = time.perf_counter()
    ck = model_target("torch.nn:Transformer", kwargs)
    elapsed = time.perf_counter() - start
    print(f"meta build of torch.nn.Transformer({kwargs['num_encoder_layers']} x d{kwargs['d_model']}): "
          f"{ck.total_params / 1e9:.2f} B params, {len(ck)} keys, {elapsed * 1e3:.0f} ms, "
          f"peak RSS +{_max_rss_mb() - rss_before:.1f} MB (a real float32 build: {ck.total_bytes / 2**30:.1f} GiB)")


def bench_attention_swap(sizes: list[int], budget: float, threads: int | None) -> None:
    models = {name: model_target("sample_ckpts.models:FontUNet", {"attention": name}) for name in ("self", "linear")}
    report = compare_speed(models, sizes=sizes, budget_s=budget, threads=threads)
    print(f"\nattention swap: FontUNet(attention=self) vs (attention=linear), batch 2, budget {budget:g} s, "
          f"{report.threads} torch thread(s)")
    print(f"{'glyph':>7} {'self ms':>9} {'linear ms':>10} {'ratio':>6} {'IQR':>11} {'pairs':>6} {'stop':>13} "
          f"{'self MB':>8} {'linear MB':>10} {'mem ratio':>10}")
    for p in report.points:
        print(f"{p.size:>5}px {p.median_ms['self']:>9.3f} {p.median_ms['linear']:>10.3f} {p.ratio:>6.3f} "
              f"{p.ratio_low:>5.3f}-{p.ratio_high:<5.3f} {p.pairs:>6} {p.stopped:>13} "
              f"{p.peak_bytes['self'] / 2**20:>8.2f} {p.peak_bytes['linear'] / 2**20:>10.2f} {p.memory_ratio:>10.3f}"
              + ("  (too noisy to tell)" if p.noisy else ""))
    print(f"ratio = linear time / self time per interleaved pair; params: self {report.params['self']}, "
          f"linear {report.params['linear']}; memory: {report.memory_method}")


_RSS_PROBE = """
import json, sys, torch
torch.set_num_threads(1)
from ckptlab.io.model_target import build_model
model = build_model(sys.argv[1], json.loads(sys.argv[2])).eval()
x = torch.randn(2, 1, int(sys.argv[3]), int(sys.argv[3]))
def hwm():
    return next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmHWM"))
open("/proc/self/clear_refs", "w").write("5")
before = hwm()
with torch.no_grad():
    model(x)
print(hwm() - before)
"""


def _rss_growth(attention: str, size: int) -> int:
    """Peak RSS growth of one forward of FontUNet(attention) at ``size``, in a fresh process."""
    out = subprocess.run([sys.executable, "-c", _RSS_PROBE, "sample_ckpts.models:FontUNet",
                          json.dumps({"attention": attention}), str(size)],
                         cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1])


def bench_rss(sizes: list[int]) -> None:
    print("\nfresh-process peak RSS growth of one forward (MB): glyph, self, linear")
    for size in sizes:
        print(f"{size:>5}px {_rss_growth('self', size) / 2**20:>8.1f} {_rss_growth('linear', size) / 2**20:>8.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[16, 32, 64, 128])
    parser.add_argument("--budget", type=float, default=60.0, help="seconds for all sizes")
    parser.add_argument("--threads", type=int, default=1, help="torch threads while timing (0: keep torch's)")
    parser.add_argument("--rss", action="store_true", help="also each model's peak RSS growth in a fresh process")
    args = parser.parse_args()
    print(f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, "
          f"cpu count {os.cpu_count()}, python {platform.python_version()}, torch {torch.__version__}")
    bench_meta_build()
    bench_attention_swap(args.sizes, args.budget, args.threads or None)
    if args.rss:
        bench_rss(args.sizes)


if __name__ == "__main__":
    main()
