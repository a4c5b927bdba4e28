"""Shared output helpers for the subcommands: JSON on stdout, warnings on stderr.

Key names come from untrusted files, so nothing printed here passes a control character to
the terminal: text is shown with every non-printable character escaped (``\\x1b[2J``,
``\\r``: ``errors.printable``), and JSON escapes them as ``\\u001b`` (the same string once
decoded).
"""
from __future__ import annotations

import json
import sys
from typing import Any

from ckptlab.errors import printable


def print_json(obj: Any) -> None:
    """Print exactly one JSON object on stdout. ``json`` escapes C0 controls only; every other
    non-printable character (C1 controls such as the one-byte CSI, U+2028, a right-to-left
    override, a lone surrogate from an undecodable name) is written as its ``\\u`` escape too."""
    text = json.dumps(obj, ensure_ascii=False)
    if not text.isprintable():
        text = "".join(c if c.isprintable() else _json_escape(c) for c in text)
    sys.stdout.write(text + "\n")


def _json_escape(c: str) -> str:
    n = ord(c)
    if n > 0xFFFF:  # outside the BMP: a surrogate pair, as JSON spells it
        n -= 0x10000
        return f"\\u{0xD800 + (n >> 10):04x}\\u{0xDC00 + (n & 0x3FF):04x}"
    return f"\\u{n:04x}"


def say(message: str, file: Any = None) -> None:
    """Print one line of plain output (names from files escaped)."""
    print(printable(message), file=file or sys.stdout)


def warn(message: str) -> None:
    print(f"ckptlab: warning: {printable(message)}", file=sys.stderr)


def error(message: str, path: str | None = None, as_json: bool = False, prog: str = "ckptlab") -> None:
    """An error: one line on stderr, and with ``--json`` also ``{"error", "file"}`` on stdout,
    so a script that parses stdout gets an object saying why (not an empty string)."""
    print(f"{prog}: error: {printable(message)}", file=sys.stderr)
    if as_json:
        print_json({"error": message, "file": path})


def text(value: Any, style: str = "") -> Any:
    """A rich ``Text`` of ``value`` with non-printable characters escaped (rich itself drops a
    carriage return or a backspace silently, and passes ESC through)."""
    from rich.text import Text

    return Text(printable(str(value)), style=style)


def safe(cell: Any) -> Any:
    """A table cell, title or footer line made terminal-safe: a ``str`` becomes plain ``Text``
    (never rich markup, so ``[red]`` in a key stays text), a ``Text`` keeps its styles with
    its control characters escaped."""
    from rich.text import Text

    if isinstance(cell, str):
        return Text(printable(cell))
    if not isinstance(cell, Text) or cell.plain.isprintable():
        return cell
    plain = cell.plain
    pieces = [c if c.isprintable() else printable(c) for c in plain]
    at = [0]
    for piece in pieces:
        at.append(at[-1] + len(piece))
    out = Text("".join(pieces), style=cell.style, justify=cell.justify, overflow=cell.overflow,
               no_wrap=cell.no_wrap, end=cell.end)
    for span in cell.spans:
        out.stylize(span.style, at[min(span.start, len(plain))], at[min(span.end, len(plain))])
    return out


def human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


KEY_HEADERS = frozenset({"key", "target", "source", "a key", "b key"})  # columns holding dotted keys
ELLIPSIS = "\u2026"
MIN_KEY_WIDTH = 12
MAX_KEY_LINES = 2
MIN_PROSE_WIDTH = 14


def print_table(table: Any, *footer: Any, console: Any = None) -> None:
    """Print a rich table (and footer lines) on stdout without breaking keys mid-name.

    Piped or redirected output has no width to respect, so it gets the table's natural
    width: one line per row, whole keys, fit for grep. On a terminal narrower than the table,
    key columns (``KEY_HEADERS``) wrap at ``.`` boundaries (at most two lines, then the middle
    elided: ``encoder.…layernorm.weight``), never mid-name; the title is its own line, its
    middle elided when it cannot fit.
    """
    console = console or _console()
    title, table.title = table.title, None
    title = printable(str(title)) if title else title
    for column in table.columns:
        column.header = safe(column.header)
        column._cells = [safe(cell) for cell in column._cells]
    footer = tuple(safe(line) for line in footer)
    if not console.is_terminal:
        console.width = 100_000  # measure against no limit, then size the console to fit
        console.width = max(console.measure(table).maximum, 80)
    else:
        fit_keys(table, console)
    if title:
        text = str(title)
        console.print(text if not console.is_terminal else elide_middle(text, console.width), soft_wrap=True,
                      markup=False)
    console.print(table)
    for line in footer:  # piped: one line each; a terminal wraps them at spaces
        console.print(line, soft_wrap=not console.is_terminal)


