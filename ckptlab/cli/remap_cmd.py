"""``ckptlab remap SOURCE TARGET -o OUT``: write the merged checkpoint, or nothing at all.

Exit 1 with the rows at fault on stderr when a conflict or an unresolved shape mismatch
blocks the merge. ``--json`` prints the report on stdout; a progress bar goes to stderr.
"""
from __future__ import annotations

import argparse
import re
import sys

from ckptlab.cli.common import (AUTO_LEVELS, ON_MISMATCH, add_pair_arguments, add_param_argument,
                                naming_recipe, recipe_with_params, resolve_pair)
from ckptlab.cli.output import print_json, say, warn
from ckptlab.cli.proving import add_prove_arguments, run_proof, tell
from ckptlab.errors import CheckpointError, MergeError, printable

OUT_SUFFIXES = ".safetensors, .pt or .pth"
_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
          "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("remap", help="write SOURCE's tensors with TARGET's keys and shapes",
                       description="Merge SOURCE into TARGET's keys and shapes and write OUT "
                                   "(.safetensors, .pt or .pth); nothing is written if the merge is blocked.")
    add_pair_arguments(p)
    p.add_argument("-o", "--output", required=True, metavar="OUT", help=f"output file: {OUT_SUFFIXES}")
    p.add_argument("--recipe", default=None, metavar="FILE", help="recipe (YAML or JSON)")
    add_param_argument(p)
    p.add_argument("--auto", choices=AUTO_LEVELS, default="high",
                   help="which suggestions to apply (default: high)")
    p.add_argument("--on-mismatch", choices=ON_MISMATCH, default="error",
                   help="a shape mismatch without an adapter: fail (default) or keep the target's value")
    p.add_argument("--dtype", default=None, metavar="DTYPE",
                   help="'target' (default: keep the target's dtypes), 'source', or a dtype for floating tensors")
    p.add_argument("--keep-extras", action="store_true", help="keep the source's other entries (optimizer state, epoch, hyper-parameters) beside the "
                        "tensors; .safetensors keeps what fits as text metadata and names the rest")
    p.add_argument("--nest", action="store_true", help="nest the output in the source's container (.pt only)")
    p.add_argument("--max-shard-size", default=None, metavar="SIZE", help="split the output, e.g. 5GB or 500MiB")
    p.add_argument("--report", default=None, metavar="FILE", help="write the report (.json or .csv)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    add_prove_arguments(p)
    p.add_argument("--json", action="store_true", help="print the report (and \"proof\") as JSON on stdout")
    p.set_defaults(func=run)


def parse_size(text: str | None) -> int | None:
    """``"5GB"`` -> 5_000_000_000, ``"500MiB"`` -> 524_288_000, ``"1024"`` -> 1024."""
    if text is None:
        return None
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?I?B?)\s*", text.upper())
    if not m or m.group(2) not in _UNITS or float(m.group(1)) <= 0:
        raise CheckpointError(f"--max-shard-size {text!r} is not a size like 5GB, 500MB or 2GiB")
    return int(float(m.group(1)) * _UNITS[m.group(2)])


def run(args: argparse.Namespace) -> int:
    from ckptlab.merge.planning import remap

    check_output(args)  # refuse before writing a checkpoint the report would then not describe
    shard = parse_size(args.max_shard_size)
    source, target = resolve_pair(args)
    recipe = recipe_with_params(args)
    with _ProgressBar(disabled=args.no_progress) as bar:
        try:
            with naming_recipe(args.recipe):
                report = remap(source, target, args.output, recipe=recipe, auto=args.auto,
                               on_mismatch=args.on_mismatch, dtype=args.dtype, keep_extras=args.keep_extras,
                               nest=args.nest, max_shard_size=shard, progress=bar.update)
        except MergeError as exc:
            bar.close()
            faults = getattr(exc, "faults", [])
            if len(faults) > 5:  # the error line names the first five; list them all above it
                for fault in faults:
                    say(f"  {fault}", file=sys.stderr)
            raise
    for message in report.warnings or ([report.warning] if report.warning else []):
        warn(message)
    if report.extras_not_kept:
        warn(f"--keep-extras could not keep {len(report.extras_not_kept)} "
             f"entr{'y' if len(report.extras_not_kept) == 1 else 'ies'}: " + "; ".join(report.extras_not_kept))
    if report.extras_converted:
        warn(f"--keep-extras wrote {len(report.extras_converted)} "
             f"entr{'y' if len(report.extras_converted) == 1 else 'ies'} as another type: "
             + "; ".join(report.extras_converted))
    if args.report:
        report.save(args.report)
    proof = _proof(args, source, target, recipe, report)
    tell(proof, args.json)
    if args.json:
        print_json({**report.to_dict(), **({"proof": proof.to_dict()} if proof is not None else {})})
    else:
        counts = ", ".join(f"{n} {status}" for status, n in report.summary.items() if n)
        kept = ""
        if args.keep_extras:
            kept = f"; extras kept except {len(report.extras_not_kept)} (see above)" if report.extras_not_kept \
                else "; every extra entry kept"
            kept += f", {len(report.extras_converted)} converted (see above)" if report.extras_converted else ""
        say(f"wrote {', '.join(report.outputs)} ({counts}{kept})")
    return 0


def _proof(args: argparse.Namespace, source, target, recipe, report) -> object:
    """``--prove``: the file just written, loaded into the target model, against the source model
    (the alignment made again: keys only, the same answer the merge used)."""
    if not (args.prove or args.prove_full):
        return None
    from ckptlab.align.matcher import align

    with naming_recipe(args.recipe):
        alignment = align(source, target, recipe=recipe, auto=args.auto)
    written = next((o for o in report.outputs if o.endswith(".index.json")), report.outputs[0])
    return run_proof(args, alignment, result=written)


def check_output(args: argparse.Namespace) -> None:
    """``-o``, ``--nest`` and ``--report`` checked in the CLI's words, before any work."""
    from pathlib import Path

    from ckptlab.merge.report import REPORT_SUFFIXES
    from ckptlab.io.writers import SUFFIXES

    out = Path(args.output)
    if out.is_dir():
        raise CheckpointError(f"-o {args.output!r} is a folder: give a file name ending in {OUT_SUFFIXES}")
    if out.suffix.lower() not in SUFFIXES:
        got = f"not {out.suffix!r}" if out.suffix else "it has no suffix"
        raise CheckpointError(f"-o {args.output!r} must end in {OUT_SUFFIXES} (.bin and .ckpt are torch files too); {got}")
    if args.nest and out.suffix.lower() == ".safetensors":
        raise CheckpointError("--nest needs a .pt or .pth output (-o): safetensors holds tensors only")
    if args.report:
        report = Path(args.report)
        if report.suffix.lower() not in REPORT_SUFFIXES:
            got = f"not {report.suffix!r}" if report.suffix else "it has no suffix"
            raise CheckpointError(f"--report {args.report!r} must end in .json or .csv; {got}")
        from ckptlab.merge.report import check_report_path

        check_report_path(args.report)


class _ProgressBar:
    """A tqdm bar on stderr fed by the writer's ``progress(done, total, key)`` callback."""

    def __init__(self, disabled: bool):
        self.disabled, self.bar = disabled, None

    def update(self, done: int, total: int, key: str) -> None:
        if self.disabled:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024,
                            desc="remap", file=sys.stderr, leave=False, disable=None)
        self.bar.update(done - self.bar.n)
        if key:
            self.bar.set_postfix_str(printable(key)[-40:], refresh=False)  # a key from the file: no ESC

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __enter__(self) -> "_ProgressBar":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
