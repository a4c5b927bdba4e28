"""Counts that say what they count.

"Parameters" of a file are not parameters: a state_dict also holds buffers (running means)
and integer tensors (``num_batches_tracked``, ``position_ids``). A file can only tell
floating from integer elements; a model definition also tells parameters from buffers.
And an optimizer's per-parameter state (one small dict of ``exp_avg``/``exp_avg_sq`` per
parameter) is one thing, the optimizer state, not dozens of places the weights might sit.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING


if TYPE_CHECKING:
    from ckptlab.io.checkpoint import Checkpoint

__all__ = ["Counts", "counts"]



@dataclass(frozen=True)
class Counts:
    """Elements of a checkpoint's tensors by kind; ``parameters``/``buffers`` when known."""

    tensors: int
    floating: int  # floating-point and complex elements
    integer: int  # integer and bool elements
    nbytes: int
    parameters: int | None = None  # elements of nn.Parameters (a model definition knows)
    buffers: int | None = None

    def to_dict(self) -> dict[str, int]:
        out = {"floating": self.floating, "integer": self.integer}
        if self.parameters is not None:
            out.update(parameters=self.parameters, buffers=self.buffers)
        return out

    def describe(self) -> str:
        """``"16 tensors: 1,652 floating-point + 8 integer elements"`` (parameters vs buffers
        when known)."""
        kinds = f"{self.floating:,} floating-point + {self.integer:,} integer elements"
        if self.parameters is not None:
            return f"{self.tensors} tensors: {self.parameters:,} parameter + {self.buffers:,} buffer elements ({kinds})"
        return f"{self.tensors} tensors: {kinds}"


def counts(ck: "Checkpoint") -> Counts:
    floating = integer = nbytes = 0
    params = getattr(ck, "parameter_keys", None)
    in_params = 0
    for key in ck.keys():
        info = ck.info(key)
        n = info.numel
        nbytes += info.nbytes
        if info.dtype.is_floating_point or info.dtype.is_complex:
            floating += n
        else:
            integer += n
        if params is not None and key in params:
            in_params += n
    if params is None:
        return Counts(len(ck), floating, integer, nbytes)
    return Counts(len(ck), floating, integer, nbytes, in_params, floating + integer - in_params)
