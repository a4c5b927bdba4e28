"""Does a remapped model behave like its source? Outputs compared on the same seeded inputs.

``compare_function`` runs source and target (eval mode, no grad) and reports the largest
output difference. When the target takes more input channels (RGB -> RGBA), the source sees
its channels and the new ones get zeros and several random fills; when the target's output
is wider (a head grown from 10 to 100 classes), only the kept rows are compared.
"""
from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from ckptlab.errors import CheckpointError
from ckptlab.models.inputs import flat_tensors, infer_input_shape
from ckptlab.models.load_check import ModelLike, loaded_model

__all__ = ["FunctionCheck", "compare_function"]


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
        expected = flat_tensors(src(inputs))
        fills, worst, equal = [], 0.0, True
        for i, name in enumerate(fill_names):
            x = torch.zeros(dst_shape, dtype=inputs.dtype)
            x[:, feed] = inputs
            if name.startswith("random"):
                gen = torch.Generator().manual_seed(seed + 1 + i)
                x[:, extra] = torch.randn((dst_shape[0], len(extra), *dst_shape[2:]), generator=gen)
            kept, got, compared = _keptflat_tensors(expected, flat_tensors(dst(x)), kept_rows)
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


def _keptflat_tensors(expected: list[torch.Tensor], got: list[torch.Tensor], kept_rows: Collection[int] | None = None,
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
