"""``gc_pause``: the collector is off inside an alignment and back as it was after, nested,
across threads and when the call fails."""
from __future__ import annotations

import gc
import threading

import pytest
import torch

from ckptlab.align.gc_pause import gc_paused
from ckptlab.align.matcher import align
from ckptlab.errors import RecipeError


def test_nested_and_failing_calls_leave_the_collector_as_they_found_it():
    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the outer call is still running
    assert gc.isenabled()
    with pytest.raises(RecipeError):
        align({"a": torch.zeros(1)}, {"a": torch.zeros(1)}, auto="sometimes")
    assert gc.isenabled()


def test_a_collector_turned_off_by_the_caller_stays_off():
    gc.disable()
    try:
        align({"a": torch.zeros(1)}, {"a": torch.zeros(1)})
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_threads_overlapping_turn_it_back_on_once_the_last_leaves():
    inside, leave = threading.Barrier(2), threading.Event()

    def first():
        with gc_paused():
            inside.wait()
            leave.wait()

    worker = threading.Thread(target=first)
    worker.start()
    with gc_paused():
        inside.wait()
    assert not gc.isenabled()  # the worker is still inside
    leave.set()
    worker.join()
    assert gc.isenabled()


def test_an_alignment_leaves_no_cycle_behind():
    """Nothing the stages build refers to itself: held off, the collector misses nothing."""
    source = {f"module.layers.{i}.w": torch.zeros(2, 2) for i in range(50)}
    target = {f"layers.{i}.w": torch.zeros(2, 2) for i in range(50)}
    gc.collect()
    gc.disable()
    try:
        assert align(source, target, auto="all").summary["renamed"] == 50
        assert align(target, target, auto="all").summary["exact"] == 50  # (no prefix to find)
        assert gc.collect() == 0
    finally:
        gc.enable()
