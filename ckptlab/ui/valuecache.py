"""Value scans (stats, diff) for the app: cached by content, with a progress bar.

A scan reads every byte of a checkpoint, so it runs once per content: the cache key is a
fingerprint of what the tensors are (each key's dtype, shape and where its bytes lie, plus
size, mtime and inode of every file they lie in; tensors held in memory are hashed when
small). Two sessions opening the same file share one result (results are small, immutable
figures, never tensors); a file changed on disk gets a new key. While a large scan runs, a
progress bar shows the bytes read.
"""
from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, TypeVar

import streamlit as st

T = TypeVar("T")
MAX_ENTRIES = 16
HASH_IN_MEMORY_LIMIT = 64 * 2**20  # tensors without a file: hashed up to this many bytes in all
PROGRESS_FROM = 32 * 2**20          # no bar for scans smaller than this

_results: OrderedDict[str, Any] = OrderedDict()
_lock = threading.Lock()


def content_key(ck: Any) -> str:
    """A fingerprint of ``ck``'s tensors (see the module docstring)."""
    h = hashlib.sha256()
    h.update(f"{ck.format}|{ck.container}|{len(ck)}".encode())
    if ck.format == "model":  # a model definition's seeded initial values: its spec says it all
        h.update(repr(sorted(ck.metadata.items())).encode())
        return h.hexdigest()
    files: set[str] = set()
    unplaced = []
    for key in ck.keys():
        lazy = ck.lazy(key)
        span = lazy.file_span
        h.update(f"|{key}|{lazy.info.dtype}|{lazy.info.shape}".encode())
        if span is not None:
            files.add(span[0])
            h.update(f"@{span[0]}:{span[1]}:{span[2]}".encode())
        else:
            unplaced.append(key)
    if ck.path:
        files.add(ck.path)
    for path in sorted(files):
        h.update(_stat(path).encode())
    if unplaced and not ck.path:  # in memory only (a merge result, a model's values): hash them
        if sum(ck.info(k).nbytes for k in unplaced) > HASH_IN_MEMORY_LIMIT:
            h.update(f"object:{id(ck)}".encode())  # too big to hash: cached for this object only
        else:
            for key in unplaced:
                h.update(_raw(ck.tensor(key)))
    return h.hexdigest()


def _raw(t: Any) -> bytes:
    import torch

    flat = t.detach().contiguous().reshape(-1)
    return flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b""


def _stat(path: str) -> str:
    try:
        if os.path.isdir(path):
            parts = []
            for name in sorted(os.listdir(path)):
                s = os.stat(os.path.join(path, name))
                parts.append(f"{name}:{s.st_size}:{s.st_mtime_ns}:{s.st_ino}")
            return f"dir {path}|" + "|".join(parts)
        s = os.stat(path)
        return f"file {path}:{s.st_size}:{s.st_mtime_ns}:{s.st_ino}"
    except OSError:
        return f"gone {path}"


def cached_scan(key: str, label: str, total_bytes: int, scan: Callable[[Callable[[int, int, str], None] | None], T]) -> T:
    """``scan(progress)`` once per ``key`` (process-wide LRU of ``MAX_ENTRIES``), with a
    progress bar labelled ``label`` while it runs on ``total_bytes`` or more."""
    with _lock:
        if key in _results:
            _results.move_to_end(key)
            return _results[key]
    bar = st.progress(0.0, text=f"{label}: reading values...") if total_bytes >= PROGRESS_FROM else None
    last = [-1]

    def progress(done: int, total: int, tensor: str) -> None:
        if bar is None or total <= 0:
            return
        step = int(100 * done / total)
        if step != last[0]:  # at most ~100 updates, whatever the number of tensors
            last[0] = step
            bar.progress(min(1.0, done / total), text=f"{label}: {done / 2**20:,.0f} of {total / 2**20:,.0f} MB")

    try:
        result = scan(progress)
    finally:
        if bar is not None:
            bar.empty()
    with _lock:
        _results[key] = result
        while len(_results) > MAX_ENTRIES:
            _results.popitem(last=False)
    return result


def combined(*parts: str) -> str:
    """One key from several (e.g. source, target and recipe of a merge result)."""
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


def clear() -> None:
    """Forget every cached result (tests)."""
    with _lock:
        _results.clear()
