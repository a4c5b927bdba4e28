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
them; only a reference cycle frozen while already garbage would stay, so every
``FULL_EVERY``-th time everything is unfrozen and collected once (that bounds it).
"""
from __future__ import annotations

import gc

FULL_EVERY = 16
_state = {"enabled": False, "settled": 0}


def enable() -> None:
    """Called once by the server (``ckptlab.ui.server.warm_up``); tests and scripts that
    import the UI leave the collector as it is."""
    _state["enabled"] = True


def settle() -> None:
    """After a result that lives long (a cached checkpoint or alignment) was made."""
    if not _state["enabled"]:
        return
    _state["settled"] += 1
    if _state["settled"] % FULL_EVERY == 0:
        gc.unfreeze()
        gc.collect()
    else:
        gc.collect(1)
    gc.freeze()
