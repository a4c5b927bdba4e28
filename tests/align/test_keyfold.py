"""keyfold: runs of layer indices fold into one pattern that stands for exactly its keys."""
from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from ckptlab.align.keyfold import fold_keys, fold_pattern, format_indices
from ckptlab.align.matcher import align
from ckptlab.cli.align_cmd import folded_rows


def expand(pattern: str) -> set[str]:
    """Every key a pattern stands for (the inverse of folding, written independently)."""
    match = re.search(r"\{([^}]*)\}", pattern)
    if not match:
        return {pattern}
    values = []
    for part in match.group(1).split(","):
        lo, _, hi = part.partition("..")
        values.extend(range(int(lo), int(hi or lo) + 1))
    return {pattern[: match.start()] + str(v) + pattern[match.end():] for v in values}


def test_layer_runs_fold_over_the_layer_index():
    keys = [f"layers.{i}.norm.weight" for i in range(12)] + \
        [f"layers.{i}.mlp.{j}.weight" for i in range(3) for j in (0, 2)] + ["fc.weight"]
    folded = {f.pattern: f.keys for f in fold_keys(keys)}
    assert list(folded) == ["layers.{0..11}.norm.weight", "layers.{0..2}.mlp.0.weight",
                            "layers.{0..2}.mlp.2.weight", "fc.weight"]
    assert folded["layers.{0..11}.norm.weight"] == tuple(keys[:12])


def test_index_formatting():
    assert format_indices([3, 0, 1, 2]) == "{0..3}"
    assert format_indices([0, 1]) == "{0,1}"
    assert format_indices([0, 1, 2, 3, 7, 9, 10, 11]) == "{0..3,7,9..11}"
    assert fold_pattern(["a.0.w", "a.1.w"]) == "a.{0,1}.w"
    assert fold_pattern(["a.w", "b.w"]) == "2 keys"


@settings(max_examples=150, deadline=None)
@given(st.lists(st.from_regex(r"(blk\.\d{1,2}\.)?(sub\.\d\.)?[a-c]\.(w|b)", fullmatch=True), max_size=40, unique=True))
def test_folding_loses_and_invents_nothing(keys):
    folded = fold_keys(keys)
    covered = [k for f in folded for k in f.keys]
    assert sorted(covered) == sorted(keys)
    for f in folded:
        assert expand(f.pattern) == set(f.keys)


def test_cli_rows_fold_alike_layers():
    source = {f"module.layers.{i}.{n}": __import__("torch").zeros(2) for i in range(6) for n in ("w", "b")}
    target = {k.removeprefix("module."): v for k, v in source.items()}
    lines = folded_rows(align(source, target).rows)
    assert [(t, s, n) for t, s, _, n in lines] == [
        ("layers.{0..5}.w", "module.layers.{0..5}.w", 6), ("layers.{0..5}.b", "module.layers.{0..5}.b", 6)]
