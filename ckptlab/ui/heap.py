"""Keep the server's long-lived objects out of the garbage collector's full scans.

A full (generation 2) collection visits every object that can hold references. In the
server that is torch, pandas and Streamlit (~260,000 objects) plus every cached checkpoint
and alignment (a 5,000-key pair opened: ~150,000 more). Opening or aligning a big pair
makes enough new objects to trigger one, so a visitor's rerun stopped for 0.3-1.4 s while
the collector re-scanned objects that live as long as the server (measured on a busy
2-core machine: 9-16 s of full collections over four rule edits on a 10,000-row table;
with this module, ~1 s).

So, in the server only: after the warm-up and after each new cached result, a young
collection frees the run's short-lived cycles and ``gc.freeze()`` moves what survived out
of the scans. Frozen objects are still freed by reference counting when the cache drops
them; only a reference cycle frozen while already garbage would stay (a visit's state that
ended: its session folder is removed when that state is collected), so everything is
unfrozen and collected once every ``FULL_EVERY``-th time and at least every
``FULL_EVERY_S`` seconds (an idle server allocates nothing, so without the timer such
garbage could wait for the next visitor).
"""
from __future__ import annotations

import gc
import threading
import time

FULL_EVERY = 16
FULL_EVERY_S = 300.0
_state = {"enabled": False, "settled": 0}
_LOCK = threading.Lock()


def enable() -> None:
    """Called once by the server (``ckptlab.ui.server.routes``); tests and scripts that
    import the UI leave the collector as it is."""
    with _LOCK:
        if _state["enabled"]:
            return
        _state["enabled"] = True
    threading.Thread(target=_every_few_minutes, name="ckptlab-full-gc", daemon=True).start()


def settle() -> None:
    """After a result that lives long (a cached checkpoint or alignment) was made."""
    if not _state["enabled"]:
        return
    with _LOCK:
        _state["settled"] += 1
        if _state["settled"] % FULL_EVERY == 0:
            _full()
        else:
            gc.collect(1)
            gc.freeze()


def full() -> None:
    """Unfreeze, collect everything, freeze again (what the timer does)."""
    with _LOCK:
        _full()


def _full() -> None:
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def _every_few_minutes() -> None:
    while True:
        time.sleep(FULL_EVERY_S)
        full()
