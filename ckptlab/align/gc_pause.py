"""The cyclic garbage collector held off while an alignment is built.

Aligning 20,000 keys allocates a few hundred thousand small containers (names, shapes, rows)
that are freed by reference counting when the stages finish with them; none of them forms a
cycle. The cyclic collector does not know that: it walks the young ones every 700 allocations
and, once enough have survived, the whole heap (the checkpoints' tensors and torch's own
objects too: ~0.15 s at 430,000 objects), which cost a third of an alignment's CPU. Held off
for the call, it later walks only what the alignment returns.

Process-wide by nature (``gc.disable``): nested and concurrent calls count themselves, the last
one out turns the collector back on, and only when it was on when the first came in.
"""
from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_depth = 0
_resume = False


@contextmanager
def gc_paused() -> Iterator[None]:
    """Run the body with the cyclic collector off (reference counting still frees everything)."""
    global _depth, _resume
    with _lock:
        if _depth == 0:
            _resume = gc.isenabled()
            gc.disable()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _resume:
                gc.enable()
