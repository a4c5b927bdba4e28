"""Per-tensor value statistics, streamed: did it load, is anything broken in there?

``stats(path)`` reads every tensor once, window by window (``windows.py``: bounded mmap
windows of the file where the reader knows where the bytes lie), on a few threads
(``parallel.py``), and gives per tensor ``min``, ``max``, ``mean``, ``std``, ``absmax`` and
the counts of ``zeros``, ``nan`` and ``inf``, with flags for what usually means trouble.

How the numbers are computed (also in the JSON's ``method``):

- Values are taken in runs of 2**18 elements. Floating dtypes: min, max and the zero count
  come from the values themselves (bf16, fp16 and fp8 widened exactly to float32 first: they
  are subsets of it); the run is then copied exactly into a float64 buffer (a float32 square
  is exact in float64) and its sum and sum of squares are taken in float64. Where the mean
  dominates the spread (sum of squares > ``CANCEL`` = 16 x the squared deviations, i.e.
  |mean| > ~3.9 std, where the two sums would cancel) the run's deviations from its mean
  are summed instead, so the variance keeps float64 precision (relative error ~1e-10 at
  worst) for tensors far from zero. A run holding NaN or Inf, and integer, bool and complex
  runs: exact min/max, sums in float64 of the deviations from the run's first value or the
  running mean. Runs combine in float64 with Chan's parallel formula. Nothing is summed in
  bf16, fp16, fp8 or float32.
- ``std`` is the population standard deviation (numpy's default, ``ddof=0``).
- NaN and Inf are counted; ``min``, ``max``, ``mean``, ``std`` and ``absmax`` are over the
  finite values only (``None`` when there are none). ``zeros`` counts +0 and -0.
- Complex tensors: over their real and imaginary parts together.
- fp8 weights with a DeepSeek-style ``*_scale_inv`` sibling: the stored fp8 values, or with
  ``dequantize=True`` the dequantised ones (``fp8.py``); ``dequantized`` says which.
"""
from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ckptlab.values import fp8
from ckptlab.io import buffers as scratch
from ckptlab.io.checkpoint import Checkpoint
from ckptlab.errors import CheckpointError
from ckptlab.io.tensor_info import dtype_name
from ckptlab.values.parallel import run_ordered
from ckptlab.io.windows import Window, runs, windows

__all__ = ["RUN", "BATCH_BYTES", "CANCEL", "NORM_RANGE", "Progress", "METHOD", "FLAGS", "Part", "widen",
    "scan", "scan_runs", "TensorStats", "is_norm_weight", "flags_for", "Stats", "stats"]

RUN = 1 << 18  # elements per kernel call: few calls per window; a run (1 MB of float32) stays in cache over its passes
BATCH_BYTES = 2**20  # windows smaller than this go to a worker together (see _batches)
CANCEL = 16  # a run whose sum of squares exceeds CANCEL x its squared deviations is summed again around its mean
NORM_RANGE = (0.5, 2.0)  # a norm weight whose mean lies outside this is flagged
_NORM_MODULE = re.compile(r"(?i)(norm|^ln(_?\w+)?$|^bn\d*$|^gn\d*$)")
Progress = Callable[[int, int, str], None]

METHOD = {
    "accumulation": "float64: runs of 2**18 elements widened exactly to float64 (bf16, fp16, fp8, float32); "
                    "sum and sum of squares in float64, a run whose |mean| exceeds ~3.9 std summed again "
                    "around its mean (no cancellation); runs combined with Chan's formula",
    "std": "population (ddof=0)",
    "non_finite": "nan and inf are counted; min, max, mean, std and absmax are over finite values only",
    "zeros": "+0 and -0",
}
FLAGS = {
    "nan": "holds NaN",
    "inf": "holds +-Inf",
    "all-zero": "every value is 0",
    "constant": "every value is the same",
    "norm-far-from-1": f"a norm weight whose mean is outside {NORM_RANGE[0]}..{NORM_RANGE[1]}",
}


