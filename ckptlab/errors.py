"""Every failure ckptlab reports on purpose is a ``CheckpointError``.

The core never prints: it raises one of these with a one-line message that names the
file (or key, or rule) and what is wrong, and the CLI and the web app decide how to show
it. Anything else escaping the core is a bug.
"""
from __future__ import annotations

import reprlib
from pathlib import Path

__all__ = ["MAX_MESSAGE_CHARS", "MAX_PATH_CHARS", "MAX_NAME_CHARS", "printable", "shorten", "quote",
    "CheckpointError", "UnreadableFileError", "LimitError", "UnsafePickleError", "ContainerError",
    "UnsupportedFormatError", "RecipeError", "AdaptError", "MergeError", "ModelSpecError",
    "PathNotAllowedError"]

# Messages are shown in a terminal and a web page: one printable line, never longer than this.
MAX_MESSAGE_CHARS = 300
MAX_PATH_CHARS = 160  # a path longer than this is shown with its middle elided
MAX_NAME_CHARS = 80  # a name from a file (key, class, member) is quoted up to this length

_bounded = reprlib.Repr()
_bounded.maxlevel, _bounded.maxstring, _bounded.maxother = 2, MAX_NAME_CHARS, MAX_NAME_CHARS
_bounded.maxlist = _bounded.maxtuple = _bounded.maxdict = _bounded.maxset = 4


def printable(text: str) -> str:
    """``text`` with every non-printable character (newline, ANSI escape, NUL, U+2028, a lone
    surrogate from an undecodable file name) written as its repr-style escape: one line that
    cannot move the cursor or fake another line."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def shorten(text: str, limit: int, middle: bool = False) -> str:
    """``text`` cut to ``limit`` characters, the cut marked with an ellipsis."""
    if len(text) <= limit:
        return text
    if middle:
        head = (limit - 1) // 2
        return text[:head] + "\u2026" + text[len(text) - (limit - 1 - head):]
    return text[: limit - 1] + "\u2026"


def quote(name: object, limit: int = MAX_NAME_CHARS) -> str:
    """A name or value that came from a file, for a message: repr-style quoted (so escapes and
    quotes show as such), bounded in length, and bounded in *time* for nested or shared
    containers (``reprlib`` stops after a few levels and items)."""
    if isinstance(name, str):
        if len(name) > limit:
            return repr(name[:limit]) + f"\u2026(+{len(name) - limit} chars)"
        return repr(name)
    try:
        text = _bounded.repr(name)
    except Exception:  # noqa: BLE001 - a hostile object's repr may fail; its type still names it
        text = f"<{type(name).__name__}>"
    return shorten(printable(text), limit)


class CheckpointError(Exception):
    """Base class: a one-line, user-facing message.

    The constructor makes that so whatever the caller passed: non-printable characters are
    escaped and the text bounded to ``MAX_MESSAGE_CHARS`` (path included), so no name from a
    hostile file can add a line, an ANSI sequence or 100 KB to what the user sees.
    ``path`` keeps the path as given; the message shows it elided past ``MAX_PATH_CHARS``.
    """

    max_chars = MAX_MESSAGE_CHARS

    def __init__(self, message: str, path: str | Path | None = None):
        self.path = str(path) if path is not None else None
        shown = shorten(printable(self.path), MAX_PATH_CHARS, middle=True) if self.path else ""
        room = self.max_chars - (len(shown) + 2 if shown else 0)
        self.message = shorten(printable(str(message)), room)
        super().__init__(f"{shown}: {self.message}" if shown else self.message)


class UnreadableFileError(CheckpointError):
    """The file does not exist, is empty, truncated, or not a format ckptlab knows."""


class LimitError(UnreadableFileError):
    """The file asks for more than one of ``ckptlab.io.limits`` allows (a bomb, or corrupt)."""


class UnsafePickleError(CheckpointError):
    """A pickle asked to call something outside the allowlist; nothing was called."""


class ContainerError(CheckpointError):
    """No tensor mapping where one was asked for (or none at all)."""


class UnsupportedFormatError(CheckpointError):
    """A known format ckptlab cannot (yet) read, e.g. a quantized TorchScript archive."""


class RecipeError(CheckpointError):
    """A recipe is invalid: bad regex, unknown rule, wrong argument type."""


class AdaptError(CheckpointError):
    """A shape adapter cannot turn the source shape into the target shape."""


class MergeError(CheckpointError):
    """A merge cannot be written: conflicts or unresolved shape mismatches remain."""

    max_chars = 4 * MAX_MESSAGE_CHARS  # names up to five faulty rows and the way out


class ModelSpecError(CheckpointError):
    """A model definition could not be built (bad spec, code not allowed, bad kwargs)."""


class PathNotAllowedError(CheckpointError):
    """A server-side path lies outside the allowed roots."""
