"""Which fed tensors have rows that are not pretrained: a head an adapter grew, a tensor re-initialised.

Known from the alignment alone (the adapted rows' specs and shapes), so the merge report names
them when it is made, and the fine-tune plan trains them at the new-parameter rate.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ckptlab.vocab import Status

__all__ = ["NewRows", "new_rows"]


@dataclass(frozen=True)
class NewRows:
    """A fed tensor an adapter gave new rows: rows ``kept..total-1`` of dim 0 are not
    pretrained (``kept`` 0: re-initialised whole)."""

    key: str
    kept: int
    total: int
    how: str

    def describe(self) -> str:
        if self.kept == 0:
            return f"{self.key}: all {self.total} rows new ({self.how})"
        return (f"{self.key}: rows {self.kept}..{self.total - 1} new ({self.how}), "
                f"rows 0..{self.kept - 1} pretrained")


def new_rows(alignment: Any) -> list[NewRows]:
    """The adapted rows of an alignment that grew dim 0 (pad or resize) or were re-initialised.

    A pad along another dim (RGB -> RGBA input channels) adds no output rows: the tensor's
    rows all stay pretrained, so it is not listed.
    """
    out = []
    for row in alignment.by_status(Status.ADAPTED):
        spec, target, source = row.adapt, row.target_shape, row.source_shape
        if spec is None or not target:
            continue
        if spec.op == "reinit":
            out.append(NewRows(row.target, 0, target[0], spec.describe()))
        elif (spec.op in ("pad", "resize") and source and len(source) == len(target)
              and target[0] > source[0]):
            out.append(NewRows(row.target, source[0], target[0], spec.describe()))
    return out
