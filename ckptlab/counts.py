"""Counts that say what they count.

"Parameters" of a file are not parameters: a state_dict also holds buffers (running means)
and integer tensors (``num_batches_tracked``, ``position_ids``). A file can only tell
floating from integer elements; a model definition also tells parameters from buffers.
And an optimizer's per-parameter state (one small dict of ``exp_avg``/``exp_avg_sq`` per
parameter) is one thing, the optimizer state, not dozens of places the weights might sit.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ckptlab.containers import OPTIMIZER_NAMES

if TYPE_CHECKING:
    from ckptlab.checkpoint import Checkpoint
    from ckptlab.containers import Candidate

_STATE_ENTRY = re.compile(r"^(?P<owner>.*?)\.?state\.\d+$")  # optimizer.state.<param id>


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


@dataclass(frozen=True)
class OptimizerState:
    """One optimizer's per-parameter state, found as many small candidates."""

    path: str  # where the optimizer state sits, e.g. "optimizer_state" or "optimizer_states.0"
    entries: int  # per-parameter entries
    tensors: int
    nbytes: int


def split_optimizer(candidates: "tuple[Candidate, ...] | list[Candidate]"
                    ) -> "tuple[list[Candidate], list[OptimizerState]]":
    """The candidates that could hold weights, and the optimizer states grouped one each."""
    weights: list = []
    groups: dict[str, list] = {}
    for c in candidates:
        owner = _optimizer_owner(c.path)
        if owner is None:
            weights.append(c)
        else:
            groups.setdefault(owner, []).append(c)
    states = [OptimizerState(path, len(members), sum(m.tensors for m in members), sum(m.nbytes for m in members))
              for path, members in groups.items()]
    return weights, states


def _optimizer_owner(path: str) -> str | None:
    """Where the optimizer sits for a candidate inside one (``None``: not optimizer state)."""
    parts = path.split(".") if path else []
    for i, part in enumerate(parts):
        if part.lower() in OPTIMIZER_NAMES or "optim" in part.lower():
            m = _STATE_ENTRY.match(".".join(parts[i:]))
            owner = parts[: i + 1]
            if m and m.group("owner"):  # optimizer_states.0.state.3 -> optimizer_states.0
                owner = parts[:i] + m.group("owner").split(".")
            return ".".join(owner)
    m = _STATE_ENTRY.match(path)
    return (m.group("owner") or "(top level)") if m else None
