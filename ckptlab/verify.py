"""Prove that a checkpoint loads into a model, behaves like its source, and what it costs.

Three questions, each answered without trusting the merge code that produced the file:

- ``load_report``: which keys would ``load_state_dict`` call missing, unexpected or
  mismatched? Computed from keys and shapes only (no tensor bytes; a model spec is
  built on the meta device).
- ``compare_function``: run source and target on the same seeded inputs and report the
  largest output difference. When the target takes more input channels (RGB -> RGBA),
  the source sees its channels and the new ones get zeros and several random fills.
- ``compare_speed``: median forward time, parameter count and peak activation memory of
  several models on one input shape (the attention-swap story's question).
"""
from __future__ import annotations

import copy
import statistics
import time
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from ckptlab.errors import CheckpointError
from ckptlab.sources import as_checkpoint
from ckptlab.targets import ModelCheckpoint, build_model

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
    first = (report["mismatched"][:1] and "first mismatched: {key} checkpoint {checkpoint_shape} vs model "
             "{model_shape}".format(**report["mismatched"][0])) or (
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
) -> FunctionCheck:
    """Run both models (eval mode, no grad) on the same seeded inputs and compare outputs.

    ``inputs``/``input_shape`` are the SOURCE's (inferred when not given). When the target
    takes more channels (dim 1), the source sees the target channels ``channel_map``
    (default: the first C) and the others are zeros, then ``random_fills`` random fills:
    for a channel padded with zero weights every fill must give the same output.
    """
    src = loaded_model(src_model, src_ckpt, allow_code)
    dst = loaded_model(dst_model, dst_ckpt, allow_code)
    if inputs is None:
        shape = tuple(input_shape) if input_shape is not None else infer_input_shape(src, n)
        inputs = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
    src_shape = tuple(inputs.shape)
    dst_shape = _target_input_shape(dst, src_shape)
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
            got = _outputs(dst(x))
            diff, same = _difference(expected, got)
            fills.append({"fill": name, "max_abs_diff": diff})
            worst, equal = max(worst, diff), equal and same
    return FunctionCheck(worst, equal, src_shape, dst_shape, fills)


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


def _difference(expected: list[torch.Tensor], got: list[torch.Tensor]) -> tuple[float, bool]:
    if len(expected) != len(got) or any(a.shape != b.shape for a, b in zip(expected, got)):
        raise CheckpointError(f"outputs differ in shape: source {[tuple(t.shape) for t in expected]} vs "
                              f"target {[tuple(t.shape) for t in got]}; compare models with the same outputs")
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
    every op output's storage is counted once and released by a weakref finalizer.
    Kernel-internal scratch buffers that are never an op's output are not seen.
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
        for t in _outputs(out):
            storage = t.untyped_storage()
            key = (str(t.device), storage.data_ptr())
            nbytes = storage.nbytes()
            if nbytes == 0 or key in self._tracked:
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


@dataclass
class SpeedRow:
    name: str
    median_ms: float
    params: int
    peak_bytes: int
    time_ratio: float       # median_ms / the first model's median_ms
    memory_ratio: float     # peak_bytes / the first model's peak_bytes


@dataclass
class SpeedReport:
    rows: list[SpeedRow]
    memory_method: str
    device: str
    input_shapes: dict[str, tuple[int, ...]]
    repeats: int
    threads: int

    def row(self, name: str) -> SpeedRow:
        return next(r for r in self.rows if r.name == name)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def compare_speed(
    models: Mapping[str, ModelLike],
    input_shape: Sequence[int] | None = None,
    inputs: torch.Tensor | None = None,
    repeats: int = 20,
    warmup: int = 3,
    device: str | torch.device = "cpu",
    backward: bool = False,
    seed: int = 0,
    allow_code: bool | None = None,
) -> SpeedReport:
    """Median forward time (ms), parameter count and peak memory of each model; ratios are
    against the first model. Rounds are interleaved (A, B, A, B, ...) so that drift of the
    machine affects every model alike. ``backward=True`` times forward + backward.

    Peak memory: on CUDA ``torch.cuda.max_memory_allocated`` above the level before the
    pass; on CPU the peak of live tensor bytes created during the pass (op outputs).
    """
    if not models:
        raise CheckpointError("compare_speed needs at least one model")
    device = torch.device(device)
    built = {name: loaded_model(m, None, allow_code, device) for name, m in models.items()}
    feeds = {}
    for name, module in built.items():
        if inputs is not None:
            feeds[name] = inputs.to(device)
        else:
            shape = tuple(input_shape) if input_shape is not None else infer_input_shape(module)
            feeds[name] = torch.randn(shape, generator=torch.Generator().manual_seed(seed)).to(device)
    for name in built:
        for _ in range(warmup):
            _step(built[name], feeds[name], backward, device)
    times: dict[str, list[float]] = {name: [] for name in built}
    for _ in range(repeats):
        for name in built:
            times[name].append(_step(built[name], feeds[name], backward, device))
    peaks = {name: _peak_bytes(built[name], feeds[name], backward, device) for name in built}
    first = next(iter(built))
    base_time = statistics.median(times[first])
    rows = []
    for name, module in built.items():
        median = statistics.median(times[name])
        rows.append(SpeedRow(
            name, median * 1e3, sum(p.numel() for p in module.parameters()), peaks[name],
            median / base_time if base_time else float("nan"),
            peaks[name] / peaks[first] if peaks[first] else float("nan")))
    method = ("torch.cuda.max_memory_allocated" if device.type == "cuda"
              else "peak live bytes of tensors created in the pass (TorchDispatchMode)")
    return SpeedReport(rows, method, str(device), {k: tuple(v.shape) for k, v in feeds.items()},
                       repeats, torch.get_num_threads())


def _pass(module: nn.Module, x: torch.Tensor, backward: bool) -> None:
    if backward:
        out = _outputs(module(x))
        sum(t.float().sum() for t in out if t.is_floating_point()).backward()
        module.zero_grad(set_to_none=True)
    else:
        with torch.no_grad():
            module(x)


def _step(module: nn.Module, x: torch.Tensor, backward: bool, device: torch.device) -> float:
    _sync(device)
    start = time.perf_counter()
    _pass(module, x, backward)
    _sync(device)
    return time.perf_counter() - start


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_bytes(module: nn.Module, x: torch.Tensor, backward: bool, device: torch.device) -> int:
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
