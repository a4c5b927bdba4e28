"""Benchmark: ckptlab's own pickle machine vs CPython's C unpickler, same data.pkl, one run.

ckptlab reads every pickle on its own machine (``formats/unpickler.py``) so that a file can
set state only on placeholders and every quantity is bounded. This measures what that
costs: a ``--tensors``-tensor state_dict's ``data.pkl`` (default 20,000) unpickled by
(a) ``RestrictedUnpickler`` and (b) ``pickle.Unpickler`` (C) given the same allowlist and the
same persistent-id callback, i.e. the design ckptlab used before. Both build the same
LazyTensors; times are the best of ``--repeat`` interleaved rounds, with gc paused as
``formats.read`` does. Also: ``ckptlab.open`` of the whole file vs
``torch.load(weights_only=True, mmap=True)``.

    python bench/bench_unpickle.py --tensors 20000
"""
from __future__ import annotations

import argparse
import gc
import io
import pickle
import platform
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import ckptlab  # noqa: E402
from ckptlab.io.formats.allowlist import ALLOWED, Allowed  # noqa: E402
from ckptlab.io.formats.storage import StorageRef  # noqa: E402
from ckptlab.io.formats.unpickler import RestrictedUnpickler  # noqa: E402


def _storage(pid):
    return StorageRef(pid[2], pid[1].dtype, pid[4], lambda o, n: None)


class _CUnpickler(pickle.Unpickler):
    """CPython's unpickler with the allowlist's functions (no placeholders needed here)."""

    def find_class(self, module, name):
        value = ALLOWED[(module, name)]
        return value.fn if isinstance(value, Allowed) else value

    def persistent_load(self, pid):
        return _storage(pid)


def _best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        gc.disable()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        gc.enable()
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tensors", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "many.pt"
        torch.save({f"layers.{i}.weight": torch.ones(4) for i in range(args.tensors)}, path)
        with zipfile.ZipFile(path) as z:
            data = z.read(next(n for n in z.namelist() if n.endswith("data.pkl")))
        ours, theirs, opened, loaded = [], [], [], []
        for _ in range(args.repeat):  # interleaved rounds: the shared machine's noise hits both
            ours.append(_best(lambda: RestrictedUnpickler(io.BytesIO(data), _storage).load(), 1))
            theirs.append(_best(lambda: _CUnpickler(io.BytesIO(data)).load(), 1))
            opened.append(_best(lambda: ckptlab.open(path), 1))
            loaded.append(_best(lambda: torch.load(path, weights_only=True, mmap=True), 1))
    print(f"machine: {platform.system()} {platform.machine()}, Python {platform.python_version()}, "
          f"torch {torch.__version__}; data.pkl {len(data):,} bytes, {args.tensors:,} tensors")
    print(f"RestrictedUnpickler (ckptlab's machine): {min(ours):.3f} s")
    print(f"pickle.Unpickler (C) + same allowlist:   {min(theirs):.3f} s")
    print(f"ratio ours / C: {min(ours) / min(theirs):.2f}x")
    print(f"ckptlab.open (whole file, headers only): {min(opened):.3f} s")
    print(f"torch.load(weights_only=True, mmap=True): {min(loaded):.3f} s")
    print(f"ratio open / torch.load: {min(opened) / min(loaded):.2f}x")


if __name__ == "__main__":
    main()