# -- partial moments of a run of values ---------------------------------------------------------
@dataclass
class Part:
    """What a run of values contributes; parts of one tensor ``merge`` in any grouping."""

    numel: int = 0
    finite: int = 0
    zeros: int = 0
    nan: int = 0
    inf: int = 0
    mean: float = 0.0
    m2: float = 0.0  # sum of squared deviations from ``mean``
    min: float = math.inf
    max: float = -math.inf

    def merge(self, other: "Part") -> "Part":
        n = self.finite + other.finite
        if n == 0:
            mean, m2 = 0.0, 0.0
        else:
            delta = other.mean - self.mean
            mean = self.mean + delta * other.finite / n
            m2 = self.m2 + other.m2 + delta * delta * self.finite * other.finite / n
        return Part(self.numel + other.numel, n, self.zeros + other.zeros, self.nan + other.nan,
                    self.inf + other.inf, mean, m2, min(self.min, other.min), max(self.max, other.max))


def widen(values: torch.Tensor) -> torch.Tensor:
    """A 1-D run of values as float32 (float32 input) or float64 (everything else), exactly."""
    if values.is_complex():
        wide = torch.complex128 if values.dtype == torch.complex128 else torch.complex64
        values = torch.view_as_real(values.to(wide)).reshape(-1)
    if values.dtype in (torch.float32, torch.float64):
        return values
    return values.double()


def scan(values: torch.Tensor) -> Part:
    """The part of a 1-D tensor (any dtype, any length), run by run."""
    return scan_runs(values[start:start + RUN] for start in range(0, values.numel(), RUN))


def scan_runs(runs: Iterable[torch.Tensor]) -> Part:
    """The part of consecutive 1-D runs of one tensor (each of at most ``RUN`` elements)."""
    part = Part()
    for run in runs:
        if run.dtype.is_floating_point:
            part = part.merge(_scan_float_run(run.detach()))
        else:  # runs after the first are shifted by the mean so far: deviations stay small
            part = part.merge(_scan_run(run, part.mean if part.finite else None))
    return part


def _scan_float_run(raw: torch.Tensor) -> Part:
    """A run of real floating values, with few passes and no allocation (``scratch.py``).

    min, max and zeros from the values (narrower floats widened exactly to float32 first);
    then sum and sum of squares of the values widened exactly to float64 (a float32 square is
    exact in float64), taken in float64; when the mean dominates the spread (the two sums
    would cancel), the run is summed again around its mean. A run holding NaN or Inf takes
    the general path."""
    n = raw.numel()
    if n == 0:
        return Part()
    if raw.dtype in (torch.float32, torch.float64):
        values = raw
    else:  # float16, bfloat16, fp8: exact subsets of float32
        values = scratch.buffer("float32", torch.float32, n).copy_(raw)
    a = values.numpy()
    lo, hi = float(a.min()), float(a.max())  # NaN propagates, an Inf shows
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return _scan_run(raw)
    zeros = 0 if lo > 0 or hi < 0 else int(np.count_nonzero(np.equal(a, 0, out=_bools(n))))
    if values.dtype == torch.float64:
        wide = values
    else:
        wide = scratch.buffer("float64", torch.float64, n).copy_(values)
    s1, s2 = float(wide.sum()), float(torch.dot(wide, wide))
    mean, m2 = s1 / n, s2 - s1 * s1 / n
    if not m2 * CANCEL >= s2:  # |mean| > ~4 std: the sums cancel, so sum the deviations instead
        dev = torch.sub(wide, mean, out=scratch.buffer("deviations", torch.float64, n))
        t1, t2 = float(dev.sum()), float(torch.dot(dev, dev))
        mean, m2 = mean + t1 / n, t2 - t1 * t1 / n
    return Part(n, n, zeros, 0, 0, mean, max(m2, 0.0), lo, hi)


