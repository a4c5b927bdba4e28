"""Report: what a merge (or a warm start) did to every target key, and why.

One row per target key, the source keys that fed nothing, the recipe that produced it and
any warning. It knows nothing of files (``outputs`` is optional), so ``remap`` and
``load_into`` share it; the CLI and the app only render it.
"""
from __future__ import annotations

import io
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ckptlab.io.writers.textfile import check_writable, write_text_atomic
from ckptlab.vocab import STATUSES

__all__ = ["REPORT_SUFFIXES", "ROW_FIELDS", "ReportRow", "Report", "FORMULA_STARTS", "csv_cell",
    "check_report_path"]

REPORT_SUFFIXES = (".json", ".csv")
ROW_FIELDS = ("target", "source", "status", "adapter", "source_dtype", "target_dtype", "note")


@dataclass(frozen=True)
class ReportRow:
    """One target key: where its value came from (``source`` None: the target's own)."""

    target: str
    source: str | None
    status: str
    adapter: str = ""
    source_dtype: str = ""
    target_dtype: str = ""
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Report:
    rows: list[ReportRow]
    unused: list[str] = field(default_factory=list)
    recipe: dict[str, Any] = field(default_factory=dict)
    warning: str | None = None
    outputs: list[str] = field(default_factory=list)
    aliases: list[list[str]] = field(default_factory=list)
    new_rows: list[str] = field(default_factory=list)   # fed keys an adapter grew or re-initialised
    extras_not_kept: list[str] = field(default_factory=list)  # "key (why)": asked to keep, could not
    extras_converted: list[str] = field(default_factory=list)  # "key (how)": kept as another type (numpy)
    warnings: list[str] = field(default_factory=list)  # every warning of the alignment (warning = the first)

    # -- views ------------------------------------------------------------------------
    def _keys(self, *statuses: str) -> list[str]:
        return [r.target for r in self.rows if r.status in statuses]

    @property
    def loaded(self) -> list[str]:
        """Target keys that got a source tensor as it was (exact + renamed)."""
        return self._keys("exact", "renamed")

    @property
    def adapted(self) -> list[str]:
        return self._keys("adapted")

    @property
    def converted(self) -> list[str]:
        """Target keys computed from source tensors by a recipe's conversion."""
        return self._keys("converted")

    @property
    def missing(self) -> list[str]:
        """Target keys with no source: they keep the target's own value."""
        return self._keys("missing")

    @property
    def pretrained(self) -> list[str]:
        """Target keys that carry source weights (loaded + adapted + converted)."""
        return self._keys("exact", "renamed", "adapted", "converted")

    @property
    def summary(self) -> dict[str, int]:
        """Every status -> how many keys have it (unused: source keys)."""
        counts = dict.fromkeys(STATUSES, 0)
        for r in self.rows:
            counts[r.status] = counts.get(r.status, 0) + 1
        counts["unused"] = len(self.unused)
        return counts

    def row(self, target: str) -> ReportRow | None:
        return next((r for r in self.rows if r.target == target), None)

    # -- serialisation ----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": [r.to_dict() for r in self.rows],
            "unused": list(self.unused),
            "summary": self.summary,
            "recipe": self.recipe,
            "warning": self.warning,
            "warnings": list(self.warnings),
            "outputs": list(self.outputs),
            "aliases": [list(a) for a in self.aliases],
            "new_rows": list(self.new_rows),
            "extras_not_kept": list(self.extras_not_kept),
            "extras_converted": list(self.extras_converted),
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    def to_frame(self):
        """A pandas DataFrame: one row per target key, then one per unused source key."""
        import pandas as pd

        records = [r.to_dict() for r in self.rows]
        records += [ReportRow(target="", source=key, status="unused").to_dict() for key in self.unused]
        return pd.DataFrame.from_records(records, columns=list(ROW_FIELDS))

    def to_csv(self, path: str | Path | None = None) -> str:
        """The rows as CSV (written to ``path`` when given); returns the text. Key names come
        from files, so a cell a spreadsheet would run as a formula is neutralised, and lines
        end in CRLF (RFC 4180) so a key holding a lone CR is quoted, not a row break."""
        buf = io.StringIO()
        self.to_frame().map(csv_cell).to_csv(buf, index=False, lineterminator="\r\n")
        text = buf.getvalue()
        if path is not None:
            write_text_atomic(path, text, "report")
        return text

    def save(self, path: str | Path) -> None:
        """Write JSON or CSV, chosen by the file's extension, whole or not at all."""
        path = check_report_path(path)
        text = self.to_csv() if path.suffix.lower() == ".csv" else self.to_json() + "\n"
        write_text_atomic(path, text, "report")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Report":
        return cls(
            rows=[ReportRow(**{k: r.get(k) for k in ROW_FIELDS}) for r in data.get("rows", [])],
            unused=list(data.get("unused", [])),
            recipe=dict(data.get("recipe") or {}),
            warning=data.get("warning"),
            outputs=list(data.get("outputs", [])),
            aliases=[list(a) for a in data.get("aliases", [])],
            new_rows=list(data.get("new_rows", [])),
            extras_not_kept=list(data.get("extras_not_kept", [])),
            extras_converted=list(data.get("extras_converted", [])),
            warnings=list(data.get("warnings", [data["warning"]] if data.get("warning") else [])),
        )

    def __repr__(self) -> str:
        parts = ", ".join(f"{k}={v}" for k, v in self.summary.items() if v)
        return f"Report({len(self.rows)} target keys: {parts})"


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """``'=HYPERLINK(...)``: a text cell starting like a formula (OWASP's list: = + - @, tab,
    carriage return) gets a leading ``'``, so spreadsheets show it as text."""
    return "'" + value if isinstance(value, str) and value.startswith(FORMULA_STARTS) else value


def check_report_path(path: str | Path) -> Path:
    """A report path that ``Report.save`` can write (.json or .csv in an existing folder)."""
    return check_writable(path, "report", REPORT_SUFFIXES)
