"""Model definitions as targets: what a meta-device build costs, and the attention swap.

    python bench/bench_models.py [--sizes 32 64 128] [--repeats 20]

1. ``model_target`` of a ~7e9-parameter model (keys and shapes, no values): wall time and
   peak RSS growth, beside the bytes a real build would need.
2. The attention-swap story: FontUNet with SelfAttention vs LinearAttention, median
   forward time and peak activation memory (``ckptlab.verify.compare_speed``), as ratios
   measured in the same run, at several glyph sizes.
"""
from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ckptlab.targets import model_target  # noqa: E402
from ckptlab.verify import compare_speed  # noqa: E402


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


def bench_attention_swap(sizes: list[int], repeats: int) -> None:
    print(f"\nattention swap: FontUNet(attention=self) vs (attention=linear), batch 2, repeats {repeats}")
    print(f"{'glyph':>7} {'self ms':>9} {'linear ms':>10} {'time ratio':>11} "
          f"{'self peak MB':>13} {'linear peak MB':>15} {'mem ratio':>10}")
    models = {name: model_target("sample_ckpts.models:FontUNet", {"attention": name}) for name in ("self", "linear")}
    for size in sizes:
        report = compare_speed(models, input_shape=(2, 1, size, size), repeats=repeats, warmup=3)
        s, lin = report.row("self"), report.row("linear")
        print(f"{size:>4}px {s.median_ms:>9.2f} {lin.median_ms:>10.2f} {lin.time_ratio:>11.3f} "
              f"{s.peak_bytes / 2**20:>13.2f} {lin.peak_bytes / 2**20:>15.2f} {lin.memory_ratio:>10.3f}")
    print(f"params: self {s.params}, linear {lin.params}; memory: {report.memory_method}; "
          f"torch threads {report.threads}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 64, 128])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    print(f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, "
          f"cpu count {os.cpu_count()}, python {platform.python_version()}, torch {torch.__version__}")
    bench_meta_build()
    bench_attention_swap(args.sizes, args.repeats)


if __name__ == "__main__":
    main()