def _bools(n: int) -> np.ndarray:
    return scratch.buffer("bools", torch.bool, n).numpy()


def _exact_range(raw: torch.Tensor, lo: float, hi: float) -> tuple[int, int]:
    """Integer min/max exactly (float64 rounds past 2**53), where torch can reduce the dtype."""
    if raw.dtype == torch.bool:
        return int(lo), int(hi)
    try:
        a, b = torch.aminmax(raw)
    except (RuntimeError, NotImplementedError):  # uint16/32/64: no CPU kernel in torch, numpy has one
        values = raw.numpy()
        return int(values.min()), int(values.max())
    return int(a), int(b)


def _scan_run(raw: torch.Tensor, shift: float | None = None) -> Part:
    c = widen(raw)
    n = c.numel()  # complex: real and imaginary parts count as two values
    if n == 0:
        return Part()
    zeros = n - int(torch.count_nonzero(c))
    lo, hi = (float(v) for v in torch.aminmax(c))
    nan = inf = 0
    if not (math.isfinite(lo) and math.isfinite(hi)):  # NaN propagates through aminmax, Inf shows
        finite = torch.isfinite(c)
        nan = int(torch.isnan(c).sum())
        kept = int(finite.sum())
        inf = n - nan - kept
        c = c[finite]
        if kept == 0:
            return Part(n, 0, zeros, nan, inf)
        lo, hi = (float(v) for v in torch.aminmax(c))
    if not (raw.is_floating_point() or raw.is_complex()):
        lo, hi = _exact_range(raw, lo, hi)
    return _moments(c, n, zeros, nan, inf, lo, hi, shift)


def _moments(c: torch.Tensor, n: int, zeros: int, nan: int, inf: int, lo: float, hi: float,
             shift: float | None) -> Part:
    """Sum and sum of squares of ``c - shift`` in float64 (shift: a value of the tensor near
    its others, so squares do not cancel), as (mean, m2)."""
    k = float(c[0]) if shift is None else shift
    x = c.double()
    x = x.sub_(k) if x is not c else x - k  # float32 input: in place on the fresh float64 copy
    s1 = float(x.sum())
    s2 = float(torch.dot(x, x))
    kept = c.numel()
    return Part(n, kept, zeros, nan, inf, k + s1 / kept, max(s2 - s1 * s1 / kept, 0.0), lo, hi)


# -- per-tensor results ---------------------------------------------------------------------------
@dataclass(frozen=True)
class TensorStats:
    key: str
    dtype: str
    shape: tuple[int, ...]
    numel: int
    min: float | int | None
    max: float | int | None
    mean: float | None
    std: float | None
    absmax: float | int | None
    zeros: int
    nan: int
    inf: int
    flags: tuple[str, ...] = ()
    dequantized: bool = False

    @classmethod
    def of(cls, key: str, dtype: torch.dtype, shape: tuple[int, ...], part: Part,
           dequantized: bool = False) -> "TensorStats":
        exact_ints = not (dtype.is_floating_point or dtype.is_complex) and not dequantized
        as_value = (lambda v: int(v)) if exact_ints else float
        if part.finite:
            lo, hi = as_value(part.min), as_value(part.max)
            mean, std, absmax = part.mean, math.sqrt(part.m2 / part.finite), max(abs(lo), abs(hi))
        else:
            lo = hi = mean = std = absmax = None
        made = cls(key, dtype_name(dtype), tuple(shape), part.numel, lo, hi, mean, std, absmax,
                   part.zeros, part.nan, part.inf, (), dequantized)
        return cls(**{**made.__dict__, "flags": flags_for(made)})

    def to_dict(self) -> dict[str, Any]:
        """The contract's fields (non-finite numbers as ``null``) plus numel, flags, dequantized."""
        return {"key": self.key, "dtype": self.dtype, "shape": list(self.shape), "min": _json(self.min),
                "max": _json(self.max), "mean": _json(self.mean), "std": _json(self.std),
                "absmax": _json(self.absmax), "zeros": self.zeros, "nan": self.nan, "inf": self.inf,
                "numel": self.numel, "flags": list(self.flags), "dequantized": self.dequantized}


