"""Nothing of a visit outlives it: its session folder (uploads, built files), its download
links, Streamlit's copies of its uploads and its cached state are freed when it ends.

Streamlit keeps a closed tab's session so that a network blip can reconnect: with its
state, and its uploads held in memory, until its storage happens to evict it (a red team
found 1.2 GB of two closed tabs' uploads still there 11 minutes later). A session folder
removed only when its state is garbage-collected waited as long. So each visit is tracked:

- **the tab closes**: a session-scoped cached resource (``st.cache_resource(scope="session")``)
  is released by Streamlit when the session's websocket closes; ``GRACE_S`` later, if the
  session did not reconnect, the janitor frees it and closes the stored session (Streamlit
  then drops its uploads, media files and state);
- **the tab stays open, unused**: ``IDLE_S`` after its last run the janitor frees the same
  (the session stays connected; its next run starts afresh and says why);
- **the server stops**: ``ckptlab.ui.server.lifespan`` removes the whole scratch folder.

``CKPTLAB_SESSION_GRACE`` and ``CKPTLAB_IDLE_TIMEOUT`` (seconds; 0 turns the idle timeout
off) set the two times. Only the server process runs the janitor (``start``); tests call
``sweep`` with a clock of their own.
"""
from __future__ import annotations

import os
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import streamlit as st

from ckptlab.ui import files

GRACE_ENV = "CKPTLAB_SESSION_GRACE"
IDLE_ENV = "CKPTLAB_IDLE_TIMEOUT"
GRACE_S = 30.0          # a closed tab's visit is freed this long after it left (a blip may reconnect)
IDLE_S = 3600.0         # an open tab without a run for this long loses its files and state
TICK_S = 5.0            # how often the janitor looks


@dataclass
class Visit:
    session_id: str
    last_run: float
    folder: str | None = None
    left_at: float | None = None          # when Streamlit released the session (tab closed)
    state: Any = None                     # weakref to the session's SafeSessionState
    expired: bool = False                 # freed for idleness: its next run says so


_visits: dict[str, Visit] = {}
_LOCK = threading.Lock()
_started = {"janitor": False}


def seconds(env: str, default: float) -> float:
    try:
        return max(0.0, float(os.environ.get(env, default)))
    except ValueError:
        return default


def _session_id() -> tuple[str, Any] | None:
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx()
    return None if ctx is None else (ctx.session_id, ctx.session_state)


def track() -> bool:
    """At the start of every run: this visit is here now. True when the janitor freed it
    for idleness since its last run (the page then says so)."""
    found = _session_id()
    if found is None:
        return False
    session_id, session_state = found
    now = time.monotonic()
    with _LOCK:
        visit = _visits.get(session_id)
        if visit is None:
            visit = _visits[session_id] = Visit(session_id, now)
        visit.last_run, visit.left_at = now, None
        visit.state = weakref.ref(session_state)
        expired, visit.expired = visit.expired, False
    _guard(session_id)              # released by Streamlit when this session's websocket closes
    return expired


def note_folder(path: Path) -> None:
    """This session's folder (``state.session_dir``), to remove when the visit ends."""
    found = _session_id()
    if found is None:
        return
    with _LOCK:
        visit = _visits.setdefault(found[0], Visit(found[0], time.monotonic()))
        visit.folder = str(path)


def _left(session_id: str) -> None:
    """Streamlit released the session's resources: its tab closed (or it is shutting down)."""
    with _LOCK:
        visit = _visits.get(session_id)
        if visit is not None and visit.left_at is None:
            visit.left_at = time.monotonic()


@st.cache_resource(scope="session", on_release=_left, show_spinner=False)
def _guard(session_id: str) -> str:
    return session_id


def sweep(now: float | None = None, grace: float | None = None, idle: float | None = None,
          active: Any = None) -> list[str]:
    """Free every visit that left ``grace`` seconds ago (and did not come back) or ran
    nothing for ``idle`` seconds; return their session ids. ``active(session_id)`` says
    whether a session is connected (default: ask Streamlit's runtime)."""
    now = time.monotonic() if now is None else now
    grace = seconds(GRACE_ENV, GRACE_S) if grace is None else grace
    idle = seconds(IDLE_ENV, IDLE_S) if idle is None else idle
    active = active or _is_active
    with _LOCK:
        visits = list(_visits.values())
    freed = []
    for visit in visits:
        if visit.left_at is not None and now - visit.left_at >= grace and not active(visit.session_id):
            _free(visit)
            _close(visit.session_id)
            with _LOCK:
                _visits.pop(visit.session_id, None)
            freed.append(visit.session_id)
        elif idle and not visit.expired and now - visit.last_run >= idle:
            _free(visit)
            visit.expired = True
            freed.append(visit.session_id)
    return freed


def _free(visit: Visit) -> None:
    """The visit's folder and links, Streamlit's copies of its uploads, its state."""
    if visit.folder:
        files.remove_session_folder(Path(visit.folder))
        visit.folder = None
    runtime = _runtime()
    if runtime is not None:
        runtime.uploaded_file_mgr.remove_session_files(visit.session_id)
    session_state = visit.state() if visit.state is not None else None
    if session_state is not None:
        _clear(session_state)


def _clear(session_state: Any) -> None:
    """Drop every value the page keeps in another session's state (opened checkpoints,
    alignments, built files, the recipe); widgets' values stay (the browser sends them
    again anyway), as do Streamlit's own entries. From this thread: under the state's
    lock, without its script runner's yield callback (that belongs to the session's own
    script thread). Relies on Streamlit's SessionState internals, tested with the pinned
    version (tests/security/test_app_lifecycle.py)."""
    lock = object.__getattribute__(session_state, "_lock")
    inner = object.__getattribute__(session_state, "_state")
    with lock:
        widgets = inner._key_id_mapper
        for key in [k for k in inner.filtered_state if k not in widgets]:
            try:
                del inner[key]
            except KeyError:
                pass


def _runtime() -> Any:
    from streamlit.runtime import Runtime

    return Runtime.instance() if Runtime.exists() else None


def _is_active(session_id: str) -> bool:
    runtime = _runtime()
    return runtime is not None and runtime.is_active_session(session_id)


def _close(session_id: str) -> None:
    """Close a stored (disconnected) session on Streamlit's event loop: it may not resume,
    and its shutdown drops its uploads, media files and state."""
    runtime = _runtime()
    if runtime is None:
        return
    runtime.mark_session_nonresumable(session_id)
    close = getattr(runtime, "_close_inactive_session_on_event_loop", None)
    (close or runtime.clear_user_info_for_session)(session_id)


def start() -> None:
    """The janitor thread (once, in the server process)."""
    with _LOCK:
        if _started["janitor"]:
            return
        _started["janitor"] = True
    threading.Thread(target=_janitor, name="ckptlab-visits", daemon=True).start()


def _janitor() -> None:
    from ckptlab.ui import heap

    while True:
        time.sleep(TICK_S)
        try:
            if sweep():
                heap.full()        # what the freed state held in reference cycles goes now
                _trim()
        except Exception:  # noqa: BLE001 - the janitor must outlive one bad sweep
            pass


def _trim() -> None:
    """Hand freed heap pages back to the system (glibc keeps them otherwise: a server that
    held two visitors' uploads would go on looking as big)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
