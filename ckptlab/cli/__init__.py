"""The ``ckptlab`` command: one module per subcommand, this file only dispatches.

Each subcommand module defines ``register(subparsers)`` (adds its parser and sets
``func``) and returns an exit code from ``func(args)``. With ``--json`` a command prints
exactly one JSON object on stdout; warnings and errors always go to stderr. A
``CheckpointError`` becomes one line on stderr and exit code 1, never a traceback; with
``--json`` stdout then holds ``{"error": <that line>, "file": <its path or null>}`` (a usage
error too, exit code 2).
"""
from __future__ import annotations

import argparse
import importlib
import sys

from ckptlab.errors import CheckpointError

COMMANDS = ("inspect", "align", "remap", "verify", "stats", "diff", "invert", "recipes", "app")


class UsageError(Exception):
    """argparse's complaint about the command line, raised instead of printed so that
    ``main`` can also answer it in JSON."""

    def __init__(self, parser: argparse.ArgumentParser, message: str):
        super().__init__(message)
        self.parser, self.message = parser, message


class Parser(argparse.ArgumentParser):
    def error(self, message: str):  # noqa: D102 - argparse's hook (its subcommands' parsers are Parsers too)
        raise UsageError(self, message)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
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
    from ckptlab.cli.output import error

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:  # argparse's own output and exit status 2, plus the JSON answer if asked
        exc.parser.print_usage(sys.stderr)
        error(exc.message, as_json="--json" in (sys.argv[1:] if argv is None else argv), prog=exc.parser.prog)
        raise SystemExit(2) from None
    try:
        return int(args.func(args) or 0)
    except CheckpointError as exc:
        from ckptlab.cli.words import in_cli_words

        error(in_cli_words(str(exc)), exc.path, as_json=getattr(args, "json", False))
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
