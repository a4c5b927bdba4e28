"""A standalone PyTorch script that does what a recipe does, for users who cannot add ckptlab.

``snippet(alignment)`` writes Python that imports only torch (and safetensors when a file
is ``.safetensors``): it loads the source with ``weights_only=True``, runs the recipe's
conversions (key patterns through tensor ops, inlined only when the recipe has some),
renames the other keys by the rules in order, applies the explicit map and the shape
adapters it needs (each inlined, a few lines), casts as the recipe's ``dtype`` says, fills
the remaining keys from the target, and saves.
It gives the same tensors as ``ckptlab.remap``, bit for bit (tests run it on every story).
A ``param_groups`` function at the end carries the fine-tune plan.

The script's code lives in ``ckptlab/models/templates/`` as real modules (imported and linted
by the tests); this module chooses their blocks and fills them (see that package's docstring).
Generated text is data: every literal goes through ``repr``, never into code unquoted.
"""
from __future__ import annotations

import ast
import functools
import string
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ckptlab.models.finetune import pretrained_keys
from ckptlab.recipe.adapt_spec import AdaptSpec
from ckptlab.recipe.model import Recipe
from ckptlab.vocab import __version__

__all__ = ["TEMPLATES", "snippet"]

TEMPLATES = Path(__file__).with_name("templates")
# an adapter (or a pad fill) -> the block of templates/adapters.py that does it
_ADAPTER_BLOCKS = {"truncate": "truncate", "zeros": "pad_zeros", "mean": "pad_mean", "init": "pad_init",
                   "repeat": "pad_repeat", "sum": "sum_groups", "resize": "resize"}
_FILLS = ("zeros", "mean", "init", "repeat")


def snippet(
    alignment_or_recipe: Any,
    lr: float | None = None,
    new_lr_mult: float | None = None,
    freeze_loaded: bool = False,
    freeze: str | None = None,
    *,
    out: str = "merged.pt",
    script: str = "remap_checkpoint.py",
    pretrained: Iterable[str] | None = None,
    source_path: str | None = None,
    target_path: str | None = None,
) -> str:
    """The script's text. Given an ``Alignment``, paths, container and target come from it;
    given a ``Recipe`` (or its dict/path), SOURCE/TARGET are left for the command line.
    ``pretrained``: the keys the param groups treat as pretrained (default: every fed
    target key but those with new rows, see ``finetune.pretrained_keys``; the app also
    leaves out what the user chose to train at lr x mult). ``source_path``/``target_path``:
    the defaults the script's ``--source``/``--target`` get instead of the files' paths (the
    app gives the names its visitor knows, never its own copy of an upload)."""
    alignment = alignment_or_recipe if hasattr(alignment_or_recipe, "effective_recipe") else None
    recipe = alignment.effective_recipe if alignment else Recipe.coerce(alignment_or_recipe)
    target = alignment.target if alignment else None
    adapt = _resolved_adapt(recipe, alignment) if alignment else {
        key: {"op": spec.op, "dim": spec.dim, "fill": spec.fill, "shape": None} for key, spec in recipe.adapt.items()}
    model_target = _model_target_code(target) if target is not None else None
    frame = _blocks("script")
    values = _head_values(recipe, alignment, adapt, model_target is not None, out, script)
    if source_path is not None:
        values["SOURCE"] = repr(_as_posix(source_path))
    if target_path is not None and model_target is None:
        values["TARGET"] = repr(_as_posix(target_path))
    head = _fill(frame["__doc__"], values)
    body = [frame["load_state_dict"], model_target or frame["load_target"], frame["rename"], *_adapter_code(adapt),
            *(_blocks_after_head("convert") if recipe.convert else []), frame["out_dtype"], frame["remap"],
            frame["save"], _fill(frame["main"], {"LOAD_TARGET": "load_target()" if model_target else "None"})]
    if pretrained is None:             # grown / re-initialised tensors train at lr x mult, as in the app's plan
        pretrained = pretrained_keys(alignment) if alignment else []
    plan = _plan_code(list(pretrained), 1e-3 if lr is None else lr, 10.0 if new_lr_mult is None else new_lr_mult,
                      freeze_loaded, freeze)
    return "\n\n\n".join([head, *body, *plan, frame["__main__"]]) + "\n"


def _head_values(recipe: Recipe, alignment: Any | None, adapt: Mapping[str, Any], target_built: bool,
                 out: str, script: str) -> dict[str, str]:
    """What the script's head says: its docstring's fields and its constants (the recipe)."""
    source = alignment.source if alignment else None
    target = alignment.target if alignment else None
    target_path = None if target_built else getattr(target, "path", None)
    return {
        "version": __version__, "script": script,
        "SOURCE": repr(_as_posix(getattr(source, "path", None))),
        "SOURCE_CONTAINER": repr((source.container if source is not None else recipe.container) or ""),
        "TARGET": repr(_as_posix(target_path)),
        "TARGET_CONTAINER": repr(getattr(target, "container", "") or "" if target_path else ""),
        "OUT": repr(out),
        "RULES": _py_list([(r.kind, r.pattern, r.replacement) for r in recipe.rules]),
        "MAP": _py_dict(recipe.map), "ADAPT": _py_dict(adapt), **_convert_values(recipe)}


