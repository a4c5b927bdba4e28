"""Align 20,000-key pairs of every kind of naming, before and after, beside an all-pairs matcher.

    python bench/bench_align.py [--keys 20000] [--repeats 5] [--rounds 2] [--baseline GIT_REV]
                                [--pairs-sizes 2000 4000] [--skip-pairs]

The pairs (built before the clock starts, tensors on the meta device or empty: nothing read):

- ``llama none/high/all``: a LLaMA-style transformer (``model.layers.{i}.self_attn.q_proj.weight``
  ..., realistic shapes); the source carries a DDP ``module.`` prefix on every key, the target
  renamed one block's ``mlp`` to ``feed_forward``; ``align`` with ``auto`` none, high and all;
- ``same-shape``: every tensor (8, 8), other names on each side (``encoder.{i}.w`` vs
  ``blocks.{i}.weight``): nothing but the names to go on (``auto="all"``);
- ``zero-size``: empty tensors under the same names (in memory all at data_ptr 0; ``auto="all"``);
- ``known``: HF LLaMA names against Meta LLaMA names (``hf-llama-to-meta-llama``, ``heads=32``
  given), every tensor converted (``auto="high"``).

Each version of the code runs in its own child process (``--baseline REV``: the ``ckptlab``
package of that git revision, extracted with ``git archive``, beside the working tree's), the
two interleaved over ``--rounds`` rounds of ``--repeats`` calls per pair. Reported per pair: the
median CPU seconds of one call (``time.process_time``: what the neighbours' load inflates least
on a shared machine), the median wall, and the mean CPU per call with a full garbage collection
after the last call counted in (so work the collector defers past a call is not left out).
Target (DESIGN.md): <= 0.5 s of CPU at 20k x 20k keys whatever the naming.

For scale, an all-pairs suffix matcher in the manner of detectron2's
``align_and_update_state_dicts`` (every target key against every source key, whole name
components, longest match wins; written fresh here) runs at the smaller sizes, and its time is
extrapolated quadratically to the full size.
"""
from __future__ import annotations

import argparse
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
# HF LLaMA -> Meta LLaMA names of one block (the known conversion's), with their shapes
HF_TO_META = {
    "self_attn.q_proj.weight": ("attention.wq.weight", (HIDDEN, HIDDEN)),
    "self_attn.k_proj.weight": ("attention.wk.weight", (HEADS_KV, HIDDEN)),
    "self_attn.v_proj.weight": ("attention.wv.weight", (HEADS_KV, HIDDEN)),
    "self_attn.o_proj.weight": ("attention.wo.weight", (HIDDEN, HIDDEN)),
    "mlp.gate_proj.weight": ("feed_forward.w1.weight", (INTER, HIDDEN)),
    "mlp.down_proj.weight": ("feed_forward.w2.weight", (HIDDEN, INTER)),
    "mlp.up_proj.weight": ("feed_forward.w3.weight", (INTER, HIDDEN)),
    "input_layernorm.weight": ("attention_norm.weight", (HIDDEN,)),
    "post_attention_layernorm.weight": ("ffn_norm.weight", (HIDDEN,)),
}
CASES = ("llama none", "llama high", "llama all", "same-shape", "zero-size", "known")


def _checkpoint():
    from ckptlab.io.checkpoint import Checkpoint

    return Checkpoint


def _meta(shape):
    import torch

    return torch.empty(shape, device="meta")


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


def make_pair(n_keys: int):
    """(source, target, the renamed block's prefix) of the LLaMA-style pair."""
    Checkpoint = _checkpoint()
    shapes = transformer_shapes(n_keys)
    renamed_block = f"model.layers.{(len(shapes) // len(LAYER)) // 2}."
    source = {f"module.{key}": _meta(shape) for key, shape in shapes.items()}
    target = {}
    for key, shape in shapes.items():
        if key.startswith(renamed_block + "mlp."):
            key = key.replace(".mlp.", ".feed_forward.")
        target[key] = _meta(shape)
    return Checkpoint.from_mapping(source), Checkpoint.from_mapping(target), renamed_block


