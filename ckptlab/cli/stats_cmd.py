"""``ckptlab stats PATH``: per-tensor value statistics and flags, streamed.

Heavy modules (torch, ckptlab.stats) are imported inside ``run`` so ``ckptlab --help``
stays torch-free.
"""
from __future__ import annotations

import argparse
import re
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "stats", help="per-tensor value statistics (min/max/mean/std, zeros, NaN/Inf) and flags",
        description="Read every tensor once, streamed window by window, and report its min, max, mean, "
                    "std (population), absmax and the counts of zeros, NaN and Inf (moments over finite "
                    "values), flagging NaN/Inf, all-zero and constant tensors and norm weights far from 1.")
    p.add_argument("path", metavar="PATH", help="checkpoint file, *.index.json, or distributed-checkpoint folder")
    p.add_argument("--container", default=None, metavar="DOTTED",
                   help="where the tensors sit inside the file, e.g. 'net' or 'state_dict' (default: found)")
    p.add_argument("--match", default=None, metavar="REGEX", help="only the keys this regex finds (re.search)")
    p.add_argument("--dequantize", action="store_true",
                   help="fp8 weights with a '*_scale_inv' sibling (DeepSeek-V3 128x128 blocks): dequantised values")
    p.add_argument("--json", action="store_true", help="print one JSON object (the documented contract)")
    p.add_argument("--no-fold", action="store_true",
                   help="one line per tensor (by default tensors alike but for a layer index share one line)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ckptlab.io.opener import open as open_checkpoint
    from ckptlab.cli.output import print_json
    from ckptlab.cli.progress import byte_progress
    from ckptlab.errors import CheckpointError
    from ckptlab.values.stats import stats

    ck = open_checkpoint(args.path, container=args.container)
    keys = None
    if args.match is not None:
        try:
            pattern = re.compile(args.match)
        except re.error as exc:
            raise CheckpointError(f"--match: invalid regex {args.match!r} ({exc})") from None
        keys = [k for k in ck.keys() if pattern.search(k)]
    with byte_progress("stats") as progress:
        result = stats(ck, keys=keys, progress=progress, dequantize=args.dequantize)
    if args.json:
        print_json(result.to_dict())
    else:
        _print_table(result, ck.name, fold=not args.no_fold)
    return 0


def folded_lines(tensors: list[Any], fold: bool = True) -> list[tuple[str, list[Any]]]:
    """(key pattern, members) lines: flagged ones first (worst flag first), then in file order;
    tensors alike but for a layer index (same shape, dtype and flags) share one line."""
    from ckptlab.cli.folding import fold_items
    from ckptlab.values.stats import FLAGS

    severity = {flag: i for i, flag in enumerate(FLAGS)}
    return fold_items(tensors, key=lambda s: s.key, alike=lambda s: (s.shape, s.dtype, s.flags),
                      rank=lambda s: severity[s.flags[0]] if s.flags else len(severity), fold=fold)


def _print_table(result: Any, name: str, fold: bool) -> None:
    from rich.table import Table
    from ckptlab.cli.output import text

    from ckptlab.cli.folding import value_range
    from ckptlab.cli.output import print_table
    from ckptlab.values.stats import FLAGS

    table = Table(title=f"{name}: value statistics", title_justify="left")
    for column, justify in (("flags", "left"), ("key", "left"), ("shape", "left"), ("dtype", "left"),
                            ("n", "right"), ("min", "right"), ("max", "right"), ("mean", "right"),
                            ("std", "right"), ("zeros", "right"), ("nan", "right"), ("inf", "right")):
        table.add_column(column, justify=justify, overflow="fold", no_wrap=column != "key")
    lines = folded_lines(result.tensors, fold)
    for pattern, members in lines:
        first = members[0]
        lo = [m.min for m in members]
        hi = [m.max for m in members]
        numel = sum(m.numel for m in members)
        zeros = sum(m.zeros for m in members)
        table.add_row(
            text(", ".join(first.flags), style="bold red" if first.flags else ""), text(pattern),
            str(tuple(first.shape)), first.dtype + (" (dequantised)" if first.dequantized else ""),
            f"x{len(members)}" if len(members) > 1 else "",
            value_range(lo, ".4g") if len(members) == 1 else _fmt(min((v for v in lo if v is not None), default=None)),
            value_range(hi, ".4g") if len(members) == 1 else _fmt(max((v for v in hi if v is not None), default=None)),
            value_range([m.mean for m in members], ".4g"), value_range([m.std for m in members], ".4g"),
            f"{zeros:,}" if zeros < numel or not numel else "all",
            f"{sum(m.nan for m in members):,}" or "", f"{sum(m.inf for m in members):,}")
    flagged = result.flagged
    footer = [f"{len(result)} tensors, {len(flagged)} flagged"
              + (f" ({len(result)} tensors folded into {len(lines)} lines; --no-fold lists every tensor)"
                 if len(lines) < len(result) else "")]
    for flag in sorted({f for s in flagged for f in s.flags}, key=list(FLAGS).index):
        footer.append(f"{flag}: {FLAGS[flag]}")
    footer.append("min/max/mean/std over finite values; std is the population std; "
                  "a folded line shows the range over its tensors")
    print_table(table, *(text(line) for line in footer))


def _fmt(v: Any) -> str:
    return "-" if v is None else format(v, ".4g")