def _convert_values(recipe: Recipe) -> dict[str, str]:
    """``CONVERT`` (from patterns, to patterns, [(op, arg)]) and ``DTYPE``."""
    entries = []
    for conv in recipe.convert:
        ops = [("transpose", None) if op.to_value() == "transpose" else next(iter(op.to_value().items()))
               for op in conv.ops]
        entries.append((list(conv.sources), list(conv.targets), ops))
    dtype = None if recipe.dtype is None else {"to": recipe.dtype.to, "keep": recipe.dtype.keep}
    return {"CONVERT": _py_list(entries), "DTYPE": repr(dtype)}


def _plan_code(pretrained: list[str], lr: float, new_lr_mult: float, freeze_loaded: bool,
               freeze: str | None) -> list[str]:
    """The fine-tune plan: its constants, then ``param_groups``."""
    blocks = _blocks("finetune")
    constants = _fill(blocks["PRETRAINED"], {
        "PRETRAINED": _py_set(pretrained), "LR": repr(lr), "NEW_LR_MULT": repr(new_lr_mult),
        "FREEZE_LOADED": repr(freeze_loaded), "FREEZE": repr(freeze)})
    return [constants, blocks["param_groups"]]


def _model_target_code(target: Any) -> str | None:
    """``load_target()`` for a target built from a model definition (None for other targets)."""
    spec = getattr(target, "spec", None)
    if spec is None:
        return None
    head, _, attr = spec.rpartition(":")
    root = attr.split(".")[0]
    if head.endswith(".py"):
        lines = ["import importlib.util",
                 f"loader = importlib.util.spec_from_file_location('user_model', {head!r})",
                 "module = importlib.util.module_from_spec(loader)",
                 "loader.loader.exec_module(module)  # runs that file: you trust it",
                 f"{root} = module.{root}"]
    else:
        lines = [f"from {head} import {root}  # your model code must be importable (PYTHONPATH)"]
    return _fill(_blocks("model_target")["load_target"], {
        "IMPORT_MODEL": "\n    ".join(lines), "Model": attr, "SEED": repr(target.seed), "KWARGS": repr(target.kwargs)})


