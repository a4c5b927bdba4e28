"""Template (ckptlab.models.codegen): the remap script's conversions (key patterns through
tensor ops), as ``ckptlab.recipe.conversion`` runs them. codegen copies every block below
the imports when the recipe has conversions.
"""
import re

import torch

from ckptlab.models.templates.script import CONVERT


PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def key_regex(pattern):
    """A key pattern as a regex: each {name} is one or more characters, no dot."""
    parts, seen, pos = [], set(), 0
    for m in PLACEHOLDER.finditer(pattern):
        parts.append(re.escape(pattern[pos:m.start()]))
        name = m.group(1)
        parts.append(f"(?P={name})" if name in seen else f"(?P<{name}>[^.]+)")
        seen.add(name)
        pos = m.end()
    parts.append(re.escape(pattern[pos:]))
    return re.compile("".join(parts))


def fill(pattern, values):
    return PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), pattern)


def index_order(value):
    return (0, int(value), value) if value.isascii() and value.isdigit() else (1, 0, value)


def check_unbind(number, pattern, name, made, target):
    """Stop when the target numbers this family otherwise: a stacked tensor does not keep its
    indices, and an unbind names its slices 0..n-1 (experts 0, 2, 5 would come back as 0, 1, 2)."""
    regex = key_regex(pattern)
    shared = {n: v for n, v in regex.fullmatch(made[0]).groupdict().items() if n != name}
    made_values = [regex.fullmatch(t).group(name) for t in made]
    have = []
    for key in target:
        m = regex.fullmatch(key)
        if m and all(m.group(n) == v for n, v in shared.items()):
            have.append(m.group(name))
    if set(made_values) - set(have) and set(have) - set(made_values):
        family = fill(pattern, {**shared, name: "{" + name + "}"})
        have = ", ".join(sorted(have, key=index_order))
        raise SystemExit(f"convert {number}: unbind names its slices {family!r} for {{{name}}} = "
                         f"0..{len(made) - 1}, the target has {{{name}}} = {have} "
                         "(a stacked tensor does not keep its indices)")


def rope(t, heads, forward):
    """Meta's interleaved rotary pairs <-> HF's half-split halves, per head, along dim 0."""
    n, rest = t.shape[0], tuple(t.shape[1:])
    half = n // heads // 2
    grouped = (heads, half, 2, *rest) if forward else (heads, 2, half, *rest)
    return t.reshape(grouped).transpose(1, 2).reshape(n, *rest)


def run_ops(ops, tensors, parts):
    """Apply one conversion's ops in order to its group of tensors."""
    for name, arg in ops:
        if name == "transpose":
            tensors = [t.t() if arg is None else t.transpose(*arg) for t in tensors]
        elif name == "permute":
            tensors = [t.permute(*arg) for t in tensors]
        elif name == "reshape":
            tensors = [t.reshape(arg) for t in tensors]
        elif name == "squeeze":
            tensors = [t.squeeze(arg) for t in tensors]
        elif name == "unsqueeze":
            tensors = [t.unsqueeze(arg) for t in tensors]
        elif name == "narrow":
            tensors = [t.narrow(arg["dim"], arg["start"], arg["length"]) for t in tensors]
        elif name in ("rope_permute", "rope_unpermute"):
            tensors = [rope(t, arg["heads"], name == "rope_permute") for t in tensors]
        elif name == "chunk":
            dim, n = (arg, parts) if isinstance(arg, int) else (arg["dim"], arg["parts"])
            tensors = list(tensors[0].chunk(n, dim))
        elif name == "split":  # sizes, or a ratio (parts in proportion)
            sizes = arg.get("sizes") or [tensors[0].shape[arg["dim"]] // sum(arg["ratio"]) * r for r in arg["ratio"]]
            tensors = list(tensors[0].split(list(sizes), arg["dim"]))
        elif name == "unbind":
            tensors = list(tensors[0].unbind(arg))
        elif name == "cat":
            tensors = [torch.cat(tensors, arg)]
        elif name == "stack":
            tensors = [torch.stack(tensors, arg)]
        else:
            raise SystemExit(f"unknown op {name!r}")
    # own, C-ordered memory (one element of a strided view passes for contiguous but is not)
    return [t.contiguous() if t.numel() != 1 else t.clone(memory_format=torch.contiguous_format) for t in tensors]


def convert(source, target=None):
    """{target key: value} computed by CONVERT, and the source keys it used.

    Entries in order; a key taken by an earlier entry is not offered to a later one. A
    placeholder of `from` absent from `to` stacks every match in numeric order; one of
    `to` absent from `from` names the outputs of an unbind, one per index (checked against
    the target's keys when there is a target).
    """
    claimed, outputs = set(), {}
    for number, (froms, tos, ops) in enumerate(CONVERT, start=1):
        from_names = list(dict.fromkeys(PLACEHOLDER.findall(froms[0])))
        to_names = list(dict.fromkeys(PLACEHOLDER.findall(tos[0])))
        shared = [n for n in from_names if n in to_names]
        stacked = [n for n in from_names if n not in to_names]
        unbound = [n for n in to_names if n not in from_names]
        regexes = [key_regex(p) for p in froms]
        found = {}
        for key in source:
            if key in claimed:
                continue
            for p, regex in enumerate(regexes):
                m = regex.fullmatch(key)
                if m:
                    values = m.groupdict()
                    order = index_order(values[stacked[0]]) if stacked else ()
                    found.setdefault(tuple(values[n] for n in shared), {}).setdefault(p, []).append((order, key))
                    break
        groups = [(k, v) for k, v in found.items() if len(v) == len(froms)]
        if not groups:
            raise SystemExit(f"convert {number}: {froms} matches no source key")
        for group_key, by_pattern in groups:
            keys = [k for p in range(len(froms)) for _, k in sorted(by_pattern[p])]
            values = dict(zip(shared, group_key))
            results = run_ops(ops, [source[k] for k in keys], None if unbound else len(tos))
            if unbound:  # several 'to' patterns: an equal share of the outputs each, in order
                share = len(results) // len(tos)
                targets = [fill(t, {**values, unbound[0]: str(i)}) for t in tos for i in range(share)]
                if target is not None and targets:
                    check_unbind(number, tos[0], unbound[0], targets[:share], target)
            else:
                targets = [fill(t, values) for t in tos]
            for tkey, value in zip(targets, results):
                outputs.setdefault(tkey, []).append(value)
            claimed.update(keys)
    return outputs, claimed
