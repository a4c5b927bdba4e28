"""The words every face of ckptlab shares: row statuses, auto levels, confidences, op names.

Torch-free and import-free, so the CLI's parsers, the core and the app all spell them from one
place (a CLI ``--auto`` choice, a row's status and the app's status filter can never drift apart).
"""
from __future__ import annotations

from enum import Enum

__version__ = "0.1.0"

__all__ = [
    "Status", "STATUSES", "FED_STATUSES", "AUTO_LEVELS", "CONFIDENCES", "AUTO_APPLIES",
    "RULE_KINDS", "ADAPT_OPS", "ADAPT_FILLS", "LOSSY_ADAPT_OPS", "ON_MISMATCH",
]


class Status(str, Enum):
    """A row's status. A ``str`` subclass: ``Status.EXACT == "exact"`` and JSON shows ``"exact"``."""

    EXACT = "exact"          # same key, same shape
    RENAMED = "renamed"      # a rule, the explicit map or an accepted suggestion mapped it
    ADAPTED = "adapted"      # a shape adapter made it fit
    CONVERTED = "converted"  # a conversion computed it
    MISMATCH = "mismatch"    # a source tensor is mapped but its shape does not fit
    MISSING = "missing"      # a target key with no source
    UNUSED = "unused"        # a source key that feeds nothing
    CONFLICT = "conflict"    # two or more sources map to one target

    def __str__(self) -> str:  # f"{status}" reads "exact", not "Status.EXACT"
        return self.value

    @property
    def fed(self) -> bool:
        """True when the row's target gets a value from the source."""
        return self in _FED


STATUSES = tuple(s.value for s in Status)
_FED = (Status.EXACT, Status.RENAMED, Status.ADAPTED, Status.CONVERTED)
FED_STATUSES = tuple(s.value for s in _FED)

AUTO_LEVELS = ("none", "high", "all")
CONFIDENCES = ("high", "medium", "low")
# which suggestion confidences each ``auto`` level applies (``low`` never: a user accepts it)
AUTO_APPLIES = {"none": (), "high": ("high",), "all": ("high", "medium")}

RULE_KINDS = ("strip_prefix", "add_prefix", "replace", "drop", "keep")
ADAPT_OPS = ("pad", "truncate", "resize", "sum", "reinit")
ADAPT_FILLS = ("zeros", "mean", "init", "repeat")
LOSSY_ADAPT_OPS = ("truncate", "resize", "sum")  # drop or blend trained values
ON_MISMATCH = ("error", "keep-target")