def _adapter_code(adapt: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Only the adapter functions the recipe uses, then ``PAD`` and the dispatch."""
    if not adapt:
        return []
    needed: set[str] = set()
    for spec in adapt.values():
        op = spec["op"]
        if op in ("truncate", "sum", "resize"):
            needed.add(op)
        if op in ("pad", "resize"):
            needed.add(spec["fill"])
            if spec["fill"] == "mean":
                needed.add("zeros")
    blocks = _blocks("adapters")
    names = {_ADAPTER_BLOCKS[n] for n in needed if n in _ADAPTER_BLOCKS}
    code = [text for name, text in blocks.items() if name in names]      # in the template's order
    fills = [f for f in _FILLS if f in needed]
    if fills:
        code.append(_fill(blocks["PAD"], {"PAD": "{" + ", ".join(f"{f!r}: pad_{f}" for f in fills) + "}"}))
    code.append(_dispatch(blocks["adapt"], adapt))
    return code


def _dispatch(block: str, adapt: Mapping[str, Mapping[str, Any]]) -> str:
    """``adapt()`` without the branches no ADAPT entry takes. A branch's test in the template is
    ``op == "name"``; it is read (never run) and matched against each entry's op. A test of
    another form keeps its branch."""
    lines = block.splitlines(keepends=True)
    drop: set[int] = set()
    ops = {s["op"] for s in adapt.values()}
    for stmt in ast.parse(block).body[0].body:
        if isinstance(stmt, ast.If):
            tested = _tested_op(stmt.test)
            if tested is not None and tested not in ops:
                drop.update(range(stmt.lineno - 1, stmt.end_lineno))
    return "".join(line for i, line in enumerate(lines) if i not in drop)


def _tested_op(test: ast.expr) -> str | None:
    """``"pad"`` for the test ``op == "pad"``; None for any other test."""
    if (isinstance(test, ast.Compare) and isinstance(test.left, ast.Name) and test.left.id == "op"
            and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq)
            and isinstance(test.comparators[0], ast.Constant) and isinstance(test.comparators[0].value, str)):
        return test.comparators[0].value
    return None


# -- reading and filling the templates ------------------------------------------------
@functools.cache
def _blocks(template: str) -> dict[str, str]:
    """A template's blocks (what PEP 8 parts by two blank lines), by the name each defines first:
    ``__doc__`` for the one that opens with the docstring, ``__main__`` for the guard. Blocks
    of comments only have no name: they are never copied."""
    text = (TEMPLATES / f"{template}.py").read_text(encoding="utf-8")
    blocks = {}
    for block in text.split("\n\n\n"):
        block = block.strip("\n")
        name = _block_name(ast.parse(block).body)
        if name is not None:
            blocks[name] = block
    return blocks


def _block_name(body: list[ast.stmt]) -> str | None:
    first = body[0] if body else None
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        return "__doc__"
    if isinstance(first, (ast.FunctionDef, ast.ClassDef)):
        return first.name
    if isinstance(first, ast.Assign) and isinstance(first.targets[0], ast.Name):
        return first.targets[0].id
    if isinstance(first, ast.If):
        return "__main__"
    return None


def _blocks_after_head(template: str) -> list[str]:
    return [text for name, text in _blocks(template).items() if name != "__doc__"]


def _fill(block: str, values: Mapping[str, str]) -> str:
    """``block`` with each name of ``values`` filled in: a module-level constant gets that value,
    a name read in code becomes that code, a ``$name`` field of the docstring that text. Every
    name must be found: a stand-in renamed in a template fails here, not in a user's script."""
    tree = ast.parse(block)
    data = block.encode()
    starts = [0]
    for line in data.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))

    def span(node: ast.AST) -> tuple[int, int]:            # ast offsets are in UTF-8 bytes
        return starts[node.lineno - 1] + node.col_offset, starts[node.end_lineno - 1] + node.end_col_offset

    edits, used = [], set()
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name) and node.targets[0].id in values:
            edits.append((*span(node.value), values[node.targets[0].id]))
            used.add(node.targets[0].id)
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id in values:
            edits.append((*span(node), values[node.id]))
            used.add(node.id)
    if ast.get_docstring(tree, clean=False) is not None:
        start, end = span(tree.body[0])
        field = string.Template(data[start:end].decode())
        edits.append((start, end, field.substitute(values)))
        used.update(field.get_identifiers())
    if set(values) - used:
        raise KeyError(f"no {sorted(set(values) - used)} to fill in template block {block.splitlines()[0]!r}")
    after = len(data)
    for start, end, text in sorted(edits, reverse=True):     # from the end: earlier offsets stay valid
        if end > after:
            raise ValueError(f"overlapping fills in template block {block.splitlines()[0]!r}")
        data, after = data[:start] + text.encode() + data[end:], start
    return data.decode()


# -- the values' text -----------------------------------------------------------------
def _py_list(items: list, indent: str = "    ") -> str:
    if not items:
        return "[]"
    return "[\n" + "".join(f"{indent}{item!r},\n" for item in items) + "]"


def _py_dict(items: Mapping[str, Any], indent: str = "    ") -> str:
    if not items:
        return "{}"
    return "{\n" + "".join(f"{indent}{k!r}: {v!r},\n" for k, v in items.items()) + "}"


def _resolved_adapt(recipe: Recipe, alignment: Any | None) -> dict[str, dict[str, Any]]:
    """ADAPT entries with the target shape and the dim resolved where ckptlab would pick it."""
    out = {}
    for key, spec in recipe.adapt.items():
        row = _row(alignment, key)
        if row is None or row.status != "adapted":
            continue  # ckptlab ignores an adapter on a key that needs none (or is not fed)
        shape, src_shape = tuple(row.target_shape), tuple(row.source_shape)
        entry: dict[str, Any] = {"op": spec.op, "dim": _resolve_dim(spec, src_shape, shape), "shape": list(shape)}
        if spec.op in ("pad", "resize"):
            entry["fill"] = spec.fill
        out[key] = entry
    return out


def _row(alignment: Any | None, key: str):
    if alignment is None:
        return None
    return next((r for r in alignment.rows if r.target == key), None)


def _resolve_dim(spec: AdaptSpec, source: tuple[int, ...], target: tuple[int, ...]) -> int | None:
    """The dim ckptlab.recipe.adapters works on: the spec's; sum: 1 (0 for vectors); else the one that differs."""
    rank = len(source)
    if spec.op == "reinit" or (spec.op == "resize" and spec.dim is None):
        return None
    if spec.dim is not None:
        return spec.dim % rank
    if spec.op == "sum":
        return 1 if rank > 1 else 0
    return next(d for d, (s, t) in enumerate(zip(source, target)) if s != t)


def _py_set(items: list[str]) -> str:
    return "set()" if not items else "{\n" + "".join(f"    {k!r},\n" for k in items) + "}"


def _as_posix(path: str | None) -> str | None:
    return None if path is None else Path(path).as_posix()
