"""Prove that a checkpoint loads into a model, behaves like its source, and what it costs.

Three questions, each answered without trusting the merge code that produced the file:

- ``load_report``: which keys would ``load_state_dict`` call missing, unexpected or
  mismatched? Computed from keys and shapes only (no tensor bytes; a model spec is
  built on the meta device).
- ``compare_function``: run source and target on the same seeded inputs and report the
  largest output difference. When the target takes more input channels (RGB -> RGBA),
  the source sees its channels and the new ones get zeros and several random fills.
- ``compare_speed``: time and peak memory of two models over input sizes (the
  attention-swap story's question: how do they scale?), as the median of interleaved
  per-pair ratios with its spread, and a ``noisy`` flag when the machine cannot tell.
"""
from __future__ import annotations

import copy
import math
import statistics
import time
import weakref
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from ckptlab.errors import CheckpointError
from ckptlab.io.sources import as_checkpoint
from ckptlab.io.model_target import ModelCheckpoint, build_model

ModelLike = nn.Module | str | ModelCheckpoint


# -- the load report ------------------------------------------------------------------
def load_report(ckpt: Any, model: ModelLike, allow_code: bool | None = None) -> dict[str, list]:
    """What ``model.load_state_dict(ckpt, strict=True)`` would complain about.

    ``{"missing": [model keys], "unexpected": [checkpoint keys], "mismatched":
    [{"key", "checkpoint_shape", "model_shape"}]}``; all empty means a strict load works.
    """
    source = as_checkpoint(ckpt, allow_code=allow_code)
    expected = _meta_state(model, allow_code)
    missing = [key for key in expected if key not in source]
    unexpected = [key for key in source.keys() if key not in expected]
    mismatched = []
    for key, shape in expected.items():
        if key in source and tuple(source.info(key).shape) != shape:
            mismatched.append({"key": key, "checkpoint_shape": list(source.info(key).shape),
                               "model_shape": list(shape)})
    return {"missing": missing, "unexpected": unexpected, "mismatched": mismatched}


def _meta_state(model: ModelLike, allow_code: bool | None) -> dict[str, tuple[int, ...]]:
    """Key -> shape of a model's state_dict, without building it for real."""
    if isinstance(model, ModelCheckpoint):
        return {k: tuple(model.info(k).shape) for k in model.keys()}
    if isinstance(model, str):
        model = build_model(model, allow_code=allow_code, device="meta")
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def describe_misfit(report: Mapping[str, list]) -> str:
    """One line summing up a load report (for errors and the CLI's text output)."""
    parts = [f"{len(report[k])} {k}" for k in ("missing", "unexpected", "mismatched") if report[k]]
    if not parts:
        return "loads strictly: no missing, unexpected or mismatched keys"
    m = report["mismatched"][0] if report["mismatched"] else None  # shapes as tuples, as everywhere else
    first = (m and f"first mismatched: {m['key']} checkpoint {tuple(m['checkpoint_shape'])} vs model "
             f"{tuple(m['model_shape'])}") or (
        report["missing"][:1] and f"first missing: {report['missing'][0]}") or (
        f"first unexpected: {report['unexpected'][0]}")
    return ", ".join(parts) + f" ({first})"


# -- building and loading -------------------------------------------------------------
def loaded_model(model: ModelLike, ckpt: Any = None, allow_code: bool | None = None,
                 device: str | torch.device | None = None) -> nn.Module:
    """A real model in eval mode holding ``ckpt``'s tensors (strictly), never the caller's
    own module: a given module is copied first, so verification changes nothing."""
    if isinstance(model, ModelCheckpoint):
        module = model.build("cpu")
    elif isinstance(model, str):
        module = build_model(model, allow_code=allow_code, device="cpu")
    else:
        module = copy.deepcopy(model)
    if ckpt is not None:
        source = as_checkpoint(ckpt, allow_code=allow_code)
        report = load_report(source, module)
        if any(report.values()):
            raise CheckpointError(f"checkpoint does not fit {type(module).__name__}: {describe_misfit(report)}",
                                  source.path)
        module.load_state_dict({key: source.tensor(key) for key in source.keys()}, strict=True)
    if device is not None:
        module = module.to(device)
    return module.eval()


def infer_input_shape(model: nn.Module, n: int = 4) -> tuple[int, ...]:
    """An input shape from the model's first conv (else its first linear layer).

    Convolutions are preferred because image models often hold small linear layers
    (embeddings, style projections) before their stem in module order.
    """
    modules = list(model.modules())
    for module in modules:
        if isinstance(module, nn.modules.conv._ConvNd):
            spatial = {1: (32,), 2: (32, 32), 3: (16, 16, 16)}[len(module.kernel_size)]
            return (n, module.in_channels, *spatial)
    for module in modules:
        if isinstance(module, nn.Linear):
            return (n, module.in_features)
    raise CheckpointError(f"cannot infer an input shape for {type(model).__name__} "
                          "(no conv or linear layer): pass input_shape or inputs")