def fit_keys(table: Any, console: Any) -> None:
    """Share the console's width out: fixed columns (shapes, dtypes, statuses) keep theirs, key
    columns get what they need of the rest (up to 70% when a prose column such as a reason
    shares the row, which then wraps at spaces), and their keys wrap at dots to fit."""
    width = {id(col): max(_cell_width(cell) for cell in [col.header, *col._cells]) for col in table.columns}
    overhead = 3 * len(table.columns) + 1  # a space either side of each cell, and the borders
    if sum(width.values()) + overhead <= console.width:
        return
    keys = [c for c in table.columns if str(c.header).strip().lower() in KEY_HEADERS]
    prose = [c for c in table.columns if c not in keys and not c.no_wrap]
    fixed = sum(width[id(c)] for c in table.columns if c not in keys and c not in prose)
    room = console.width - overhead - fixed
    need = sum(width[id(c)] for c in keys)
    if not keys or need == 0:
        return
    prose_need = sum(min(MIN_PROSE_WIDTH, width[id(c)]) for c in prose)
    budget_total = min(need, room - prose_need)
    if prose and budget_total > 0.7 * room:  # prose (reasons) wraps at words: leave it a fair share
        budget_total = max(int(0.7 * room), min(need, room - sum(width[id(c)] for c in prose)))
    budget_total = max(budget_total, MIN_KEY_WIDTH * len(keys))
    budgets = {id(c): min(width[id(c)], max(MIN_KEY_WIDTH, budget_total * width[id(c)] // need)) for c in keys}
    left = console.width - overhead - fixed - sum(budgets.values())
    for column in prose:  # prose wraps at spaces: a few words wide, whatever the keys left
        column.min_width = max(4, min(MIN_PROSE_WIDTH, width[id(column)], left // len(prose)))
    for column in keys:
        budget = budgets[id(column)]
        if budget < width[id(column)]:
            column._cells = [_fit_cell(cell, budget) for cell in column._cells]
        column.no_wrap, column.overflow, column.max_width = True, "ellipsis", budget


def _cell_width(cell: Any) -> int:
    plain = cell.plain if hasattr(cell, "plain") else str(cell)
    return max((len(line) for line in plain.split("\n")), default=0)


def _fit_cell(cell: Any, width: int) -> Any:
    from rich.text import Text

    plain = cell.plain if isinstance(cell, Text) else str(cell)
    style = cell.style if isinstance(cell, Text) else ""
    return Text(wrap_key(plain, width), style=style)


def wrap_key(key: str, width: int) -> str:
    """``key`` in at most two lines of ``width``, broken only after a ``.``; a line that is
    still too long has its middle elided (``word_embe…ngs.weight``), never a silent cut."""
    if len(key) <= width:
        return key
    parts = [p + "." for p in key.split(".")]
    parts[-1] = parts[-1][:-1]
    lines = [""]
    for part in parts:  # greedy: as many parts per line as fit
        if lines[-1] and len(lines[-1]) + len(part) > width:
            lines.append("")
        lines[-1] += part
    if len(lines) <= MAX_KEY_LINES and all(len(line) <= width for line in lines):
        return "\n".join(lines)
    if len(parts) == 1:
        return elide_middle(key, width)
    cut = min(range(1, len(parts)), key=lambda i: max(len("".join(parts[:i])), len("".join(parts[i:]))))
    return elide_middle("".join(parts[:cut]), width) + "\n" + elide_middle("".join(parts[cut:]), width)


def elide_middle(text: str, width: int) -> str:
    """``text`` with its middle replaced by an ellipsis so it fits in ``width`` characters."""
    if len(text) <= width:
        return text
    if width <= 1:
        return ELLIPSIS[:width]
    head = (width - 1) // 2
    return text[:head] + ELLIPSIS + text[len(text) - (width - 1 - head):]


def _console():
    """A rich Console whose closed pipe is a ``BrokenPipeError`` for ``main`` to end quietly
    (rich's own handling exits with status 1)."""
    from rich.console import Console

    class QuietPipeConsole(Console):
        def on_broken_pipe(self) -> None:
            raise BrokenPipeError

    return QuietPipeConsole(highlight=False, soft_wrap=False)
