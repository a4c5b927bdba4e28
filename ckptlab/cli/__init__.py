"""The ``ckptlab`` command: one module per subcommand, this file only dispatches.

Each subcommand module defines ``register(subparsers)`` (adds its parser and sets
``func``) and returns an exit code from ``func(args)``. With ``--json`` a command prints
exactly one JSON object on stdout; warnings and errors always go to stderr. A
``CheckpointError`` becomes one line on stderr and exit code 1, never a traceback.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from ckptlab.errors import CheckpointError

COMMANDS = ("inspect", "align", "remap", "verify", "stats", "diff", "invert", "recipes", "app")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ckptlab", description="Inspect, align and remap PyTorch checkpoints."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"ckptlab.cli.{name}_cmd")
        except ModuleNotFoundError as exc:  # a command still being built
            if exc.name != f"ckptlab.cli.{name}_cmd":
                raise
            continue
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; its exit code. A reader that leaves early (``ckptlab inspect x | head``)
    is no error: the rest of the output is dropped and the exit code is 0, always."""
    try:
        try:
            code = _dispatch(argv)
        finally:
            sys.stdout.flush()  # inside the try: a closed pipe shows here, not at interpreter exit
    except BrokenPipeError:
        _silence_stdout()
        return 0
    return code


def _dispatch(argv: list[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except CheckpointError as exc:
        from ckptlab.cli.words import in_cli_words

        print(f"ckptlab: error: {in_cli_words(str(exc))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("ckptlab: interrupted", file=sys.stderr)
        return 130


def _silence_stdout() -> None:
    """Point stdout at devnull so the interpreter's final flush cannot raise again."""
    import os

    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):  # no real file descriptor (captured in tests)
        pass


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
