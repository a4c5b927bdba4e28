"""Every row, status, reason, suggestion and warning of many alignments, compared between two
versions of the code: a speed-up of ``align`` must not change a single result.

    python bench/align_equiv.py --baseline main [--quick]

Each version runs in its own child process (``--baseline REV``: the ``ckptlab`` package of that
git revision, extracted with ``git archive``; the other is this working tree's) and dumps every
alignment to JSON; the two dumps are compared case by case and the first differences shown.
Exit status 1 when any case differs.

The cases: the pairs of ``bench_align.py`` at 2,000 and 20,000 keys (LLaMA-style with a prefix
and a renamed block, both ways; every tensor (8, 8) under other names; zero-size tensors; HF
LLaMA names against Meta LLaMA names, the known conversion with ``heads`` given and not, both
ways), GPT-2-style transposed weights, fused qkv, a grown head, the bundled sample checkpoints
pairwise, and the zoo's models (modules and state dicts, both ways, and across kinds), each
under ``auto`` none/high/all where it matters. ``--quick`` leaves out the 20,000-key pairs.
"""
from __future__ import annotations

import argparse
import glob
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def dump(al) -> dict:
    """What an alignment says, as plain JSON."""
    rows = []
    for r in al.rows:
        rows.append([r.target, r.source, r.status, r.target_shape and list(r.target_shape),
                     r.source_shape and list(r.source_shape), r.target_dtype, r.source_dtype, r.reason,
                     list(r.sources), r.adapt.describe() if r.adapt else None,
                     (r.convert.describe(r.target) if r.target else repr(r.convert)) if r.convert else None, r.kept])
    suggestions = [[s.rule, s.confidence, s.reason, s.keys, s.applied, s.caveat] for s in al.suggestions]
    try:
        effective = al.effective_recipe.to_dict()
    except Exception as exc:  # noqa: BLE001 - what it raises is part of the result
        effective = repr(exc)
    return {"rows": rows, "suggestions": suggestions, "warnings": al.warnings, "fed_warning": al.fed_warning,
            "effective": json.loads(json.dumps(effective, default=repr)), "strict": al.strict_problems}


