"""Time and peak memory of two models over input sizes, as a ratio a person can trust.

The attention-swap story's question: how do the two scale? ``compare_speed`` answers with the
median of interleaved per-pair time ratios and its spread, and a ``noisy`` flag when the
machine cannot tell; ``peak_memory`` with the bytes one pass creates.
"""
from __future__ import annotations

import math
import statistics
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from ckptlab.errors import CheckpointError
from ckptlab.models.inputs import default_sizes, example_input, flat_tensors
from ckptlab.models.load_check import ModelLike, loaded_model

__all__ = ["CPU_MEMORY_METHOD", "CUDA_MEMORY_METHOD", "SpeedComparison", "SpeedPoint", "compare_speed",
           "peak_memory"]


class _PeakTensorMemory(TorchDispatchMode):
    """Peak bytes of tensors created while active (storages tracked until freed).

    tracemalloc does not see torch's allocator and the profiler writes to stderr, so
    every op output's new storage is counted once and released by a weakref finalizer;
    outputs that share an argument's storage (views, in-place ops) are not new. Kernel-
    internal scratch buffers that are never an op's output are not seen.
    """

    def __init__(self):
        super().__init__()
        self.live = 0
        self.peak = 0
        self._tracked: dict[tuple, weakref.finalize] = {}

    def _release(self, key: tuple, nbytes: int) -> None:
        self.live -= nbytes
        self._tracked.pop(key, None)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        # A view, an in-place op or an out= op returns an argument's storage (weight.t() in
        # a linear layer, the input flattened): nothing new was allocated.
        held = {(str(t.device), t.untyped_storage().data_ptr()) for t in flat_tensors((args, kwargs or {}))}
        for t in flat_tensors(out):
            storage = t.untyped_storage()
            key = (str(t.device), storage.data_ptr())
            nbytes = storage.nbytes()
            if nbytes == 0 or key in self._tracked or key in held:
                continue
            self._tracked[key] = weakref.finalize(storage, self._release, key, nbytes)
            self.live += nbytes
            self.peak = max(self.peak, self.live)
        return out

    def __exit__(self, *exc):
        for final in list(self._tracked.values()):
            final.detach()
        self._tracked.clear()
        return super().__exit__(*exc)


CPU_MEMORY_METHOD = ("peak bytes of the tensors one forward creates, live at once (each op output's storage, "
                     "counted until freed: activations, attention maps); parameters and kernels' internal "
                     "scratch buffers are not counted")
CUDA_MEMORY_METHOD = "torch.cuda.max_memory_allocated during one forward, above the level before it"
MIN_SAMPLE_S = 0.005        # one timed sample runs the forward this long at least (timer noise)
FEWEST_PAIRS = 3            # the budget stops a size only after this many pairs (an IQR needs some)


def peak_memory(module: nn.Module, x: torch.Tensor, backward: bool = False,
                device: str | torch.device = "cpu") -> int:
    """Peak memory of one pass, in bytes (see ``CPU_MEMORY_METHOD``/``CUDA_MEMORY_METHOD``).

    Deterministic on CPU: the same pass gives the same bytes however busy the machine is,
    so it is measured once per input size, outside the timed runs.
    """
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        _pass(module, x, backward)
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - base
    with _PeakTensorMemory() as tracker:
        _pass(module, x, backward)
    return tracker.peak


@dataclass
class SpeedPoint:
    """Both models at one input size. Ratios are the second model's over the first's."""

    size: int
    input_shapes: dict[str, tuple[int, ...]]
    median_ms: dict[str, float]          # median time of one pass, per model
    peak_bytes: dict[str, int]
    ratio: float                         # median of the per-pair time ratios
    ratio_low: float                     # their 25th percentile
    ratio_high: float                    # their 75th percentile
    ratio_ci: tuple[float, float]        # 95% interval of the median (order statistics)
    memory_ratio: float
    pairs: int
    loops: int                           # passes per timed sample
    seconds: float
    stopped: str                         # "spread small" | "time budget" | "max pairs"

    @property
    def noisy(self) -> bool:
        """The interquartile range straddles 1: in a quarter or more of the pairs the
        other model was the faster one, so the machine is too noisy to tell."""
        return self.ratio_low <= 1.0 <= self.ratio_high


