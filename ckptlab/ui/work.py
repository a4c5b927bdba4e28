"""Heavy per-visitor work (aligning a pair with a visitor's recipe) on a few threads of lower
CPU priority, so one visitor's long job cannot take the CPU that the server's event loop and
the other visitors' page runs need.

Why: a recipe may cost up to the named bounds (``MAX_MATCH_SECONDS`` per key, up to
``MAX_RENAME_SECONDS`` per rename: tens of seconds of a core for a rule that backtracks on
every key just under the per-key bound). Bounded is not free: measured with
bench/bench_server.py, one such visitor made the others' warm page 1.2-1.4x slower to be
usable on a 2-core server. On these threads (``nice`` +10, Linux sets it per thread) that
work only gets the CPU the others leave. At most ``os.cpu_count()`` such jobs run at once;
more wait their turn (one visitor's tabs cannot hold every core at full priority).
``CKPTLAB_WORK_NICE`` sets the niceness (0: the server's own priority).
"""
from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
NICE_ENV = "CKPTLAB_WORK_NICE"
NICE = 10
_LOCK = threading.Lock()
_pool: ThreadPoolExecutor | None = None


def _lower_priority() -> None:
    """Run in each worker thread once: raise its niceness (this thread only, on Linux)."""
    try:
        nice = int(os.environ.get(NICE_ENV, NICE))
    except ValueError:
        nice = NICE
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), max(0, nice))
    except (OSError, AttributeError):
        pass                      # not Linux, or not allowed: the work runs at normal priority


def pool() -> ThreadPoolExecutor:
    global _pool
    with _LOCK:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="ckptlab-work",
                                       initializer=_lower_priority)
        return _pool


def heavy(fn: Callable[..., T], *args: object) -> T:
    """``fn(*args)`` on a low-priority worker; its result or its exception, here. ``fn`` must
    not draw (Streamlit calls belong to the session's own thread)."""
    return pool().submit(fn, *args).result()