def cases(quick: bool):
    """(name, source, target, autos, align's other keyword arguments) of every case."""
    import torch
    from bench_align import make_pair, make_pairs

    from ckptlab.io.checkpoint import Checkpoint

    def meta(*shape):
        return torch.empty(shape, device="meta")

    for n in (2000,) if quick else (2000, 20000):
        src, tgt, _ = make_pair(n)
        yield f"llama{n}", src, tgt, ("none", "high", "all"), {}
        yield f"llama{n}-rev", tgt, src, ("none", "high", "all"), {}
        pairs = make_pairs(n)
        yield f"same{n}", *pairs["same-shape"][:2], ("none", "high", "all"), {}
        z1, z2, _ = pairs["zero-size"]
        yield f"zero{n}", z1, z2, ("all",), {}
        z3 = Checkpoint.from_mapping({f"net.{i}.v": torch.empty(0) for i in range(n)})
        yield f"zero-other{n}", z1, z3, ("high", "all"), {}
        hf, meta_names, kwargs = pairs["known"]
        yield f"known{n}", hf, meta_names, ("none", "high", "all"), {"params": kwargs["params"]}
        yield f"known{n}-no-heads", hf, meta_names, ("high", "all"), {}
        yield f"known{n}-rev", meta_names, hf, ("none", "high", "all"), {"params": kwargs["params"]}
    d, layers = 16, 500
    gs, gt = {}, {}
    for i in range(layers):  # GPT-2 Conv1D (in, out) against Linear (out, in)
        gs[f"transformer.h.{i}.attn.c_attn.weight"] = meta(d, 3 * d)
        gs[f"transformer.h.{i}.attn.c_attn.bias"] = meta(3 * d)
        gs[f"transformer.h.{i}.attn.c_proj.weight"] = meta(d, d)
        gs[f"transformer.h.{i}.mlp.c_fc.weight"] = meta(d, 4 * d)
        gs[f"transformer.h.{i}.mlp.c_proj.weight"] = meta(4 * d, d)
        gs[f"transformer.h.{i}.ln_1.weight"] = meta(d)
        gt[f"h.{i}.attn.c_attn.weight"] = meta(3 * d, d)
        gt[f"h.{i}.attn.c_attn.bias"] = meta(3 * d)
        gt[f"h.{i}.attn.c_proj.weight"] = meta(d, d)
        gt[f"h.{i}.mlp.c_fc.weight"] = meta(4 * d, d)
        gt[f"h.{i}.mlp.c_proj.weight"] = meta(d, 4 * d)
        gt[f"h.{i}.ln_1.weight"] = meta(d)
    yield "gpt-transposed", Checkpoint.from_mapping(gs), Checkpoint.from_mapping(gt), ("none", "high", "all"), {}
    fs, ft = {}, {}
    for i in range(layers):  # fused qkv against q/k/v, a 1x1 conv against a linear
        fs[f"blocks.{i}.attn.qkv.weight"] = meta(3 * d, d)
        fs[f"blocks.{i}.attn.proj.weight"] = meta(d, d)
        fs[f"blocks.{i}.conv.weight"] = meta(d, d, 1, 1)
        for p in "qkv":
            ft[f"blocks.{i}.attn.{p}_proj.weight"] = meta(d, d)
        ft[f"blocks.{i}.attn.proj.weight"] = meta(d, d)
        ft[f"blocks.{i}.conv.weight"] = meta(d, d)
    yield "fused", Checkpoint.from_mapping(fs), Checkpoint.from_mapping(ft), ("none", "high", "all"), {}
    yield "fused-rev", Checkpoint.from_mapping(ft), Checkpoint.from_mapping(fs), ("none", "high", "all"), {}
    hs = {f"m.layers.{i}.w": meta(4, 4) for i in range(3000)}
    ht = {f"layers.{i}.w": meta(4, 4) for i in range(3000)}
    hs.update({"m.head.weight": meta(10, 4), "m.head.bias": meta(10), "spare.a.weight": meta(3, 3),
               "spare.b.weight": meta(3, 3)})
    ht.update({"head.weight": meta(12, 4), "head.bias": meta(12), "extra.a.weight": meta(3, 3),
               "extra.b.weight": meta(3, 3)})
    yield "head", Checkpoint.from_mapping(hs), Checkpoint.from_mapping(ht), ("none", "high", "all"), {}
    files = sorted(glob.glob(str(ROOT / "sample_ckpts" / "*.pt")) + glob.glob(str(ROOT / "sample_ckpts" / "*.safetensors"))
                   + glob.glob(str(ROOT / "sample_ckpts" / "*.ckpt")))
    for a, b in itertools.product(files, files):
        yield f"sample/{os.path.basename(a)}/{os.path.basename(b)}", a, b, ("high", "all"), {}
    from tests.zoo import gpt, llama, meta_bias, neox, openclip, resnet, vit
    from tests.zoo import hf as hf_zoo

    pairs = {
        "gpt2-nano": (hf_zoo.gpt2(), gpt.nanogpt()), "llama-meta": (hf_zoo.llama(), llama.llama()),
        "vit-timm": (hf_zoo.vit_classifier(), vit.vit()), "vitm-timm": (hf_zoo.vit_model(), vit.vit()),
        "neox": (neox.neox(), hf_zoo.llama()), "clip": (openclip.clip_vision(), hf_zoo.vit_model()),
        "resnet": (resnet.resnet(), hf_zoo.vit_model()), "qwen": (meta_bias.qwen2(), hf_zoo.llama()),
        "bert": (hf_zoo.bert(), hf_zoo.bert(seed=3)),
    }
    for name, (a, b) in pairs.items():
        yield f"zoo/{name}", a, b, ("high", "all"), {}
        yield f"zoo/{name}-rev", b, a, ("high", "all"), {}
        yield f"zoo/{name}-sd", a.state_dict(), b.state_dict(), ("high", "all"), {}
        yield f"zoo/{name}-sd-rev", b.state_dict(), a.state_dict(), ("high", "all"), {}
    for (name, (a, _)), (name2, (_, d2)) in itertools.product(pairs.items(), pairs.items()):
        if name < name2:
            yield f"zoo-x/{name}/{name2}", a, d2, ("all",), {}


