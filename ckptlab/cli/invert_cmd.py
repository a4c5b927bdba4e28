"""``ckptlab invert RECIPE -o OUT``: write the recipe that undoes RECIPE.

Remapping with RECIPE and then with OUT gives back the original tensors bit for bit. What
cannot be undone (drop, keep, a truncate, narrow, a dtype cast) fails with one line naming
it, unless ``--partial`` leaves it out (and says what was left out, on stderr).
"""
from __future__ import annotations

import argparse

from ckptlab.cli.output import print_json, warn


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("invert", help="write the recipe that undoes a recipe",
                       description="Invert RECIPE: renames reversed, each conversion's ops replaced by their "
                                   "inverses in reverse order. Exit 1, writing nothing, when a part cannot be "
                                   "undone (unless --partial).")
    p.add_argument("recipe", metavar="RECIPE", help="the recipe to invert (YAML or JSON)")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="where to write the inverse (.yaml or .json)")
    p.add_argument("--partial", action="store_true",
                   help="leave out what cannot be undone (drop, keep, truncate, narrow, dtype, ...) instead of failing")
    p.add_argument("--source", default=None, metavar="CKPT",
                   help="the checkpoint RECIPE was written for: its shapes undo a reshape (and an unequal cat exactly)")
    p.add_argument("--json", action="store_true", help='print {"recipe", "skipped", "output"} as one JSON object')
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ckptlab.errors import RecipeError
    from ckptlab.recipe.model import Recipe
    from ckptlab.io.writers.textfile import check_writable

    check_writable(args.output, "output", (".yaml", ".yml", ".json"), RecipeError)
    recipe = Recipe.load(args.recipe)
    shapes = None
    if args.source is not None:
        from ckptlab.io.sources import as_checkpoint

        shapes = as_checkpoint(args.source)
    try:
        inverse = recipe.inverted(partial=args.partial, shapes=shapes)
    except RecipeError as exc:  # the command line's word for it, naming the recipe file
        raise RecipeError(exc.message.replace("partial=True", "--partial"), exc.path or args.recipe) from None
    written = inverse.save(args.output)
    skipped = list(getattr(inverse, "skipped", []))
    if skipped:
        warn(f"left out (cannot be undone): {'; '.join(skipped)}")
    if args.json:
        print_json({"recipe": inverse.to_dict(), "skipped": skipped, "output": str(written)})
    else:
        print(f"wrote {written} ({len(inverse.rules)} rules, {len(inverse.convert)} conversions, "
              f"{len(inverse.map)} map entries, {len(inverse.adapt)} adapters)")
    return 0
