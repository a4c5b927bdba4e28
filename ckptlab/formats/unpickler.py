"""The restricted unpickler every pickle in ckptlab goes through.

``pickle.Unpickler`` would import and call whatever the file names. This subclass
resolves each global through ``allowlist``: allowed names get safe stand-ins, unknown
classes get inert placeholders (reported back), and calls to anything else are refused
with ``UnsafePickleError`` before they happen. Storages are resolved by the reader's
``persistent_load`` callback, so no tensor bytes are touched here.
"""
from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from ckptlab.errors import CheckpointError, UnreadableFileError
from ckptlab.formats.allowlist import ALLOWED, normalise, refusal_reason
from ckptlab.formats.placeholder import make_placeholder_class

PersistentLoad = Callable[[Any], Any]


class RestrictedUnpickler(pickle.Unpickler):
    """Never imports a module; records every class it stood in for in ``placeholders``."""

    def __init__(self, file: IO[bytes], persistent_load: PersistentLoad | None = None):
        super().__init__(file, encoding="utf-8")
        self._persistent = persistent_load
        self._classes: dict[tuple[str, str], type] = {}
        self.placeholders: set[str] = set()

    def find_class(self, module: str, name: str) -> Any:
        key = normalise(module, name)
        if key in ALLOWED:
            return ALLOWED[key]
        cls = self._classes.get(key)
        if cls is None:
            refused = refusal_reason(*key)
            cls = make_placeholder_class(key[0], key[1], refused)
            self._classes[key] = cls
            if not refused:
                self.placeholders.add(f"{key[0]}.{key[1]}")
        return cls

    def persistent_load(self, pid: Any) -> Any:
        if self._persistent is None:
            raise pickle.UnpicklingError(f"unexpected persistent id {str(pid)[:60]!r}")
        return self._persistent(pid)


def restricted_load(file: IO[bytes], path: str | Path, member: str = "",
                    persistent_load: PersistentLoad | None = None) -> tuple[Any, set[str]]:
    """Unpickle one object from ``file``; returns it and the placeholder class names used.

    Any failure becomes a one-line ``CheckpointError`` naming ``path`` (and ``member``,
    the pickle's name inside an archive).
    """
    where = f" in {member}" if member else ""
    unpickler = RestrictedUnpickler(file, persistent_load)
    try:
        obj = unpickler.load()
    except CheckpointError as exc:
        raise type(exc)(f"{exc.message}{where}", exc.path or path) from None
    except EOFError:
        raise UnreadableFileError(f"truncated pickle{where} (it ends before its STOP opcode)", path) from None
    except MemoryError:
        raise UnreadableFileError(f"corrupt pickle{where} (asks for more memory than exists)", path) from None
    except RecursionError:
        raise UnreadableFileError(f"corrupt pickle{where} (nested too deeply)", path) from None
    except Exception as exc:  # noqa: BLE001 - any parse failure of hostile bytes is "corrupt"
        detail = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise UnreadableFileError(f"corrupt pickle{where} ({detail})", path) from None
    return obj, unpickler.placeholders
