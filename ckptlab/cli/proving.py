"""``--prove`` for ``align`` and ``remap``: run both models and say whether they agree.

The flags are registered with no heavy import; ``ckptlab.models.proof`` (torch, and
transformers when a config is read) is imported only when a proof is asked for.
"""
from __future__ import annotations

import argparse
import sys
from typing import Any

from ckptlab.cli.output import say


def add_prove_arguments(parser: argparse.ArgumentParser, strict_note: bool = False) -> None:
    note = "; with --strict, exit 2 when not proved" if strict_note else ""
    parser.add_argument("--prove", action="store_true",
                        help="build both models (model definitions, or a transformers config.json beside a file), "
                             "run seeded inputs through the source model and the target model holding the result, "
                             "and report whether the outputs are equal, or the first target module whose output "
                             f"differs from its source module (JSON: \"proof\"){note}")
    parser.add_argument("--prove-full", action="store_true",
                        help="--prove, building models of any size (by default a side of more than 200M "
                             "parameters is not built)")


def run_proof(args: argparse.Namespace, alignment: Any, result: Any = None) -> Any:
    """The proof of ``alignment`` (None when ``--prove`` was not given); ``result``: a file written."""
    if not (getattr(args, "prove", False) or getattr(args, "prove_full", False)):
        return None
    from ckptlab.models.proof import prove

    return prove(alignment, result=result, full_scale=args.prove_full)


def tell(proof: Any, as_json: bool) -> None:
    """Without ``--json``, the proof's one line on stderr (with it, the JSON carries it)."""
    if proof is not None and not as_json:
        say(proof.describe(), file=sys.stderr)
