"""What keeps the page quick: the first visitor finds the demo pair already opened and
aligned by the server's warm-up, and what a run recomputes is only what changed.
(How quick is measured by bench/bench_app.py, never asserted here.)"""
from __future__ import annotations

import pytest

import ckptlab
from ckptlab.ui import server, state
from tests.ui.conftest import new_app


def _refuse(*args, **kwargs):
    raise AssertionError("the first visit computed what the warm-up should have left in the cache")


def test_first_visit_after_the_warm_up_opens_and_aligns_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    state.server_shared.clear()
    server.warm_up()
    monkeypatch.setattr(ckptlab, "open", _refuse)
    monkeypatch.setattr(state, "align_pair", _refuse)
    at = new_app()
    failures = [e.value for e in at.error if "AssertionError" in e.value]
    assert not failures, failures        # guarded() would show a refused call as an error line
    accepts = [b for b in at.button if b.key.startswith("accept_")]
    assert accepts, "the first demo pair's suggestions (with their Accept buttons) are on the page"
    assert at.metric[0].value is not None


def test_without_the_warm_up_the_first_visit_opens_and_aligns(monkeypatch: pytest.MonkeyPatch) -> None:
    """The counter-test: the page does reach ``ckptlab.open`` and ``align_pair`` when the
    cache is empty, so the test above proves the warm-up filled it."""
    state.server_shared.clear()
    calls: list[str] = []
    real_open, real_align = ckptlab.open, state.align_pair
    monkeypatch.setattr(ckptlab, "open", lambda *a, **k: calls.append("open") or real_open(*a, **k))
    monkeypatch.setattr(state, "align_pair", lambda *a, **k: calls.append("align") or real_align(*a, **k))
    new_app()
    assert calls.count("open") == 2 and calls.count("align") == 1


def test_the_server_keeps_long_lived_results_out_of_full_collections_and_still_frees_cycles(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """After each cached result the survivors are frozen (full collections skip them);
    every FULL_EVERY-th time everything is unfrozen and collected, so a cycle frozen
    while already garbage is freed then."""
    import gc
    import weakref

    from ckptlab.ui import heap

    class Node:
        pass

    monkeypatch.setitem(heap._state, "enabled", True)
    monkeypatch.setitem(heap._state, "settled", 0)
    try:
        kept = [Node() for _ in range(1000)]
        heap.settle()
        frozen = gc.get_freeze_count()
        assert frozen >= len(kept)
        gc.collect()
        assert gc.get_freeze_count() == frozen      # a full collection leaves them frozen

        cycle = Node()
        cycle.me = cycle
        gc.freeze()                                 # a cycle frozen alive, dropped later:
        ref = weakref.ref(cycle)
        del cycle
        gc.collect()
        assert ref() is not None                    # ... no collection reaches it, until
        for _ in range(heap.FULL_EVERY - 1):
            heap.settle()
        assert ref() is None                        # the full one every FULL_EVERY settles
        assert kept[0] is not None and gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


def test_settle_leaves_the_collector_alone_outside_the_server() -> None:
    import gc

    from ckptlab.ui import heap

    assert not heap._state["enabled"]
    before = gc.get_freeze_count()
    heap.settle()
    assert gc.get_freeze_count() == before


def test_the_timed_full_collection_frees_a_frozen_garbage_cycle() -> None:
    """What the server's timer runs every FULL_EVERY_S seconds: an ended visit's state
    that was frozen alive is collected (its session folder's finalizer runs)."""
    import gc

    from ckptlab.ui import files, heap

    folder = files.SessionFolder()
    holder = {"folder": folder}
    holder["me"] = holder                       # a cycle, as a dropped session state may be
    path = folder.path
    try:
        gc.freeze()
        del folder, holder
        gc.collect()
        assert path.exists()                    # frozen: no ordinary collection reaches it
        heap.full()
        assert not path.exists()
    finally:
        gc.unfreeze()
