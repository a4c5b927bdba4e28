"""``ckptlab.open``: a file, shard index or DCP folder read by its format's reader, then the
tensor mapping found inside it (the container), as a lazy ``Checkpoint``.

The one place that drives both readers and containers, so neither needs the other.
"""
from __future__ import annotations

from pathlib import Path

from ckptlab.io import containers, formats
from ckptlab.io.checkpoint import Checkpoint

__all__ = ["open"]


def open(path: str | Path, container: str | None = None) -> Checkpoint:  # noqa: A001 - the contract's name
    """Open a checkpoint file, shard index or distributed-checkpoint folder, lazily.

    ``container`` is the dotted path of the tensor mapping inside a nested file (e.g.
    ``"net"`` or ``"state_dict"``); ``None`` picks the one holding the most tensor bytes.
    """
    loaded = formats.read(path)
    return containers.to_checkpoint(loaded, path, container)