def is_norm_weight(key: str, shape: tuple[int, ...]) -> bool:
    """``*.norm.weight``, ``ln_1.weight``, ``bn1.weight``, ``LayerNorm.weight`` / ``gamma``, 1-D."""
    parts = key.split(".")
    if len(shape) != 1 or len(parts) < 2 or parts[-1] not in ("weight", "gamma", "scale"):
        return False
    return bool(_NORM_MODULE.search(parts[-2]))


def flags_for(s: TensorStats) -> tuple[str, ...]:
    """The flag ids (``FLAGS``) that apply, worst first."""
    out = []
    if s.nan:
        out.append("nan")
    if s.inf:
        out.append("inf")
    if s.numel and s.zeros == s.numel:
        out.append("all-zero")
    elif s.numel > 1 and s.min is not None and s.min == s.max and s.nan == s.inf == 0:
        out.append("constant")
    if s.mean is not None and is_norm_weight(s.key, s.shape) and not NORM_RANGE[0] <= s.mean <= NORM_RANGE[1]:
        out.append("norm-far-from-1")
    return tuple(out)


@dataclass
class Stats:
    """``tensors`` in the checkpoint's key order; ``to_dict()`` is the CLI's JSON."""

    tensors: list[TensorStats]
    name: str = ""
    method: dict[str, str] = field(default_factory=lambda: dict(METHOD))

    def __iter__(self) -> Iterator[TensorStats]:
        return iter(self.tensors)

    def __len__(self) -> int:
        return len(self.tensors)

    def __getitem__(self, key: str) -> TensorStats:
        for s in self.tensors:
            if s.key == key:
                return s
        raise KeyError(key)

    @property
    def flagged(self) -> list[TensorStats]:
        return [s for s in self.tensors if s.flags]

    def to_dict(self) -> dict[str, Any]:
        return {"tensors": [s.to_dict() for s in self.tensors], "method": dict(self.method),
                "flags": dict(FLAGS)}

    def to_frame(self):
        import pandas as pd

        rows = [{**s.to_dict(), "shape": str(tuple(s.shape)), "flags": ", ".join(s.flags)} for s in self.tensors]
        return pd.DataFrame(rows, columns=["flags", "key", "dtype", "shape", "numel", "min", "max", "mean", "std",
                                           "absmax", "zeros", "nan", "inf", "dequantized"])


def _json(v: float | int | None) -> float | int | None:
    if v is None or isinstance(v, int):
        return v
    return v if math.isfinite(v) else None


# -- the scan ---------------------------------------------------------------------------------------
def stats(path_or_checkpoint: Any, keys: Iterable[str] | None = None, container: str | None = None,
          progress: Progress | None = None, *, dequantize: bool = False,
          workers: int | None = None) -> Stats:
    """Statistics of every tensor (or of ``keys``) of a checkpoint, read once, streamed.

    ``path_or_checkpoint``: a path (file, ``*.index.json``, DCP folder), a Checkpoint, a
    mapping of tensors or a module. ``progress(done_bytes, total_bytes, key)`` is called as
    tensors are read. ``dequantize``: fp8 weights with a ``*_scale_inv`` sibling are scanned
    as their dequantised float32 values.
    """
    from ckptlab.io.sources import as_checkpoint

    ck = as_checkpoint(path_or_checkpoint, container=container)
    chosen = ck.keys() if keys is None else list(keys)
    for key in chosen:
        if key not in ck:
            raise CheckpointError(f"no tensor named {key!r}", ck.path)
    plans = [_plan(ck, key, dequantize) for key in chosen]
    total = sum(p.nbytes for p in plans)
    done = 0
    if progress:
        progress(0, total, "")
    results: list[TensorStats] = []
    part = Part()
    for batch in run_ordered(_batches(_jobs(plans)), workers):
        for plan, index, last, got in batch:
            part = got if index == 0 else part.merge(got)
            done += plan.window_bytes(index)
            if last:
                results.append(TensorStats.of(plan.key, plan.dtype, plan.shape, part, plan.scale is not None))
                part = Part()
                plan.release()
        if progress and batch:
            progress(done, total, batch[-1][0].key)
    return Stats(results, ck.name)


