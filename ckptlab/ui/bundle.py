"""The hand-over bundle: what a team member needs to redo this lab's remap without the app,
in one zip: the recipe (YAML), the report (CSV and JSON), the standalone script and a
README saying which files went in and how to run it (the link to this state too).

Built on click (a deferred download), in memory: recipes, reports and scripts are small
(a 10,000-row report is a few MB); checkpoints never go in.
"""
from __future__ import annotations

import io
import zipfile
from typing import Any

NAME = "ckptlab-handover.zip"


def readme(source: str, target: str, summary: dict[str, int], link: str | None) -> str:
    counts = ", ".join(f"{n:,} {status}" for status, n in summary.items() if n)
    lines = [
        "# ckptlab hand-over",
        "",
        f"Source: {source}",
        f"Target: {target}",
        f"Rows: {counts}",
        "",
        "- `recipe.yaml`: the recipe (`ckptlab remap SOURCE TARGET OUT --recipe recipe.yaml`)",
        "- `report.csv`, `report.json`: one row per target key, what feeds it and why",
        ("- `remap.py`: the same remap in plain PyTorch (`python remap.py --source S --target T --out OUT`;"
         " the defaults are the file names above)"),
    ]
    if link:
        lines += ["", f"The lab state in the app: {link}"]
    return "\n".join(lines) + "\n"


def bundle(recipe_yaml: str, report: Any, script: str, about: str) -> bytes:
    """The zip's bytes (entries dated 1980 so one state always gives the same bytes)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in (("README.md", about), ("recipe.yaml", recipe_yaml), ("report.csv", report.to_csv()),
                           ("report.json", report.to_json()), ("remap.py", script)):
            if data:
                zf.writestr(zipfile.ZipInfo(name, (1980, 1, 1, 0, 0, 0)), data, zipfile.ZIP_DEFLATED)
    return out.getvalue()
