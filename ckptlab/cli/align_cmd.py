"""``ckptlab align SOURCE TARGET``: what feeds every target key, and what would fix the rest."""
from __future__ import annotations

import argparse
from collections import defaultdict
from typing import TYPE_CHECKING

from ckptlab.vocab import Status
from ckptlab.cli import output
from ckptlab.cli.common import (AUTO_LEVELS, add_pair_arguments, add_param_argument, naming_recipe,
                                recipe_with_params, resolve_pair)
from ckptlab.cli.output import print_json, warn
from ckptlab.cli.proving import add_prove_arguments, run_proof, tell
from ckptlab.align.keyfold import fold_keys, fold_pattern  # light: no torch

if TYPE_CHECKING:
    from ckptlab.align.matcher import Alignment, Row

STATUS_STYLE = {"exact": "green", "renamed": "cyan", "adapted": "blue", "converted": "bright_blue", "mismatch": "bold red",
                "missing": "yellow", "unused": "magenta", "conflict": "bold red"}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "align", help="show for every target key which source key feeds it, and why",
        description="Align SOURCE with TARGET: one row per target key (exact, renamed, adapted, "
                    "converted, mismatch, missing, conflict) and per unused source key, with suggestions. "
                    "Exit status: 0; 2 with --strict unless the job is strict-clean (every target key fed "
                    "or kept on purpose, every source key used or dropped on purpose, no warning; with --prove, "
                    "also unless the outputs are proved equal); 1 on an error.")
    add_pair_arguments(p)
    p.add_argument("--recipe", default=None, metavar="FILE", help="recipe (YAML or JSON) to apply first")
    add_param_argument(p)
    p.add_argument("--auto", choices=AUTO_LEVELS, default="high",
                   help="apply suggestions automatically: none, only high-confidence ones (default), or all")
    p.add_argument("--strict", action="store_true",
                   help="exit 2 unless strict-clean: PyTorch's strict=True on purpose (keep_target / reinit / "
                        "drop say so), plus no warning")
    add_prove_arguments(p, strict_note=True)
    p.add_argument("--json", action="store_true",
                   help='print {"rows","summary","suggestions","warning","warnings"} (and "proof") as one JSON object')
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ckptlab.align.matcher import align

    source, target = resolve_pair(args)
    recipe = recipe_with_params(args)
    with naming_recipe(args.recipe):
        alignment = align(source, target, recipe=recipe, auto=args.auto)
    proof = run_proof(args, alignment)
    if args.json:
        print_json({**alignment.to_dict(), **({"proof": proof.to_dict()} if proof is not None else {})})
    else:
        print_table(alignment)
    for message in alignment.warnings:
        warn(message)
    tell(proof, args.json)
    if not args.strict:
        return 0
    problems = [p for p in alignment.strict_problems if not p.startswith("warning: ")]
    for message in problems:
        warn(f"not strict: {message}")
    return 0 if alignment.strict_ok and (proof is None or proof.proved) else 2


# -- the readable table -------------------------------------------------------------------
def _module(row: "Row") -> str:
    key = row.target if row.target is not None else row.source
    return key.split(".", 1)[0] if "." in key else "(top level)"


def folded_rows(rows: "list[Row]") -> "list[tuple[str, str, Row, int]]":
    """(target pattern, source pattern, first row, count): rows alike but for a layer index
    become one line."""
    alike: dict[tuple, list[Row]] = defaultdict(list)
    for row in rows:
        alike[(row.status, row.target_shape, row.source_shape, row.reason, row.target is None)].append(row)
    lines = []
    for group in alike.values():
        by_target = {row.target if row.target is not None else row.source: row for row in group}
        for folded in fold_keys(by_target):
            members = [by_target[k] for k in folded.keys]
            first = members[0]
            if first.target is None:
                lines.append(("", folded.pattern, first, len(members)))
                continue
            sources = [s for row in members for s in (row.sources or ((row.source,) if row.source else ()))]
            source = fold_pattern(sources) if len(members) > 1 and sources else ", ".join(sources)
            lines.append((folded.pattern, source, first, len(members)))
    order = {id(row): i for i, row in enumerate(rows)}
    return sorted(lines, key=lambda line: order[id(line[2])])


def print_table(alignment: "Alignment") -> None:
    from rich.table import Table
    from ckptlab.align.matcher import STATUSES, shape_text
    from ckptlab.cli.output import text

    table = Table(title=f"{alignment.source.name} -> {alignment.target.name}", show_lines=False)
    for name in ("target", "shape", "source", "shape", "status", "reason"):
        table.add_column(name, overflow="fold", no_wrap=name in ("shape", "status"))
    modules: dict[str, list[Row]] = defaultdict(list)
    for row in alignment.rows:
        modules[_module(row)].append(row)
    for i, (module, rows) in enumerate(modules.items()):
        if i:
            table.add_section()
        table.add_row(text(module, style="bold"), "", "", "", "", "")
        for target, source, row, count in folded_rows(rows):
            status = row.status + (f" x{count}" if count > 1 else "")
            source = "=" if source == target and row.status == Status.EXACT else source
            table.add_row(text(target), shape_text(row.target_shape), text(source), shape_text(row.source_shape),
                          text(status, style=STATUS_STYLE[row.status]), text(row.reason))
    summary = alignment.summary
    counts = text("summary: ")
    for i, s in enumerate(STATUSES):
        counts.append(("" if not i else ", "))
        counts.append(f"{s} {summary[s]}", style=STATUS_STYLE[s])
    counts.append(f"; {len(alignment.fed)} of {len(alignment.target)} target keys fed")
    lines = [counts] + [text(f"{'applied' if s.applied else 'suggested'} ({s.confidence}): {s.describe()}: {s.reason}")
                        for s in alignment.suggestions]
    output.print_table(table, *lines)
