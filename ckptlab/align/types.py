"""The results of matching: ``Row``, ``Suggestion``, ``Alignment``.

A leaf: every matching stage (the matcher, each suggestion stage, the warnings) imports these
types and this module imports none of them, so results flow one way.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from ckptlab.io.checkpoint import Checkpoint
from ckptlab.recipe.groups import Group
from ckptlab.recipe.adapt_spec import AdaptSpec
from ckptlab.recipe.model import Recipe
from ckptlab.recipe.parsing import quote
from ckptlab.vocab import AUTO_LEVELS, CONFIDENCES, FED_STATUSES, STATUSES, Status  # noqa: F401

__all__ = ["Row", "Suggestion", "Alignment", "Status", "STATUSES", "FED_STATUSES", "AUTO_LEVELS",
           "CONFIDENCES", "EXPLICIT", "Shape", "shape_text"]

EXPLICIT = "explicit"

Shape = tuple[int, ...]


def shape_text(shape: Shape | None) -> str:
    """``(8, 3, 3, 3)``; ``()`` for a scalar; ``""`` for no tensor."""
    return "" if shape is None else str(tuple(shape))


@dataclass(frozen=True)
class Row:
    """One target key (or, with ``target=None``, one source key that feeds nothing)."""

    target: str | None
    source: str | None
    status: str
    target_shape: Shape | None
    source_shape: Shape | None
    target_dtype: str | None
    source_dtype: str | None
    reason: str
    sources: tuple[str, ...] = ()
    adapt: AdaptSpec | None = None
    convert: Group | None = None  # the conversion group of a converted row
    kept: bool = False  # a missing target the recipe keeps on purpose (keep_target): not a problem

    @property
    def fed(self) -> bool:
        return self.status in FED_STATUSES

    def to_dict(self) -> dict[str, Any]:
        """The Contract's row: shapes as lists (JSON), ``None`` where there is no tensor.

        ``source`` is the one source key that feeds the row; a row fed by several (a ``cat``
        of q/k/v, a ``conflict``) has ``source: null`` and also ``sources``, every one in the
        order they feed it, so a consumer needs not parse ``reason``. Rows with at most one
        source carry exactly the contract's fields."""
        out = {
            "target": self.target,
            "source": self.source,
            "status": self.status,
            "target_shape": None if self.target_shape is None else list(self.target_shape),
            "source_shape": None if self.source_shape is None else list(self.source_shape),
            "reason": self.reason,
        }
        if len(self.sources) > 1:
            out["sources"] = list(self.sources)
        return out


@dataclass(frozen=True)
class Suggestion:
    """A ready recipe fragment: a rule dict, ``{"map": ...}``, ``{"adapt": ...}`` or
    ``{"container": ...}``; ``keys`` is how many keys it explains. ``caveat``: what the guess
    assumed that shapes cannot show (an order inside a fused tensor): once applied, it stands
    as a warning of the alignment, so a guess is never silent and ``--strict`` refuses it."""

    rule: dict
    confidence: str
    reason: str
    keys: int = 0
    applied: bool = False
    caveat: str | None = None

    @property
    def label(self) -> str:
        """How rows name it in their reasons: ``suggested, high``."""
        return f"suggested, {self.confidence}"

    def describe(self) -> str:
        """One line for a person: ``add_prefix 'attention_map.'``, ``adapt fc.weight: pad dim 0``."""
        from ckptlab.recipe.rules import Rule

        rule = self.rule
        if "container" in rule:
            return f"container {quote(rule['container'])}"
        if "map" in rule:
            return ", ".join(f"map {quote(t)} <- {quote(s)}" for t, s in rule["map"].items())
        if "adapt" in rule:
            return ", ".join(f"adapt {quote(t)}: {AdaptSpec.from_dict(s, t).describe()}"
                             for t, s in rule["adapt"].items())
        if "convert" in rule:
            from ckptlab.recipe.conversion import Conversion

            entries = [Conversion.from_dict(e, i).describe() for i, e in enumerate(rule["convert"], start=1)]
            more = f" (+{len(entries) - 2} more)" if len(entries) > 2 else ""
            return "convert " + "; ".join(entries[:2]) + more
        return Rule.from_dict(rule).describe()

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "confidence": self.confidence, "reason": self.reason}


@dataclass
class Alignment:
    """The answer of ``align``: rows in target order, then the unused source keys."""

    source: Checkpoint
    target: Checkpoint
    recipe: Recipe
    effective_recipe: Recipe
    rows: list[Row]
    suggestions: list[Suggestion] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # the loud one among ``warnings``, set only when few or no target keys are fed (story 5's
    # empty load); every other warning is a warning, not an alarm
    fed_warning: str | None = None

    @cached_property
    def strict_problems(self) -> list[str]:
        """What keeps this job from being strict-clean (``ckptlab.align.strict``), one line each."""
        from ckptlab.align.strict import strict_problems

        return strict_problems(self.rows, self.warnings, self.effective_recipe)

    @property
    def strict_ok(self) -> bool:
        """True when every key is accounted for on purpose and no warning stands (``--strict``)."""
        return not self.strict_problems

    @property
    def warning(self) -> str | None:
        """The first warning (the loudest: few or no keys fed comes first), or None."""
        return self.warnings[0] if self.warnings else None

    @property
    def groups(self) -> list[Group]:
        """The conversion groups that feed at least one row, in row order."""
        seen: dict[int, Group] = {}
        for row in self.rows:
            if row.convert is not None and row.status == Status.CONVERTED:
                seen.setdefault(id(row.convert), row.convert)
        return list(seen.values())

    @property
    def summary(self) -> dict[str, int]:
        """Count of rows by status; every status present, zeros included."""
        counts = dict.fromkeys(STATUSES, 0)
        for row in self.rows:
            counts[row.status] += 1
        return counts

    @property
    def fed(self) -> list[str]:
        """Target keys that get a source tensor (exact + renamed + adapted)."""
        return [row.target for row in self.rows if row.status in FED_STATUSES]

    @property
    def unmatched_adapt(self) -> list[str]:
        """Recipe ``adapt`` entries naming no target key: a typo there would otherwise fix
        nothing, silently."""
        return [key for key in self.effective_recipe.adapt if key not in self.target]

    def row(self, target_key: str) -> Row:
        for row in self.rows:
            if row.target == target_key:
                return row
        raise KeyError(f"no row for target key {target_key!r}")

    def by_status(self, *statuses: str) -> list[Row]:
        return [row for row in self.rows if row.status in statuses]

    def to_frame(self):
        """A pandas DataFrame for the app: one line per row, shapes as strings."""
        import pandas as pd

        columns = ["target", "target_shape", "target_dtype", "source", "source_shape", "source_dtype",
                   "status", "reason"]
        records = [{
            "target": row.target or "",
            "target_shape": shape_text(row.target_shape),
            "target_dtype": row.target_dtype or "",
            "source": row.source if row.source is not None else ", ".join(row.sources),
            "source_shape": shape_text(row.source_shape),
            "source_dtype": row.source_dtype or "",
            "status": row.status,
            "reason": row.reason,
        } for row in self.rows]
        return pd.DataFrame.from_records(records, columns=columns)

    def to_dict(self) -> dict[str, Any]:
        """The CLI's JSON: ``{"rows", "summary", "suggestions", "warning", "warnings"}``."""
        return {
            "rows": [row.to_dict() for row in self.rows],
            "summary": self.summary,
            "suggestions": [s.to_dict() for s in self.suggestions],
            "warning": self.warning,
            "warnings": list(self.warnings),
        }
