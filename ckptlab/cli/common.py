"""Arguments shared by the commands that take a SOURCE and a TARGET."""
from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from ckptlab.errors import ModelSpecError, RecipeError
from ckptlab.vocab import AUTO_LEVELS, ON_MISMATCH  # noqa: F401  (the parsers' choices)

if TYPE_CHECKING:
    from ckptlab.io.checkpoint import Checkpoint

# The core's choices, repeated here so that building the parser imports no torch
# (tests/test_cli_help.py checks they equal ckptlab.align.AUTO_LEVELS and ckptlab.merge.ON_MISMATCH).


def add_pair_arguments(parser: argparse.ArgumentParser) -> None:
    """SOURCE, TARGET (files or model definitions) and how to build model definitions."""
    parser.add_argument("source", help="source checkpoint (file, index.json, DCP folder) or model definition")
    parser.add_argument("target", help="target checkpoint, or model definition 'pkg.module:callable' "
                                        "(a spec is code: it imports that module and calls that callable)")
    parser.add_argument("--source-container", default=None, metavar="DOTTED",
                        help="where the tensors sit inside the source file (default: found)")
    parser.add_argument("--target-kwargs", default=None, metavar="JSON",
                        help=f"keyword arguments for a target model definition, as JSON; {TYPED_HELP}")
    parser.add_argument("--source-kwargs", default=None, metavar="JSON",
                        help="keyword arguments for a source model definition, as JSON")
    parser.add_argument("--target-config", default=None, metavar="PATH",
                        help=f"config.json (or its folder) for a transformers target, {CONFIG_HELP}")
    parser.add_argument("--source-config", default=None, metavar="PATH",
                        help="config.json (or its folder) for a transformers source model definition")
    parser.add_argument("--allow-code", action="store_true",
                        help="allow 'path/to/file.py:callable' model definitions (runs that file; "
                             "'pkg.module:callable' specs always import and run their code: name only your own)")


TYPED_HELP = ('an argument {"class": "pkg.module:Name", "kwargs": {...}} is built first '
              '(e.g. {"config": {"class": "transformers:BertConfig", "kwargs": {"num_labels": 3}}})')
CONFIG_HELP = "e.g. transformers:AutoModelForSequenceClassification (built on the meta device, offline)"


def parse_kwargs(text: str | None, flag: str, config: str | None = None, config_flag: str = "") -> dict:
    """A ``--*-kwargs`` JSON object (the error names the flag), plus ``config`` from a
    ``--*-config`` path as a typed argument."""
    from ckptlab.io import model_target as targets

    try:
        kwargs = targets.parse_kwargs(text)
    except ModelSpecError as exc:
        raise ModelSpecError(f"{flag}: {exc.message}") from None
    if config:
        if "config" in kwargs:
            raise ModelSpecError(f"{config_flag} and a 'config' in {flag} say the same thing twice: keep one")
        try:
            kwargs["config"] = targets.config_argument(config)
        except ModelSpecError as exc:
            raise ModelSpecError(f"{config_flag}: {exc}") from None
    return kwargs


def allow_code(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "allow_code", False)) or os.environ.get("CKPTLAB_ALLOW_CODE") == "1"


def resolve_pair(args: argparse.Namespace) -> tuple["Checkpoint", "Checkpoint"]:
    """Open SOURCE and TARGET as Checkpoints (model definitions built on the meta device)."""
    from ckptlab.io.sources import as_checkpoint

    source = as_checkpoint(args.source, container=args.source_container, allow_code=allow_code(args),
                           kwargs=parse_kwargs(args.source_kwargs, "--source-kwargs", args.source_config,
                                               "--source-config"))
    target = as_checkpoint(args.target, allow_code=allow_code(args),
                           kwargs=parse_kwargs(args.target_kwargs, "--target-kwargs", args.target_config,
                                               "--target-config"))
    return source, target


def add_param_argument(parser: argparse.ArgumentParser) -> None:
    """``--param heads=32``: a value a known conversion needs (repeatable)."""
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                        help="a parameter of a known conversion, e.g. heads=32 (repeatable; "
                             "`ckptlab recipes` lists them)")


def recipe_with_params(args: argparse.Namespace):
    """``--recipe`` as given, or (with ``--param``) the recipe carrying those params."""
    if not getattr(args, "param", None):
        return args.recipe
    from dataclasses import replace

    from ckptlab.recipe.known.params import parse_assignments
    from ckptlab.recipe.model import Recipe

    recipe = Recipe.coerce(args.recipe)
    return replace(recipe, params={**recipe.params, **parse_assignments(args.param)})


@contextmanager
def naming_recipe(path: object) -> Iterator[None]:
    """A ``RecipeError`` that names no file (``convert 1: ... matches no source key``, found
    only once the recipe meets the source) names the recipe file the command read."""
    try:
        yield
    except RecipeError as exc:
        if exc.path is not None or not isinstance(path, (str, os.PathLike)):
            raise
        raise type(exc)(exc.message, path) from None
