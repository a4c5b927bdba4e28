"""The core's errors speak the Python API (``nest=True``); on the command line they name the
flags instead (``--nest``). One table, applied to every error the CLI prints."""
from __future__ import annotations

import re

# (API phrase, CLI phrase): exact phrases of messages raised in the core
PHRASES = (
    ("nest=True needs a .pt/.pth output", "--nest needs a .pt or .pth output (-o)"),
    ("a nested output or kept extras cannot be split into shards; drop max_shard_size",
     "a --nest or --keep-extras output cannot be split into shards; drop --max-shard-size"),
    ("on-mismatch keep-target", "--on-mismatch keep-target"),
    ("invert with partial=True", "invert with --partial"),
    ("dtype must be 'target', 'source' or a torch dtype name", "--dtype must be 'target', 'source' or a dtype name"),
    ("auto: expected one of", "--auto: expected one of"),
)


def in_cli_words(message: str) -> str:
    for api, cli in PHRASES:
        message = re.sub(r"(?<!-)" + re.escape(api), lambda _m, cli=cli: cli, message)
    return message
