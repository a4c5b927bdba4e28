"""``ckptlab recipes``: the known conversions shipped with ckptlab (``ckptlab/known/``)."""
from __future__ import annotations

import argparse

from ckptlab.cli.output import print_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "recipes", help="list the known conversions (GPT-2 <-> nanoGPT, timm <-> HF ViT, Meta <-> HF LLaMA, ...)",
        description="List the known conversions ckptlab suggests when a pair fits one; with --show NAME "
                    "print that conversion's recipe as YAML (fill its parameters with --param NAME=VALUE), "
                    "ready for --recipe.")
    p.add_argument("--show", default=None, metavar="NAME", help="print this conversion's recipe (YAML)")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="a parameter of the conversion, e.g. heads=32 (repeatable)")
    p.add_argument("--json", action="store_true",
                   help='print {"recipes": [{"name","from","to","description","params"}]}')
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ckptlab.recipe.known import catalogue, get
    from ckptlab.recipe.known.params import parse_assignments

    if args.show:
        known = get(args.show)
        recipe = known.recipe(parse_assignments(args.param))
        if args.json:
            print_json({"name": known.name, "recipe": recipe.to_dict()})
        else:
            print(recipe.to_yaml(), end="")
        return 0
    entries = [k.to_dict() for k in catalogue()]
    if args.json:
        print_json({"recipes": entries})
        return 0
    from rich.table import Table
    from rich.text import Text

    from ckptlab.cli.output import print_table

    table = Table(title="known conversions (ckptlab recipes --show NAME prints one)")
    for name in ("name", "from", "to", "params"):
        table.add_column(name, overflow="fold")
    for e in entries:
        table.add_row(Text(e["name"]), Text(e["from"]), Text(e["to"]), Text(", ".join(e["params"]) or "-"))
    print_table(table)
    return 0