def make_pairs(n: int) -> dict[str, tuple]:
    """Every case: name -> (source, target, align's keyword arguments)."""
    import torch

    Checkpoint = _checkpoint()
    src, tgt, _ = make_pair(n)
    pairs = {f"llama {auto}": (src, tgt, {"auto": auto}) for auto in ("none", "high", "all")}
    pairs["same-shape"] = (Checkpoint.from_mapping({f"encoder.{i}.w": _meta((8, 8)) for i in range(n)}),
                           Checkpoint.from_mapping({f"blocks.{i}.weight": _meta((8, 8)) for i in range(n)}),
                           {"auto": "all"})
    pairs["zero-size"] = (Checkpoint.from_mapping({f"layers.{i}.w": torch.empty(0) for i in range(n)}),
                          Checkpoint.from_mapping({f"layers.{i}.w": torch.empty(0) for i in range(n)}),
                          {"auto": "all"})
    hf = {"model.embed_tokens.weight": _meta((VOCAB, HIDDEN))}
    meta = {"tok_embeddings.weight": _meta((VOCAB, HIDDEN))}
    for i in range(max(1, (n - 4) // len(HF_TO_META))):
        for name, (other, shape) in HF_TO_META.items():
            hf[f"model.layers.{i}.{name}"], meta[f"layers.{i}.{other}"] = _meta(shape), _meta(shape)
    hf["model.norm.weight"], meta["norm.weight"] = _meta((HIDDEN,)), _meta((HIDDEN,))
    hf["lm_head.weight"], meta["output.weight"] = _meta((VOCAB, HIDDEN)), _meta((VOCAB, HIDDEN))
    pairs["known"] = (Checkpoint.from_mapping(hf), Checkpoint.from_mapping(meta),
                      {"auto": "high", "params": {"heads": 32}})
    return pairs


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


# -- one version of the code, in a child process -----------------------------------------------
def child(code: str, n: int, repeats: int, cases: list[str]) -> None:
    """Time every case with the ckptlab package under ``code``; one JSON line on stdout."""
    import gc

    sys.path.insert(0, code)
    import ckptlab
    from ckptlab.align.matcher import align

    assert Path(ckptlab.__file__).resolve().is_relative_to(Path(code).resolve()), ckptlab.__file__
    pairs = make_pairs(n)
    out = {}
    for name in cases:
        source, target, kwargs = pairs[name]
        align(source, target, **kwargs)  # warm: lazy imports, compiled patterns, the catalogue
        gc.collect()
        cpu, wall, al = [], [], None
        for _ in range(repeats):
            al = None
            start, start_cpu = time.perf_counter(), time.process_time()
            al = align(source, target, **kwargs)
            wall.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
        summary = {k: v for k, v in al.summary.items() if v}
        suggestions = [f"{s.confidence}{' applied' if s.applied else ''} ({s.keys} keys)" for s in al.suggestions]
        al = None
        start_cpu = time.process_time()
        gc.collect()  # what the collector deferred (or would soon do) counted in, once per case
        collect = time.process_time() - start_cpu
        out[name] = {"cpu": cpu, "wall": wall, "mean_with_gc": (sum(cpu) + collect) / repeats,
                     "summary": summary, "suggestions": suggestions}
    print(json.dumps(out))


def run_child(code: Path, args, cases: list[str]) -> dict:
    argv = [sys.executable, str(Path(__file__).resolve()), "--child", str(code), "--keys", str(args.keys),
            "--repeats", str(args.repeats), "--cases", ",".join(cases)]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=tempfile.gettempdir(), check=False)
    if done.returncode:
        raise SystemExit(f"child for {code} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def extract(rev: str, where: Path) -> Path:
    """The ``ckptlab`` package of git revision ``rev`` under ``where`` (``git archive``)."""
    where.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "ckptlab"], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(where)], input=archive, check=True)
    return where


