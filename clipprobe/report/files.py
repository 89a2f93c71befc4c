"""The report's data files: results.json (entries, aggregates, records) and results.csv (one line per entry)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from ..core.storage import atomic_path
from ..results import VOLATILE_FIELD
from .experiments import Experiment
from .tables import PROVENANCE

CSV_COLUMNS = (
    "task",
    "representation",
    "kind",
    "method",
    "shots",
    "seed",
    "balanced_accuracy",
    "low",
    "high",
    "accuracy",
    "macro_f1",
    "n_test",
    "selected",
    "at_grid_edge",
    "incomplete",
    *PROVENANCE,
    "resize",
)


def stable(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k != VOLATILE_FIELD}


# A cell starting with one of these is a formula to a spreadsheet (OWASP's CSV injection advice): prefix a quote.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def text_cell(value: object) -> str:
    """A text cell from a result file, made inert for spreadsheets (numbers are written as numbers)."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


def write_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    """One line per task x row x method x shots x seed (shots empty for full-data rows); low and high bound the
    balanced accuracy (empty without an interval); at_grid_edge whether the choice lies at the edge of what was
    swept (the tables' † mark); then where the row comes from, one column each (PROVENANCE),
    and how the images were fitted to the square input (resize: crop, squash or pad)."""
    with atomic_path(Path(path)) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(CSV_COLUMNS)
        for row in rows:
            low, high = (row.get("intervals") or {}).get("balanced_accuracy") or ("", "")
            writer.writerow(
                [
                    text_cell(row["task"]),
                    text_cell(row["representation"]),
                    text_cell(row.get("kind")),
                    text_cell(row["method"]),
                    "" if row.get("shots") is None else row["shots"],
                    row["seed"],
                    row["balanced_accuracy"],
                    low,
                    high,
                    row["accuracy"],
                    row["macro_f1"],
                    row["n_test"],
                    text_cell(row["selected"]),
                    bool(row.get("at_grid_edge")),
                    text_cell(row.get("incomplete")),
                    *(text_cell(row.get(column)) for column in PROVENANCE),
                    text_cell(row.get("geometry")),
                ]
            )
    return Path(path)


def write_experiment_plots(
    experiments: list[Experiment], plots_by_experiment: list[dict[str, bytes]], out_dir: Path
) -> dict[str, Path]:
    """Each experiment's plots as PNG files beside report.html (which embeds the same bytes), for READMEs and slides;
    named after the experiment's file."""
    files = {}
    for experiment, plots in zip(experiments, plots_by_experiment, strict=True):
        name = experiment.path.stem
        for kind, png in plots.items():
            path = Path(out_dir) / f"{name}-{kind}.png"
            with atomic_path(path) as tmp:
                tmp.write_bytes(png)
            files[f"{name} {kind}"] = path
    return files
