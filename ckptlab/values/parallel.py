"""Run many small tensor jobs on a few threads, each with torch's intra-op threads off.

Measured on the 2 shared cores this project runs on: torch's own multithreaded reductions
over 1 MB chunks were 3-40x *slower* than single-threaded ones whenever other processes
competed for the cores (OpenMP threads spin-wait for each other), while two Python threads
each running single-threaded torch ops (which release the GIL) went 1.7-1.9x faster than
one. So value scans split tensors into windows and run them here: ``torch.set_num_threads(1)``
in each worker thread (an OpenMP setting per thread, so the caller's own setting is left
alone), results handed back in submission order, a bounded number of windows in flight so
memory stays bounded whatever the file size.
"""
from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

import torch

__all__ = ["T", "default_workers", "run_ordered"]

T = TypeVar("T")


def default_workers() -> int:
    """``CKPTLAB_WORKERS`` if set, else this process's CPUs, at most 4. Measured with
    bench/bench_values.py on the 2 shared cores here (stats of a 2.5 GB zip, one run each):
    two workers took 0.71 s against one worker's 1.07 s at load average ~7, 0.41 s against
    0.60 s at ~4, and tied (0.34 / 0.31 s, 1 GB) at ~8.6; never clearly slower, so the old rule
    of leaving busy CPUs out (one worker whenever the load average exceeded the CPUs) is gone."""
    env = os.environ.get("CKPTLAB_WORKERS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(4, cpus))


def _single_threaded() -> None:
    # CKPTLAB_WORKER_THREADS: only for bench/bench_values.py, to measure torch's own threading
    env = os.environ.get("CKPTLAB_WORKER_THREADS", "")
    torch.set_num_threads(int(env) if env.isdigit() and int(env) > 0 else 1)


def run_ordered(jobs: Iterable[Callable[[], T]], workers: int | None = None,
                in_flight: int | None = None) -> Iterator[T]:
    """Each job's result, in the order of ``jobs``; at most ``in_flight`` jobs started but not
    yet consumed (default: twice the workers). An exception in a job is raised here, and the
    jobs not yet started are dropped."""
    workers = workers or default_workers()
    in_flight = max(1, in_flight or 2 * workers)
    with ThreadPoolExecutor(workers, initializer=_single_threaded, thread_name_prefix="ckptlab") as pool:
        pending: deque[Future[T]] = deque()
        try:
            for job in jobs:
                pending.append(pool.submit(job))
                if len(pending) >= in_flight:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()