def child(code: str, out: str, quick: bool) -> None:
    """Dump every case with the ckptlab package under ``code`` to ``out``."""
    sys.path[:0] = [code, str(ROOT / "bench"), str(ROOT)]
    import ckptlab
    from ckptlab.align.matcher import align

    assert Path(ckptlab.__file__).resolve().is_relative_to(Path(code).resolve()), ckptlab.__file__
    results = {}
    for name, source, target, autos, kwargs in cases(quick):
        for auto in autos:
            try:
                results[f"{name}/{auto}"] = dump(align(source, target, auto=auto, **kwargs))
            except Exception as exc:  # noqa: BLE001 - an error is a result to compare too
                results[f"{name}/{auto}"] = {"error": f"{type(exc).__name__}: {exc}"}
    with open(out, "w") as f:
        json.dump(results, f, sort_keys=True)


def differences(old: dict, new: dict, limit: int = 5) -> list[str]:
    """The names of the cases that differ, the first ``limit`` with where they first differ."""
    lines = [f"only in one version: {sorted(set(old) ^ set(new))}"] if old.keys() != new.keys() else []
    differ = [k for k in old if k in new and old[k] != new[k]]
    for name in differ[:limit]:
        a, b = old[name], new[name]
        for part in sorted(set(a) | set(b)):
            x, y = a.get(part), b.get(part)
            if x == y:
                continue
            if isinstance(x, list) and isinstance(y, list):
                first = next((i for i, (p, q) in enumerate(zip(x, y)) if p != q), None)
                if first is None:
                    lines.append(f"{name} {part}: {len(x)} vs {len(y)} entries")
                else:
                    lines.append(f"{name} {part}[{first}]:\n  before {x[first]}\n  now    {y[first]}")
            else:
                lines.append(f"{name} {part}:\n  before {x}\n  now    {y}")
    lines += [f"... and {len(differ) - limit} more cases differ"] if len(differ) > limit else []
    return lines


def run_child(code: Path, out: Path, quick: bool) -> dict:
    argv = [sys.executable, str(Path(__file__).resolve()), "--child", str(code), "--out", str(out)]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(argv + (["--quick"] if quick else []), capture_output=True, text=True, env=env,
                          cwd=tempfile.gettempdir(), check=False)
    if done.returncode:
        raise SystemExit(f"child for {code} failed:\n{done.stderr[-2000:]}")
    with open(out) as f:
        return json.load(f)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="main", metavar="GIT_REV", help="the revision to compare with")
    parser.add_argument("--quick", action="store_true", help="leave out the 20,000-key pairs")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.out, args.quick)
        return
    base = Path(tempfile.mkdtemp(prefix="align_equiv_"))
    try:
        (base / "baseline").mkdir()
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.baseline, "ckptlab"],
                                 capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(base / "baseline")], input=archive, check=True)
        old = run_child(base / "baseline", base / "old.json", args.quick)
        new = run_child(ROOT, base / "new.json", args.quick)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    lines = differences(old, new)
    errors = sum("error" in v for v in new.values())
    print(f"{len(new)} alignments ({errors} of them an error, compared as such) against {args.baseline}: "
          f"{sum(old.get(k) != v for k, v in new.items())} differ")
    print("\n".join(lines))
    sys.exit(1 if lines else 0)


if __name__ == "__main__":
    main()
