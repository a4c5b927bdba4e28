"""Config files that sit beside a checkpoint (``config.json``, ``params.json``): what a file alone
cannot say (head counts, ties) is often written next to it. Read as data only, never as code."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["CONFIG_FILES", "files_beside", "read_json"]

CONFIG_FILES = ("config.json", "params.json")


def files_beside(obj: Any, names: tuple[str, ...] = CONFIG_FILES) -> list[Path]:
    """The files named ``names`` in the folder of ``obj`` (a path, or anything with ``.path``)."""
    path = getattr(obj, "path", None) if not isinstance(obj, (str, Path)) else obj
    if not path:
        return []
    folder = Path(path)
    folder = folder if folder.is_dir() else folder.parent
    return [folder / name for name in names if (folder / name).is_file()]


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``, or ``{}`` when it is missing, unreadable or not an object."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
