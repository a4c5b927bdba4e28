"""``ckptlab inspect PATH``: what a checkpoint holds, read from its headers only."""
from __future__ import annotations

import argparse
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from ckptlab.cli.output import human_bytes, print_json, print_table

if TYPE_CHECKING:
    from ckptlab.io.checkpoint import Checkpoint


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "inspect", help="list a checkpoint's tensors (keys, shapes, dtypes) without loading them",
        description="Open a checkpoint lazily and safely (no code from the file runs) and list its "
                    "tensors, where they sit in the file, and everything else the file holds.")
    p.add_argument("path", metavar="PATH", help="checkpoint file, *.index.json, distributed-checkpoint folder, "
                                                "or a model definition 'pkg.module:callable' (a spec is code: "
                                                "it is imported and called)")
    p.add_argument("--container", default=None, metavar="DOTTED",
                   help="where the tensors sit inside the file, e.g. 'net' or 'state_dict' (default: found)")
    p.add_argument("--model-kwargs", default=None, metavar="JSON", help="keyword arguments for a model definition")
    p.add_argument("--model-config", default=None, metavar="PATH", help="config.json for a transformers model definition")
    p.add_argument("--allow-code", action="store_true", help="allow 'path/to/file.py:callable' (runs that file)")
    p.add_argument("--json", action="store_true", help="print one JSON object (the documented contract)")
    p.add_argument("--no-fold", action="store_true",
                   help="list every key (by default keys alike but for a layer index share one line)")
    p.set_defaults(func=run)


def to_json(ck: "Checkpoint") -> dict[str, Any]:
    """The contract's object (``total_params``: every element of every tensor, as it always was),
    plus ``elements`` (floating vs integer; parameters vs buffers for a model definition),
    ``candidates``, ``optimizer`` (per-parameter optimizer state, grouped), ``placeholders``,
    ``total_bytes`` and ``aliases`` (groups of keys that are one tensor: tied weights)."""
    from ckptlab.io.containers import split_optimizer
    from ckptlab.io.counts import counts

    _, optimizers = split_optimizer(ck.candidates)
    return {
        "format": ck.format,
        "container": ck.container,
        "tensors": [{"key": key, "shape": list(info.shape), "dtype": info.dtype_name, "nbytes": info.nbytes}
                    for key, info in ((k, ck.info(k)) for k in ck.keys())],
        "total_params": ck.total_params,
        "other": [{"key": e.key, "type": e.type} for e in ck.other],
        "total_bytes": ck.total_bytes,
        "elements": counts(ck).to_dict(),
        "optimizer": [{"path": o.path, "entries": o.entries, "tensors": o.tensors, "nbytes": o.nbytes}
                      for o in optimizers],
        "candidates": [{"path": c.path, "tensors": c.tensors, "nbytes": c.nbytes} for c in ck.candidates],
        "placeholders": list(ck.placeholders),
        "aliases": [list(group) for group in ck.aliases()],
    }


def run(args: argparse.Namespace) -> int:
    from ckptlab.io.opener import open as open_checkpoint
    from ckptlab.cli.common import allow_code, parse_kwargs
    from ckptlab.io.sources import is_model_spec

    if is_model_spec(args.path):
        from ckptlab.io.model_target import model_target

        kwargs = parse_kwargs(args.model_kwargs, "--model-kwargs", args.model_config, "--model-config")
        ck = model_target(args.path, kwargs, allow_code(args))
    else:
        ck = open_checkpoint(args.path, container=args.container)
    if args.json:
        print_json(to_json(ck))
    else:
        _print_table(ck, fold=not args.no_fold)
    return 0


def folded_keys(ck: "Checkpoint") -> list[tuple[str, str, int, int]]:
    """(key pattern, first key, count, total bytes) in file order: keys alike but for a layer index, with
    the same shape and dtype, become one line (``layer.{0..11}.attn.weight``)."""
    from ckptlab.align.keyfold import fold_keys

    alike: dict[tuple, list[str]] = defaultdict(list)
    for key in ck.keys():
        info = ck.info(key)
        alike[(info.shape, info.dtype)].append(key)
    order = {key: i for i, key in enumerate(ck.keys())}
    lines = [(folded.pattern, folded.keys) for keys in alike.values() for folded in fold_keys(keys)]
    lines.sort(key=lambda line: order[line[1][0]])
    return [(pattern, keys[0], len(keys), sum(ck.info(k).nbytes for k in keys)) for pattern, keys in lines]


def _print_table(ck: "Checkpoint", fold: bool = True) -> None:
    from rich.table import Table
    from ckptlab.cli.output import text

    where = repr(ck.container) if ck.container else "top level"
    table = Table(title=f"{ck.name} ({ck.format}, tensors at {where})", title_justify="left")
    for column, justify in (("key", "left"), ("shape", "left"), ("dtype", "left"), ("n", "right"), ("size", "right")):
        table.add_column(column, justify=justify, overflow="fold", no_wrap=column != "key")
    lines = folded_keys(ck) if fold else [(k, k, 1, ck.info(k).nbytes) for k in ck.keys()]
    for pattern, first, count, nbytes in lines:
        info = ck.info(first)
        table.add_row(text(pattern), str(tuple(info.shape)), info.dtype_name, f"x{count}" if count > 1 else "",
                      human_bytes(nbytes))
    from ckptlab.io.containers import split_optimizer
    from ckptlab.io.counts import counts

    footer = [f"{counts(ck).describe()}, {human_bytes(ck.total_bytes)}"
              + (f" ({len(ck)} keys folded into {len(lines)} lines; --no-fold lists every key)"
                 if len(lines) < len(ck) else "")]
    candidates, optimizers = split_optimizer(ck.candidates)
    others = [c for c in candidates if c.path != ck.container]
    if others:
        listed = ", ".join(f"{c.path or '(top level)'!s} ({c.tensors} tensors)" for c in others[:8])
        more = f" and {len(others) - 8} more" if len(others) > 8 else ""
        footer.append(f"other containers (--container): {listed}{more}")
    for o in optimizers:
        footer.append(f"optimizer state at {o.path}: {o.entries} per-parameter entr{'y' if o.entries == 1 else 'ies'}, "
                      f"{o.tensors} tensors, {human_bytes(o.nbytes)}")
    if ck.other:
        footer.append("also in the file: " + ", ".join(f"{e.key} ({e.type})" for e in ck.other[:20])
                      + (f" and {len(ck.other) - 20} more" if len(ck.other) > 20 else ""))
    for group in ck.aliases():
        footer.append(f"tied: {' = '.join(group)} (one tensor under {len(group)} names; the totals count each name)")
    if ck.placeholders:
        footer.append("classes stood in for (never imported): " + ", ".join(ck.placeholders))
    print_table(table, *(text(line) for line in footer))
