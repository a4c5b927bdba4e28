"""``ckptlab verify CKPT --model SPEC``: would a strict ``load_state_dict`` accept this file?"""
from __future__ import annotations

import argparse

from ckptlab.cli.common import CONFIG_HELP, TYPED_HELP, allow_code, parse_kwargs
from ckptlab.cli.output import print_json, say


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "verify", help="check that a checkpoint loads strictly into a model definition",
        description="List the keys a strict load_state_dict would call missing, unexpected or "
                    "mismatched (shape), from keys and shapes alone. Exit status: 0 when all three "
                    "are empty, 1 otherwise (or on an error).")
    p.add_argument("ckpt", metavar="CKPT", help="checkpoint file (or index.json, DCP folder)")
    p.add_argument("--model", required=True, metavar="SPEC",
                   help="model definition 'pkg.module:callable' or 'path/to/file.py:callable' "
                        "(a spec is code: it is imported and called)")
    p.add_argument("--model-kwargs", default=None, metavar="JSON",
                   help=f"keyword arguments for SPEC, as JSON; {TYPED_HELP}")
    p.add_argument("--model-config", default=None, metavar="PATH",
                   help=f"config.json (or its folder) for a transformers SPEC, {CONFIG_HELP}")
    p.add_argument("--container", default=None, metavar="DOTTED",
                   help="where the tensors sit inside CKPT (default: found)")
    p.add_argument("--allow-code", action="store_true",
                   help="allow 'path/to/file.py:callable' (runs that file); or set CKPTLAB_ALLOW_CODE=1")
    p.add_argument("--json", action="store_true",
                   help='print {"missing","unexpected","mismatched","ok"} as one JSON object')
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ckptlab.io.opener import open as open_checkpoint
    from ckptlab.io.model_target import model_target
    from ckptlab.models.load_check import load_report

    kwargs = parse_kwargs(args.model_kwargs, "--model-kwargs", args.model_config, "--model-config")
    model = model_target(args.model, kwargs, allow_code(args))
    ckpt = open_checkpoint(args.ckpt, container=args.container)
    report = load_report(ckpt, model)
    ok = not any(report.values())
    if args.json:
        print_json({**report, "ok": ok})
    else:
        _print_text(report, ok)
    return 0 if ok else 1


def _print_text(report: dict, ok: bool) -> None:
    from ckptlab.models.load_check import describe_misfit

    say(describe_misfit(report) if ok else f"does not load strictly: {describe_misfit(report)}")
    for key in report["missing"]:
        say(f"  missing     {key}")
    for key in report["unexpected"]:
        say(f"  unexpected  {key}")
    for m in report["mismatched"]:
        say(f"  mismatched  {m['key']}: checkpoint {tuple(m['checkpoint_shape'])} vs model {tuple(m['model_shape'])}")
