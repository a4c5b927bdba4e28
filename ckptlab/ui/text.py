"""Names from files shown safely: as inert text, never as markdown.

Key names, container names, placeholder class names and error messages come from the
file, so a checkpoint could name a key ``[click](http://evil)`` or ``![x](http://evil/p.png)``.
Where Streamlit only offers markdown (``st.error``, metric labels, captions), every ASCII
punctuation character is backslash-escaped (CommonMark lets any of them be escaped), which
also breaks Streamlit's ``:color[...]``/``:material/...:`` directives, ``$`` maths and HTML.
Escapes do not stop GFM's bare-URL autolinks: remark-gfm finds ``http://``, ``www.`` and
``user@host`` in the text *after* escapes are resolved (a browser showed ``http\\://x`` as a
link). So a word joiner (U+2060, invisible, no width) is put inside each of them
(``http:\u2060//``, ``www\u2060.``, ``\u2060@``): they read the same and link nothing. Code
spans (``code``) never autolink. Anything else goes through ``st.text``, ``st.code`` or a
dataframe, which render no markup at all.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")
_SPACES = re.compile(r"\s+")
JOINER = "\u2060"     # WORD JOINER: breaks an autolink pattern without a visible change
_AUTOLINK = re.compile(r"(?<=:)(?=//)|(?<=www)(?=\.)|(?=@)", re.IGNORECASE)


def one_line(text: object, limit: int = 400) -> str:
    """One printable line (newlines and tabs become spaces), cut at ``limit`` characters."""
    line = _SPACES.sub(" ", "".join(ch if ch.isprintable() else " " for ch in str(text))).strip()
    return line if len(line) <= limit else line[: limit - 3] + "..."


def md(text: object, limit: int = 400) -> str:
    """``text`` as one markdown-inert line: it shows these characters (with invisible word
    joiners inside would-be autolinks), links none."""
    return _PUNCTUATION.sub(r"\\\1", unlinked(one_line(text, limit)))


def unlinked(line: str) -> str:
    """``line`` with a word joiner inside every ``://``, ``www.`` and ``@``: GFM's autolink
    literals (found in text after escapes are resolved) no longer match."""
    return _AUTOLINK.sub(JOINER, line)


def names(items: Iterable[object], limit: int = 6) -> str:
    """A short markdown-inert list: ``a, b, c and 3 more``."""
    items = list(items)
    shown = ", ".join(md(i, 120) for i in items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def plural(count: int, word: str, many: str | None = None) -> str:
    """``1 key``, ``2 keys`` (``many`` for irregular plurals)."""
    return f"{count:,} {word if count == 1 else (many or word + 's')}"


def error_text(exc: object, label: str = "", hide: Iterable[str | Path] = (), path: str | Path = "") -> str:
    """An error as one line for the page: a path under the server folders in ``hide`` (a
    session folder the visitor never saw) becomes ``label`` (the name the visitor knows),
    and ``label`` is put in front only when the message names neither it nor ``path``."""
    message = one_line(exc, 600)
    for folder in sorted({str(h) for h in hide if str(h)}, key=len, reverse=True):
        message = re.sub(re.escape(folder.rstrip("/")) + r"/[^\s'\":,;]*", label or "the file", message)
        message = message.replace(folder, "")
    if label and label not in message and not (path and str(path) in message):
        message = f"{label}: {message}"
    return message


def code(name: object, limit: int = 200) -> str:
    """``name`` as a markdown code span: shown as written, never a link, image or HTML.
    A name holding backticks gets a longer fence (CommonMark), so it cannot close the span."""
    line = one_line(name, limit)
    fence = "`" * (max((len(run) for run in re.findall(r"`+", line)), default=0) + 1)
    pad = " " if line.startswith("`") or line.endswith("`") or fence != "`" else ""
    return f"{fence}{pad}{line}{pad}{fence}"