def _outputs(value: Any) -> list[torch.Tensor]:
    return [t for t in tree_flatten(value)[0] if isinstance(t, torch.Tensor)]


# -- function preservation ------------------------------------------------------------
@dataclass
class FunctionCheck:
    """Largest |source - target| output difference over every input fill tried."""

    max_abs_diff: float
    equal: bool                     # every output bit for bit equal, for every fill
    source_input_shape: tuple[int, ...]
    target_input_shape: tuple[int, ...]
    fills: list[dict[str, Any]] = field(default_factory=list)   # {"fill", "max_abs_diff"}
    outputs: str = "every output, whole"    # which outputs were compared (a grown head: the kept rows)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def compare_function(
    src_model: ModelLike,
    src_ckpt: Any,
    dst_model: ModelLike,
    dst_ckpt: Any,
    inputs: torch.Tensor | None = None,
    input_shape: Sequence[int] | None = None,
    channel_map: Sequence[int] | None = None,
    seed: int = 0,
    n: int = 4,
    random_fills: int = 3,
    allow_code: bool | None = None,
    kept_rows: Collection[int] | None = None,
) -> FunctionCheck:
    """Run both models (eval mode, no grad) on the same seeded inputs and compare outputs.

    ``inputs``/``input_shape`` are the SOURCE's (inferred when not given). When the target
    takes more channels (dim 1), the source sees the target channels ``channel_map``
    (default: the first C) and the others are zeros, then ``random_fills`` random fills:
    for a channel padded with zero weights every fill must give the same output. When the
    target's output is wider along one non-batch dim (a head grown from 10 to 100 classes),
    only the kept rows 0..N-1 are compared, and ``outputs`` says so; ``kept_rows``, when
    given, are the row counts the adapters kept (10 for a 10 -> 100 head): outputs of
    another width are refused, since they cannot be the grown head's.
    """
    src = loaded_model(src_model, src_ckpt, allow_code)
    dst = loaded_model(dst_model, dst_ckpt, allow_code)
    if inputs is None:
        shape = tuple(input_shape) if input_shape is not None else infer_input_shape(src, n)
        inputs = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
    src_shape = tuple(inputs.shape)
    # token ids (integer inputs: GPT, BERT) have no channels to map: both models get them as they are
    dst_shape = _target_input_shape(dst, src_shape) if inputs.is_floating_point() else src_shape
    feed = list(channel_map) if channel_map is not None else list(range(src_shape[1]))
    if len(feed) != src_shape[1] or len(set(feed)) != len(feed) or not all(0 <= c < dst_shape[1] for c in feed):
        raise CheckpointError(f"channel_map {feed} must name {src_shape[1]} distinct target channels "
                              f"of {dst_shape[1]}")
    extra = [c for c in range(dst_shape[1]) if c not in feed]
    fill_names = ["zeros"] + [f"random-{i}" for i in range(random_fills)] if extra else ["none"]
    with torch.no_grad():
        expected = _outputs(src(inputs))
        fills, worst, equal = [], 0.0, True
        for i, name in enumerate(fill_names):
            x = torch.zeros(dst_shape, dtype=inputs.dtype)
            x[:, feed] = inputs
            if name.startswith("random"):
                gen = torch.Generator().manual_seed(seed + 1 + i)
                x[:, extra] = torch.randn((dst_shape[0], len(extra), *dst_shape[2:]), generator=gen)
            kept, got, compared = _kept_outputs(expected, _outputs(dst(x)), kept_rows)
            diff, same = _difference(kept, got)
            fills.append({"fill": name, "max_abs_diff": diff})
            worst, equal = max(worst, diff), equal and same
    return FunctionCheck(worst, equal, src_shape, dst_shape, fills, compared)


def _target_input_shape(dst: nn.Module, src_shape: tuple[int, ...]) -> tuple[int, ...]:
    """The source's input shape with the target's channel count (when it can be found)."""
    try:
        channels = infer_input_shape(dst, src_shape[0])[1]
    except CheckpointError:
        return src_shape
    if channels < src_shape[1]:
        raise CheckpointError(f"target takes {channels} input channels, fewer than the source's "
                              f"{src_shape[1]}: pass inputs the target accepts")
    return (src_shape[0], channels, *src_shape[2:])


