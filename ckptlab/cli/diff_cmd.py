"""``ckptlab diff A B``: A's tensors against the B tensors they align to, value by value.

Heavy modules (torch, ckptlab.values.diff) are imported inside ``run`` so ``ckptlab --help`` stays
torch-free.
"""
from __future__ import annotations

import argparse
from typing import Any

from ckptlab.cli.common import AUTO_LEVELS  # light: no torch


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "diff", help="compare two checkpoints' values through an alignment (equal, max_abs, rel_l2, cosine)",
        description="Align A (as the source) with B (as the target), then compare every B tensor with "
                    "A's value for it: equal bit for bit (raw bytes compared, no float work), else max_abs, "
                    "rel_l2 = ||a-b||/||b|| and cosine in float64. Keys of either side that align to nothing "
                    "are listed; an alignment that feeds few or no B keys is warned about on stderr, as "
                    "by align. Exit status 0 (also when values differ); 2 with --strict on any such "
                    "warning; 1 on an error.")
    p.add_argument("a", metavar="A", help="checkpoint A (file, *.index.json, or distributed-checkpoint folder)")
    p.add_argument("b", metavar="B", help="checkpoint B, the reference (rel_l2 divides by ||b||)")
    p.add_argument("--container", default=None, metavar="DOTTED", help="where the tensors sit inside A")
    p.add_argument("--recipe", default=None, metavar="FILE", help="recipe (YAML or JSON) mapping A's keys onto B's")
    p.add_argument("--auto", choices=AUTO_LEVELS, default="high",
                   help="apply alignment suggestions automatically: none, high-confidence ones (default), or all")
    deq = p.add_mutually_exclusive_group()
    deq.add_argument("--dequantize", dest="dequantize", action="store_const", const=True, default=None,
                     help="always dequantise fp8 weights with a '*_scale_inv' sibling (default: when the "
                          "other side is not fp8)")
    deq.add_argument("--no-dequantize", dest="dequantize", action="store_const", const=False,
                     help="compare fp8 weights as stored")
    p.add_argument("--strict", action="store_true",
                   help="exit 2 on any alignment warning (e.g. fewer than half of B's keys are fed by A)")
    p.add_argument("--json", action="store_true", help='print {"pairs", "summary", "unaligned"} as one JSON object')
    p.add_argument("--no-fold", action="store_true", help="one line per pair (by default layer runs share a line)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ckptlab.cli.output import print_json, warn
    from ckptlab.cli.progress import byte_progress
    from ckptlab.values.diff import diff

    from ckptlab.cli.common import naming_recipe

    with byte_progress("diff") as progress, naming_recipe(args.recipe):
        result = diff(args.a, args.b, recipe=args.recipe, auto=args.auto, progress=progress,
                      dequantize=args.dequantize, container=args.container)
    if args.json:
        print_json(result.to_dict())
    else:
        _print_table(result, fold=not args.no_fold)
    warnings = list(result.alignment.warnings) if result.alignment is not None else []
    for message in warnings:
        warn(message)
    return 2 if args.strict and warnings else 0


def _rank(p: Any) -> tuple:
    """Changed pairs first (largest rel_l2 first, undefined ones after), then those not
    compared, then equal ones."""
    if p.equal is False:
        return (0, -p.rel_l2) if p.rel_l2 is not None else (1, 0.0)
    return (2, 0.0) if p.equal is None else (3, 0.0)


def folded_lines(pairs: list[Any], fold: bool = True) -> list[tuple[str, list[Any]]]:
    from ckptlab.cli.folding import fold_items

    return fold_items(pairs, key=lambda p: p.target,
                      alike=lambda p: (p.status, p.equal, p.shape, p.dequantized, p.equal is not False),
                      rank=_rank, fold=fold)


def _print_table(result: Any, fold: bool) -> None:
    from rich.table import Table
    from ckptlab.cli.output import text

    from ckptlab.cli.folding import value_range
    from ckptlab.cli.output import print_table
    from ckptlab.align.keyfold import fold_pattern

    table = Table(title=f"{result.a_name} (A) vs {result.b_name} (B)", title_justify="left")
    for column, justify in (("", "left"), ("B key", "left"), ("A key", "left"), ("status", "left"),
                            ("n", "right"), ("max_abs", "right"), ("rel_l2", "right"), ("cosine", "right")):
        table.add_column(column, justify=justify, overflow="fold", no_wrap=column not in ("B key", "A key"))
    lines = folded_lines(result.pairs, fold)
    for pattern, members in lines:
        first = members[0]
        mark = {True: text("equal", style="green"), False: text("changed", style="bold yellow"),
                None: text("not compared", style="red")}[first.equal]
        if first.dequantized:
            mark.append(f" (dequantised {first.dequantized})")
        sources = [s for m in members for s in (m.sources or ((m.source,) if m.source else ()))]
        table.add_row(mark, text(pattern), text(fold_pattern(sources) if sources else "-"), first.status,
                      f"x{len(members)}" if len(members) > 1 else "",
                      value_range([m.max_abs for m in members]), value_range([m.rel_l2 for m in members]),
                      value_range([m.cosine for m in members], ".6f"))
    s = result.summary
    footer = [f"{s['pairs']} pairs: {s['equal']} equal, {s['changed']} changed, {s['not_compared']} not compared"
              + (f"; {s['dequantized']} compared dequantised" if s["dequantized"] else "")
              + ("; A and B are the same file" if s["identical_files"] else "")
              + (f" ({s['pairs']} pairs folded into {len(lines)} lines; --no-fold lists every pair)"
                 if len(lines) < s["pairs"] else "")]
    changed = [(m, v) for m, v in s["by_module"].items() if v["changed"]]
    if changed:
        footer.append("changed by module: " + ", ".join(
            f"{m} {v['changed']}/{v['pairs']}" + (f" (max rel_l2 {v['max_rel_l2']:.3g})" if v["max_rel_l2"] is not None else "")
            for m, v in changed))
    for side, label in (("a", "A keys feeding nothing"), ("b", "B keys nothing feeds")):
        keys = result.unaligned[side]
        if keys:
            footer.append(f"{label} ({len(keys)}): " + ", ".join(f.pattern for f in _folded(keys)[:12])
                          + (" ..." if len(_folded(keys)) > 12 else ""))
    footer.append("rel_l2 = ||a-b|| / ||b||, in float64; equal = bit for bit")
    print_table(table, *(text(line) for line in footer))


def _folded(keys: list[str]):
    from ckptlab.align.keyfold import fold_keys

    return fold_keys(keys)