@dataclass
class _Plan:
    key: str
    dtype: torch.dtype
    shape: tuple[int, ...]
    windows: list[Window]
    itemsize: int
    scale: _Cached | None = None  # the block scales of a dequantised fp8 weight

    @property
    def nbytes(self) -> int:
        return sum(w.count for w in self.windows) * self.itemsize

    def window_bytes(self, index: int) -> int:
        return self.windows[index].count * self.itemsize if self.windows else 0

    def release(self) -> None:
        """The tensor is done: drop what its scan read (a dequantised weight's block scales)."""
        if self.scale is not None:
            self.scale.clear()


def _plan(ck: Checkpoint, key: str, dequantize: bool) -> _Plan:
    info = ck.info(key)
    lazy = ck.lazy(key)
    scale_key = fp8.scale_key(ck, key) if dequantize else None
    if scale_key is None:
        return _Plan(key, info.dtype, info.shape, windows(lazy), info.dtype.itemsize)
    cols = info.shape[1]
    scale = _Cached(lambda: ck.tensor(scale_key))
    # fp8 bytes are 1/4 of the float32 values made from them: keep the window's float32 bounded
    return _Plan(key, info.dtype, info.shape, windows(lazy, max_bytes=4 * 2**20, align=fp8.BLOCK * cols),
                 info.dtype.itemsize, scale)


class _Cached:
    """A tensor read on first use and kept until ``clear()`` (shared by a weight's windows)."""

    def __init__(self, load: Callable[[], torch.Tensor]):
        self._load, self._value = load, None

    def __call__(self) -> torch.Tensor:
        if self._value is None:
            self._value = self._load()
        return self._value

    def clear(self) -> None:
        self._value = None


def _jobs(plans: list[_Plan]) -> Iterator[tuple[int, Callable[[], tuple[_Plan, int, bool, Part]]]]:
    """(bytes, job) for each window of each tensor, in order."""
    for plan in plans:
        if not plan.windows:  # an empty tensor
            yield 0, lambda plan=plan: (plan, 0, True, Part())
            continue
        if plan.scale is not None:
            plan.scale()  # read once, here, before the workers share it
        last = len(plan.windows) - 1
        for i, w in enumerate(plan.windows):
            yield (plan.window_bytes(i),
                   lambda plan=plan, i=i, w=w, end=i == last: (plan, i, end, _scan_window(plan, w)))


def _batches(jobs: Iterable[tuple[int, Callable[[], Any]]],
             min_bytes: int = BATCH_BYTES) -> Iterator[Callable[[], list]]:
    """Consecutive jobs grouped until they read ``min_bytes``: a checkpoint of thousands of
    small tensors (biases, norms) would otherwise pay a hand-over to a worker thread per tensor."""
    group: list[Callable[[], Any]] = []
    size = 0
    for nbytes, job in jobs:
        group.append(job)
        size += nbytes
        if size >= min_bytes:
            yield lambda group=group: [job() for job in group]
            group, size = [], 0
    if group:
        yield lambda group=group: [job() for job in group]


def _scan_window(plan: _Plan, w: Window) -> Part:
    if plan.scale is None:
        return scan_runs(runs(w, RUN))
    cols = plan.shape[1]
    return scan(fp8.dequantize(w.read().view(-1, cols), plan.scale(), w.start // cols).reshape(-1))
