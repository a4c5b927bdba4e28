"""Align two 20,000-key checkpoints, beside an all-pairs suffix matcher for scale.

    python bench/bench_align.py [--keys 20000] [--repeats 5] [--pairs-sizes 2000 4000]

The pair: a LLaMA-style transformer (``model.layers.{i}.self_attn.q_proj.weight`` ...,
realistic shapes on the meta device, so nothing is allocated). The source carries a DDP
``module.`` prefix on every key; the target renamed one block's ``mlp`` to
``feed_forward``. ``ckptlab.align`` (auto="all": prefix, rename and adapter stages all
run) is timed as the median of a few runs.

For scale, an all-pairs suffix matcher in the manner of detectron2's
``align_and_update_state_dicts`` (every target key against every source key, whole name
components, longest match wins; written fresh here) runs at the smaller sizes in the same
process, and its time is extrapolated quadratically to the full size.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ckptlab.align.matcher import align  # noqa: E402
from ckptlab.io.checkpoint import Checkpoint  # noqa: E402

HIDDEN, INTER, VOCAB, HEADS_KV = 4096, 11008, 32000, 1024
LAYER = {
    "self_attn.q_proj.weight": (HIDDEN, HIDDEN), "self_attn.q_proj.bias": (HIDDEN,),
    "self_attn.k_proj.weight": (HEADS_KV, HIDDEN), "self_attn.k_proj.bias": (HEADS_KV,),
    "self_attn.v_proj.weight": (HEADS_KV, HIDDEN), "self_attn.v_proj.bias": (HEADS_KV,),
    "self_attn.o_proj.weight": (HIDDEN, HIDDEN),
    "mlp.gate_proj.weight": (INTER, HIDDEN), "mlp.up_proj.weight": (INTER, HIDDEN),
    "mlp.down_proj.weight": (HIDDEN, INTER),
    "input_layernorm.weight": (HIDDEN,), "post_attention_layernorm.weight": (HIDDEN,),
}


def transformer_shapes(n_keys: int) -> dict[str, tuple[int, ...]]:
    """About ``n_keys`` keys of a transformer: embeddings, N layers, final norm, head."""
    layers = max(1, (n_keys - 3) // len(LAYER))
    shapes = {"model.embed_tokens.weight": (VOCAB, HIDDEN)}
    for i in range(layers):
        for name, shape in LAYER.items():
            shapes[f"model.layers.{i}.{name}"] = shape
    shapes["model.norm.weight"] = (HIDDEN,)
    shapes["lm_head.weight"] = (VOCAB, HIDDEN)
    return shapes


def make_pair(n_keys: int) -> tuple[Checkpoint, Checkpoint, str]:
    shapes = transformer_shapes(n_keys)
    renamed_block = f"model.layers.{(len(shapes) // len(LAYER)) // 2}."
    meta = lambda shape: torch.empty(shape, device="meta")  # noqa: E731
    source = {f"module.{key}": meta(shape) for key, shape in shapes.items()}
    target = {}
    for key, shape in shapes.items():
        if key.startswith(renamed_block + "mlp."):
            key = key.replace(".mlp.", ".feed_forward.")
        target[key] = meta(shape)
    return Checkpoint.from_mapping(source), Checkpoint.from_mapping(target), renamed_block


def all_pairs_suffix_match(model_keys: list[str], ckpt_keys: list[str]) -> dict[str, str]:
    """detectron2-style: each model key takes the longest checkpoint key it ends with
    (whole components); O(M*N) string comparisons."""
    model_keys, ckpt_keys = sorted(model_keys), sorted(ckpt_keys)
    matched = {}
    for m in model_keys:
        best, best_len = None, 0
        for c in ckpt_keys:
            if (m == c or m.endswith("." + c)) and len(c) > best_len:
                best, best_len = c, len(c)
        if best is not None:
            matched[m] = best
    return matched


def timed(fn, repeats: int) -> tuple[float, object, float]:
    """Median wall seconds, the last result, median CPU seconds of this process (on a
    shared machine the CPU figure is the one that does not depend on the neighbours)."""
    times, cpu, result = [], [], None
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        result = fn()
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(times), result, statistics.median(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--pairs-sizes", type=int, nargs="+", default=[2000, 4000])
    args = parser.parse_args()

    print(f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, Python {platform.python_version()}, torch {torch.__version__}")
    source, target, block = make_pair(args.keys)
    print(f"pair: {len(source)} source keys (all under 'module.'), {len(target)} target keys "
          f"({block}mlp renamed to feed_forward)")
    for auto in ("none", "high", "all"):
        seconds, al, cpu = timed(lambda: align(source, target, auto=auto), args.repeats)
        print(f"align auto={auto:<4}: median {seconds:.3f} s wall, {cpu:.3f} s CPU over {args.repeats} runs; "
              f"summary {al.summary}")
    print("suggestions:", "; ".join(f"{s.confidence} {s.rule} ({s.keys} keys)" for s in al.suggestions))

    per_key = []
    for n in args.pairs_sizes:
        src, tgt, _ = make_pair(n)
        # the prefixed side plays the model, so the suffix rule can match (as a wrapped model would)
        seconds, matched, cpu = timed(lambda: all_pairs_suffix_match(src.keys(), tgt.keys()), 1)
        per_key.append(cpu / (len(src) * len(tgt)))
        print(f"all-pairs suffix matcher at {len(src)} x {len(tgt)} keys: {seconds:.2f} s wall, "
              f"{cpu:.2f} s CPU ({len(matched)} matched)")
    estimate = statistics.mean(per_key) * len(source) * len(target)
    _, _, align_cpu = timed(lambda: align(source, target, auto="all"), args.repeats)
    print(f"all-pairs extrapolated to {len(source)} x {len(target)}: {estimate:.0f} s CPU; "
          f"align (auto=all) {align_cpu:.3f} s CPU, {estimate / align_cpu:.0f}x less")


if __name__ == "__main__":
    main()