@dataclass
class SpeedComparison:
    """Two models at every input size measured; ``verdict`` says one point in words."""

    names: tuple[str, str]               # (baseline, compared)
    params: dict[str, int]
    points: list[SpeedPoint]
    memory_method: str
    device: str
    threads: int
    budget_s: float
    tolerance: float
    min_pairs: int = 10

    def point(self, size: int) -> SpeedPoint:
        return next(p for p in self.points if p.size == size)

    def verdict(self, point: SpeedPoint) -> str:
        """One sentence a person can act on, honest about noise and about few pairs."""
        base, other = self.names
        spread = f"interquartile range {point.ratio_low:.2f}-{point.ratio_high:.2f} over {point.pairs} pairs"
        few = (f" Only {point.pairs} pairs fit in the time budget (fewer than {self.min_pairs}): a rough figure."
               if point.pairs < self.min_pairs else "")
        if point.noisy:
            return (f"Too noisy to tell at size {point.size}: {other}/{base} time ratio {point.ratio:.2f}, "
                    f"{spread} includes 1 (in a quarter or more of the pairs the other model was faster); "
                    f"rerun when the machine is quieter.{few}")
        word = "faster" if point.ratio < 1 else "slower"
        factor = 1 / point.ratio if point.ratio < 1 else point.ratio
        return (f"At size {point.size}, {other} is {factor:.2f}x {word} than {base} "
                f"(time ratio {point.ratio:.2f}, {spread}).{few}")

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for point, row in zip(self.points, out["points"]):
            row["noisy"] = point.noisy
            row["verdict"] = self.verdict(point)
        return out


def compare_speed(
    models: Mapping[str, ModelLike],
    sizes: Sequence[int] | None = None,
    batch: int = 2,
    budget_s: float = 10.0,
    tolerance: float = 0.05,
    min_pairs: int = 10,
    max_pairs: int = 500,
    warmup: int = 3,
    device: str | torch.device = "cpu",
    backward: bool = False,
    threads: int | None = 1,
    seed: int = 0,
    allow_code: bool | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> SpeedComparison:
    """Time and peak memory of two models over input sizes, as a ratio you can trust.

    For each size both models are warmed up, then timed in pairs, interleaved and in
    alternating order (A B, B A, A B, ...), so drift and load hit both alike; each pair
    gives one ratio time(second) / time(first). Pairs are added until the median's 95%
    interval is within ``tolerance`` of it (after ``min_pairs``), ``max_pairs``, or the
    size's share of ``budget_s`` (seconds, over all sizes) runs out (after 3 pairs, so a slow
    model cannot overrun the budget tenfold; the verdict then says how few pairs there were). The result per size is
    the median ratio with its interquartile range; when that range includes 1 the point
    is ``noisy``. ``sizes``: spatial sides (conv models), sequence lengths (token models) or
    batch sizes (linear ones); by default three around the inferred input. Peak memory: see ``peak_memory``.

    ``threads`` (torch intra-op threads while measuring; ``None`` keeps the current
    setting) is 1 by default: on a shared machine several threads wait on each other and
    that noise swamps the difference (2 threads on 2 busy cores: 5x slower, ratios all over).
    The setting is process-wide while it runs (other sessions of a web app share it).
    ``progress(done, total)`` is called after each size.
    """
    if len(models) != 2:
        raise CheckpointError(f"compare_speed compares two models, got {len(models)}")
    device = torch.device(device)
    built = {name: loaded_model(m, None, allow_code, device) for name, m in models.items()}
    first = next(iter(built.values()))
    sizes = list(sizes) if sizes else default_sizes(first)
    if any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in sizes):
        raise CheckpointError(f"input sizes must be positive integers, got {sizes}")
    share = budget_s / len(sizes)
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(int(threads))
    try:
        used = torch.get_num_threads()
        points = []
        for size in sizes:
            points.append(_measure_size(built, size, batch, share, tolerance, min_pairs, max_pairs, warmup, device,
                                        backward, seed))
            if progress is not None:
                progress(len(points), len(sizes))
    finally:
        torch.set_num_threads(before)
    return SpeedComparison(
        names=tuple(built), params={n: sum(p.numel() for p in m.parameters()) for n, m in built.items()},
        points=points, memory_method=CUDA_MEMORY_METHOD if device.type == "cuda" else CPU_MEMORY_METHOD,
        device=str(device), threads=used, budget_s=budget_s, tolerance=tolerance, min_pairs=min_pairs)