def _kept_outputs(expected: list[torch.Tensor], got: list[torch.Tensor], kept_rows: Collection[int] | None = None,
                  ) -> tuple[list[torch.Tensor], list[torch.Tensor], str]:
    """The outputs to compare, and which they are. A head grown (or cut) along one non-batch
    dim keeps rows 0..N-1 of the smaller one: those are compared, the new ones are not."""
    refuse = CheckpointError(f"outputs differ in shape: source {[tuple(t.shape) for t in expected]} vs target "
                             f"{[tuple(t.shape) for t in got]}; compare models with the same outputs")
    if len(expected) != len(got):
        raise refuse
    kept_a, kept_b, notes = [], [], []
    for i, (a, b) in enumerate(zip(expected, got)):
        if a.shape != b.shape:
            differ = [d for d in range(a.dim()) if a.dim() == b.dim() and a.shape[d] != b.shape[d]]
            if len(differ) != 1 or differ[0] == 0:
                raise refuse
            dim, n = differ[0], min(a.shape[differ[0]], b.shape[differ[0]])
            if kept_rows is not None and n not in kept_rows:
                kept = ", ".join(map(str, sorted(kept_rows))) or "none"
                raise CheckpointError(f"outputs differ in shape: source {tuple(a.shape)} vs target {tuple(b.shape)}, "
                                      f"and {n} is not a row count the adapters kept ({kept}): these outputs are "
                                      "not the grown tensor's; give a source model whose output is that layer's")
            a, b = a.narrow(dim, 0, n), b.narrow(dim, 0, n)
            where = f"output {i} " if len(expected) > 1 else "the output"
            notes.append(f"{where} rows 0..{n - 1} of dim {dim} only (source {expected[i].shape[dim]}, target "
                         f"{got[i].shape[dim]}: the kept rows; the others are new)")
        kept_a.append(a)
        kept_b.append(b)
    return kept_a, kept_b, "; ".join(notes) or "every output, whole"


def _difference(expected: list[torch.Tensor], got: list[torch.Tensor]) -> tuple[float, bool]:
    diff, same = 0.0, True
    for a, b in zip(expected, got):
        if a.numel():
            diff = max(diff, (a.double() - b.double()).abs().max().item())
        same = same and torch.equal(a, b)
    return diff, same


# -- speed and memory -----------------------------------------------------------------
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
        held = {(str(t.device), t.untyped_storage().data_ptr()) for t in _outputs((args, kwargs or {}))}
        for t in _outputs(out):
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


def token_vocab(model: nn.Module) -> int | None:
    """The vocabulary of a model that takes token ids (no conv, and an Embedding before any
    linear layer: GPT, BERT), else None. An image model's embeddings (a style table) do
    not count: its convs come first."""
    modules = list(model.modules())
    if any(isinstance(m, nn.modules.conv._ConvNd) for m in modules):
        return None
    for module in modules:
        if isinstance(module, nn.Embedding):
            return module.num_embeddings
        if isinstance(module, nn.Linear):
            return None
    return None


def default_sizes(model: nn.Module) -> list[int]:
    """Three input sizes around the inferred one: spatial sides for a conv model, sequence
    lengths for a token model, batch sizes for a model that starts with a linear layer."""
    if token_vocab(model) is not None:
        return [16, 64, 256]
    shape = infer_input_shape(model)
    if len(shape) == 2:
        return [1, 16, 64]
    side = shape[2]
    return [side // 2, side, side * 2]


def input_shape_for(model: nn.Module, size: int, batch: int = 2) -> tuple[int, ...]:
    """The input of ``model`` at ``size``: ``(batch, C, size, size)`` for a 2-D conv model
    (every spatial dim = size), ``(batch, size)`` token ids for a token model (size =
    sequence length), ``(size, in_features)`` for a linear one (size = batch)."""
    if token_vocab(model) is not None:
        return (batch, size)
    base = infer_input_shape(model, batch)
    if len(base) == 2:
        return (size, base[1])
    return (base[0], base[1], *([size] * (len(base) - 2)))


def _example_input(model: nn.Module, size: int, batch: int, seed: int) -> torch.Tensor:
    """Seeded random input at ``size``: floats, or token ids below the model's vocabulary."""
    gen = torch.Generator().manual_seed(seed)
    shape = input_shape_for(model, size, batch)
    vocab = token_vocab(model)
    if vocab is not None:
        return torch.randint(0, vocab, shape, generator=gen)
    return torch.randn(shape, generator=gen)


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
        feeds[name] = _example_input(module, size, batch, seed).to(device)
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
        out = _outputs(module(x))
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
