"""Merge result files into one table: rich in the terminal, Markdown and JSON on disk."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.table import Table

from .results import DEFAULT_RESULTS_DIR, VOLATILE_FIELD, read_results
from .storage import atomic_path, write_json

DEFAULT_REPORTS_DIR = Path("reports")
COLUMNS = ("task", "row", "method", "balanced_accuracy", "accuracy", "macro_f1", "chosen_C", "per_class_recall", "n_test")
HEADERS = {
    "task": "Task",
    "row": "Representation",
    "method": "Method",
    "balanced_accuracy": "Balanced acc.",
    "accuracy": "Accuracy",
    "macro_f1": "Macro-F1",
    "chosen_C": "C (val.)",
    "per_class_recall": "Recall per class",
    "n_test": "n test",
}


@dataclass
class Report:
    """The merged rows and the files written for them."""

    rows: list[dict[str, Any]]
    files: dict[str, Path]

    def table(self) -> Table:
        table = Table(title="clipprobe results (test split; C chosen on validation)")
        for column in COLUMNS:
            table.add_column(
                HEADERS[column], justify="right" if column in _NUMERIC else "left", no_wrap=column != "per_class_recall"
            )
        for row in self.rows:
            table.add_row(*(_format(column, row[column]) for column in COLUMNS))
        return table


_NUMERIC = {"balanced_accuracy", "accuracy", "macro_f1", "chosen_C", "n_test"}


def summarise(record: dict[str, Any]) -> dict[str, Any]:
    metrics = record["metrics"]
    return {
        "task": record["task"],
        "row": record["row"],
        "method": record["method"],
        "balanced_accuracy": metrics["balanced_accuracy"],
        "accuracy": metrics["accuracy"],
        "macro_f1": metrics["macro_f1"],
        "chosen_C": record.get("selection", {}).get("chosen_C"),
        # Class order, not the alphabetical order that sorted JSON keys would give.
        "per_class_recall": {name: metrics["per_class_recall"][name] for name in record["classes"]},
        "n_test": metrics["n"],
        "seed": record["seed"],
    }


def _format(column: str, value: Any) -> str:
    if value is None:
        return "-"
    if column in ("balanced_accuracy", "accuracy", "macro_f1"):
        return f"{value:.3f}"
    if column == "chosen_C":
        return f"{value:.3g}"
    if column == "per_class_recall":
        return " · ".join(f"{name} {recall:.2f}" for name, recall in value.items())
    return str(value)


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "## clipprobe results",
        "",
        "Test-split scores; the probe's C was chosen on the validation split only.",
        "",
        "| " + " | ".join(HEADERS[c] for c in COLUMNS) + " |",
        "| " + " | ".join("---:" if c in _NUMERIC else "---" for c in COLUMNS) + " |",
    ]
    lines += ["| " + " | ".join(_format(c, row[c]) for c in COLUMNS) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def build_report(results_dir: Path = DEFAULT_RESULTS_DIR, out_dir: Path = DEFAULT_REPORTS_DIR) -> Report:
    """Read every result file under `results_dir`; write report.md and results.json under `out_dir`."""
    records = read_results(results_dir)
    rows = sorted((summarise(r) for r in records), key=lambda r: (r["task"], -r["balanced_accuracy"], r["row"], r["method"]))
    out_dir = Path(out_dir)
    files = {"markdown": out_dir / "report.md", "json": out_dir / "results.json"}
    with atomic_path(files["markdown"]) as tmp:
        tmp.write_text(markdown(rows))
    write_json(files["json"], {"rows": rows, "records": [_stable(r) for r in records]})
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:  # a CI job summary, when running under GitHub Actions
        with open(summary, "a") as f:
            f.write(markdown(rows))
    return Report(rows=rows, files=files)


def _stable(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k != VOLATILE_FIELD}