def compare(args) -> None:
    cases = [c for c in CASES if not args.cases or c in args.cases.split(",")]
    versions = {"current": ROOT}
    base = Path(tempfile.mkdtemp(prefix="bench_align_"))
    try:
        if args.baseline:
            versions = {f"baseline {args.baseline}": extract(args.baseline, base / "baseline"), "current": ROOT}
        runs: dict[str, list[dict]] = {v: [] for v in versions}
        for r in range(args.rounds):  # interleaved, the order swapped each round
            order = list(versions) if r % 2 == 0 else list(versions)[::-1]
            for version in order:
                runs[version].append(run_child(versions[version], args, cases))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print(f"{args.rounds} rounds x {args.repeats} calls per pair and version; CPU = process_time of the call")
    print(f"{'pair':<12} {'version':<22} {'median CPU':>10} {'median wall':>11} {'mean CPU, gc in':>16}  result")
    for case in cases:
        for version, results in runs.items():
            cpu = [c for res in results for c in res[case]["cpu"]]
            wall = [w for res in results for w in res[case]["wall"]]
            gc_in = statistics.mean(res[case]["mean_with_gc"] for res in results)
            last = results[-1][case]
            print(f"{case:<12} {version:<22} {statistics.median(cpu):>9.3f}s {statistics.median(wall):>10.3f}s "
                  f"{gc_in:>15.3f}s  {last['summary']}; {', '.join(last['suggestions']) or 'no suggestion'}")
        if args.baseline:
            old, new = (statistics.median([c for res in runs[v] for c in res[case]["cpu"]]) for v in versions)
            print(f"{'':<12} {'speed-up (CPU)':<22} {old / new:>9.1f}x")


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


def suffix_matcher_scale(args) -> None:
    sys.path.insert(0, str(ROOT))
    from ckptlab.align.matcher import align

    per_key = []
    for n in args.pairs_sizes:
        src, tgt, _ = make_pair(n)
        # the prefixed side plays the model, so the suffix rule can match (as a wrapped model would)
        seconds, matched, cpu = timed(lambda src=src, tgt=tgt: all_pairs_suffix_match(src.keys(), tgt.keys()), 1)
        per_key.append(cpu / (len(src) * len(tgt)))
        print(f"all-pairs suffix matcher at {len(src)} x {len(tgt)} keys: {seconds:.2f} s wall, "
              f"{cpu:.2f} s CPU ({len(matched)} matched)")
    source, target, _ = make_pair(args.keys)
    estimate = statistics.mean(per_key) * len(source) * len(target)
    _, _, align_cpu = timed(lambda: align(source, target, auto="all"), args.repeats)
    print(f"all-pairs extrapolated to {len(source)} x {len(target)}: {estimate:.0f} s CPU; "
          f"align (auto=all) {align_cpu:.3f} s CPU, {estimate / align_cpu:.0f}x less")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=5, help="calls per pair in each child")
    parser.add_argument("--rounds", type=int, default=2, help="children per version, interleaved")
    parser.add_argument("--baseline", default=None, metavar="GIT_REV", help="also time this revision's ckptlab")
    parser.add_argument("--cases", default=None, help=f"comma-separated, of: {', '.join(CASES)}")
    parser.add_argument("--pairs-sizes", type=int, nargs="+", default=[2000, 4000])
    parser.add_argument("--skip-pairs", action="store_true", help="leave out the all-pairs suffix matcher")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.keys, args.repeats, args.cases.split(","))
        return
    import torch

    print(f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs "
          f"(shared), Python {platform.python_version()}, torch {torch.__version__}; load average "
          f"{os.getloadavg()[0]:.2f}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"pairs of about {args.keys} keys each; the LLaMA pair's source has every key under 'module.', "
          "its target one block's mlp renamed feed_forward")
    compare(args)
    if not args.skip_pairs:
        suffix_matcher_scale(args)
    print(f"load average at the end: {os.getloadavg()[0]:.2f}; {time.strftime('%H:%M UTC', time.gmtime())}")


if __name__ == "__main__":
    main()
