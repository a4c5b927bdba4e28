"""Terminal tables fit the terminal without breaking a key mid-name; piped tables keep whole keys.

The tables are rendered by the real command (``ckptlab.cli.main``, in this process: rich
reads its environment each time a console is made), as a terminal of 80 or 120 columns
(rich reads ``COLUMNS``; ``TTY_COMPATIBLE=1`` makes it a terminal, ``NO_COLOR=1`` keeps
colours out), and compared with the piped rendering of the same command, whose cells are
the whole keys.
"""
from __future__ import annotations

import contextlib
import functools
import io
import re
from pathlib import Path

import pytest
import torch

from ckptlab.cli import main
from ckptlab.cli.output import elide_middle, wrap_key
from tests.paths import ROOT

ANSI = re.compile(r"\x1b\[[0-9;]*m")
ELLIPSIS = "\u2026"


@pytest.fixture(scope="module")
def bert_pair(tmp_path_factory) -> tuple[Path, Path]:
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    model = BertModel(BertConfig(hidden_size=8, num_hidden_layers=2, num_attention_heads=2, intermediate_size=16,
                                 vocab_size=50, max_position_embeddings=16))
    folder = tmp_path_factory.mktemp("a_rather_long_folder_name_for_the_checkpoints_of_this_experiment")
    target = folder / "bert_for_sequence_classification_finetuned_on_the_long_task.pt"
    source = folder / "bert_ddp.pt"
    torch.save({"model": model.state_dict(), "epoch": 1}, target)
    torch.save({f"module.{k}": v for k, v in model.state_dict().items()}, source)
    return source, target


@functools.lru_cache(maxsize=None)
def _render(args: tuple[str, ...], columns: int | None) -> tuple[str, ...]:
    return tuple(render_now(list(args), columns))


def render(args: list[str], columns: int | None) -> list[str]:
    """The command's stdout lines (each rendering made once per test run)."""
    return list(_render(tuple(args), columns))


def render_now(args: list[str], columns: int | None) -> list[str]:
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as env:
        for name in ("COLUMNS", "FORCE_COLOR", "TTY_COMPATIBLE"):
            env.delenv(name, raising=False)
        env.setenv("NO_COLOR", "1")
        if columns:
            env.setenv("TTY_COMPATIBLE", "1")
            env.setenv("COLUMNS", str(columns))
        with contextlib.redirect_stdout(out):
            code = main(args)
    assert code == 0
    return ANSI.sub("", out.getvalue()).splitlines()


def cells(lines: list[str], column: int) -> list[str]:
    """The text of one column on every table body line (``│ a │ b │``)."""
    return [line.split("│")[column + 1].strip() for line in lines if line.startswith("│")]


def whole_rows(lines: list[str], column: int) -> list[list[str]]:
    """A key cell's lines grouped per table row: a line continues the row above only when
    that one broke after a dot."""
    rows: list[list[str]] = []
    for line in lines:
        if not line.startswith("│"):
            rows.append([])
            continue
        text = line.split("│")[column + 1].strip()
        if not text:
            continue
        if rows and rows[-1] and rows[-1][-1].endswith("."):
            rows[-1].append(text)
        else:
            rows.append([text])
    return [r for r in rows if r]


def is_fragment(piece: str, keys: set[str]) -> bool:
    """``piece`` is a run of whole dotted parts of some key, or is elided in its middle only."""
    if ELLIPSIS not in piece:
        return any(_at_boundaries(k, piece) for k in keys)
    head, *_, tail = piece.split(ELLIPSIS)
    return any(_starts_at_boundary(k, head) and _ends_at_boundary(k, tail) for k in keys)


def _at_boundaries(key: str, piece: str) -> bool:
    return any((i == 0 or key[i - 1] == ".") and (i + len(piece) == len(key) or piece.endswith("."))
               for i in _finds(key, piece))


def _starts_at_boundary(key: str, head: str) -> bool:
    return head == "" or any(i == 0 or key[i - 1] == "." for i in _finds(key, head))


def _ends_at_boundary(key: str, tail: str) -> bool:
    return tail == "" or any(i + len(tail) == len(key) or tail.endswith(".") for i in _finds(key, tail))


def _finds(key: str, piece: str):
    i = key.find(piece)
    while i >= 0:
        yield i
        i = key.find(piece, i + 1)


@pytest.mark.parametrize("columns", [80, 120])
@pytest.mark.parametrize("command, key_columns", [("align", (0, 2)), ("inspect", (0,))])
def test_a_terminal_table_fits_and_breaks_keys_only_at_dots(bert_pair, columns, command, key_columns):
    source, target = bert_pair
    args = ["align", str(source), str(target), "--auto", "none"] if command == "align" else \
        ["inspect", str(target), "--no-fold"]
    piped, shown = render(args, None), render(args, columns)
    for line in shown:
        assert len(line) <= columns, line
    assert shown[0].endswith(")" if command == "inspect" else ".pt") and ELLIPSIS in shown[0]  # title elided
    for column in key_columns:
        keys = {c for c in cells(piped, column) if c and c != "="}
        assert len(keys) > 10
        rows = whole_rows(shown, column)
        assert all(len(r) <= 2 for r in rows), [r for r in rows if len(r) > 2]
        for row in rows:
            for piece in row:
                assert is_fragment(piece, keys), (piece, row)
            if ELLIPSIS not in "".join(row):  # nothing elided: the lines make up a whole key
                assert "".join(row) in keys | {"="} or len(row) == 1, row
    if columns == 120:  # wide enough that most keys show whole
        whole = [r for column in key_columns for r in whole_rows(shown, column) if ELLIPSIS not in "".join(r)]
        assert len(whole) > len(whole_rows(shown, key_columns[0])) // 2


def test_piped_output_keeps_whole_keys_one_row_per_line(bert_pair):
    source, target = bert_pair
    piped = render(["inspect", str(target), "--no-fold"], None)
    keys = cells(piped, 0)
    import ckptlab

    assert keys == ckptlab.open(target).keys()
    assert ELLIPSIS not in "".join(piped) and piped[0].startswith(str(target))


def test_wrap_key_breaks_after_dots_and_elides_only_the_middle():
    assert wrap_key("encoder.layernorm.weight", 30) == "encoder.layernorm.weight"
    assert wrap_key("encoder.layernorm.weight", 18) == "encoder.layernorm.\nweight"
    wrapped = wrap_key("embeddings.word_embeddings.weight", 20).split("\n")
    assert wrapped[0] == "embeddings." and len(wrapped[1]) == 20 and wrapped[1].endswith("weight")
    assert ELLIPSIS in wrapped[1]
    assert elide_middle("abcdefghij", 5) == "ab" + ELLIPSIS + "ij"
