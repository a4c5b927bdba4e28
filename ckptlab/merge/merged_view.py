"""The merge result as a lazy Checkpoint: what the written file would hold, computed on read.

The Values and Compare views scan and diff the merged result without writing it: each
target key reads as ``MergePlan.tensor(key)`` (adapted, converted or kept-target values made
on demand), except unchanged tensors (exact or renamed, same dtype), which read straight
from the source, so their file spans (and bounded mmap windows) still apply.
"""
from __future__ import annotations

from typing import Any

from ckptlab.vocab import Status
from ckptlab.io.checkpoint import Checkpoint
from ckptlab.io.formats.base import LazyTensor

__all__ = ["merged_checkpoint"]


def merged_checkpoint(plan: Any) -> Checkpoint:
    """Every target key of ``plan`` (a ``merge.MergePlan``) as a lazy Checkpoint."""
    tensors: dict[str, LazyTensor] = {}
    for key, e in plan.entries.items():
        if e.status in (Status.EXACT, Status.RENAMED) and plan.source.info(e.source).dtype == e.info.dtype:
            tensors[key] = plan.source.lazy(e.source)
        else:
            tensors[key] = LazyTensor(e.info, (lambda key=key: plan.tensor(key)))
    return Checkpoint(tensors, format="merged", metadata={"name": "merged"})