def _measure_size(built: dict[str, nn.Module], size: int, batch: int, budget_s: float, tolerance: float,
                  min_pairs: int, max_pairs: int, warmup: int, device: torch.device, backward: bool,
                  seed: int) -> SpeedPoint:
    start = time.perf_counter()
    (a, model_a), (b, model_b) = built.items()
    feeds = {}
    for name, module in built.items():
        feeds[name] = example_input(module, size, batch, seed).to(device)
    for _ in range(max(warmup, 1)):
        for name, module in built.items():
            _checked(name, module, feeds[name], backward, device)
    single = min(_timed(module, feeds[name], 1, backward, device) for name, module in built.items())
    loops = max(1, min(1000, math.ceil(MIN_SAMPLE_S / max(single, 1e-9))))
    times: dict[str, list[float]] = {a: [], b: []}
    ratios: list[float] = []
    stopped = "max pairs"
    while len(ratios) < max_pairs:
        order = (a, b) if len(ratios) % 2 == 0 else (b, a)
        for name in order:
            times[name].append(_timed(built[name], feeds[name], loops, backward, device))
        ratios.append(times[b][-1] / times[a][-1])
        if len(ratios) >= max(min_pairs, 2):
            low, high = _median_interval(ratios)
            if high - low <= tolerance * statistics.median(ratios):
                stopped = "spread small"
                break
        if len(ratios) >= FEWEST_PAIRS and time.perf_counter() - start >= budget_s:
            stopped = "time budget"
            break
    q1, median, q3 = statistics.quantiles(ratios, n=4, method="inclusive") if len(ratios) > 1 else ratios * 3
    peaks = {name: peak_memory(module, feeds[name], backward, device) for name, module in built.items()}
    return SpeedPoint(
        size=size, input_shapes={n: tuple(x.shape) for n, x in feeds.items()},
        median_ms={n: statistics.median(t) * 1e3 for n, t in times.items()}, peak_bytes=peaks,
        ratio=statistics.median(ratios), ratio_low=q1, ratio_high=q3, ratio_ci=_median_interval(ratios),
        memory_ratio=peaks[b] / peaks[a] if peaks[a] else float("nan"), pairs=len(ratios), loops=loops,
        seconds=time.perf_counter() - start, stopped=stopped)


def _median_interval(values: Sequence[float]) -> tuple[float, float]:
    """Distribution-free ~95% interval of the median: the order statistics n/2 -+ 0.98 sqrt(n)."""
    ordered = sorted(values)
    n = len(ordered)
    k = max(0, math.floor(n / 2 - 0.98 * math.sqrt(n)))
    return ordered[k], ordered[min(n - 1, n - 1 - k)]


def _checked(name: str, module: nn.Module, x: torch.Tensor, backward: bool, device: torch.device) -> None:
    """One pass; a model that cannot take this input says so in one line."""
    try:
        _pass(module, x, backward)
    except Exception as exc:  # noqa: BLE001 - a model's own error, reported as one line
        first = (str(exc).strip().splitlines() or [""])[0]
        raise CheckpointError(f"model {name!r} fails on input {tuple(x.shape)}: {type(exc).__name__}: "
                              f"{first}") from None


def _pass(module: nn.Module, x: torch.Tensor, backward: bool) -> None:
    if backward:
        out = flat_tensors(module(x))
        sum(t.float().sum() for t in out if t.is_floating_point()).backward()
        module.zero_grad(set_to_none=True)
    else:
        with torch.no_grad():
            module(x)


def _timed(module: nn.Module, x: torch.Tensor, loops: int, backward: bool, device: torch.device) -> float:
    """Seconds per pass, averaged over ``loops`` passes in a row."""
    _sync(device)
    start = time.perf_counter()
    for _ in range(loops):
        _pass(module, x, backward)
    _sync(device)
    return (time.perf_counter() - start) / loops


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
