"""How `clipprobe report` shows experiment records: the headline table (terminal, Markdown) and its plots as files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.table import Table
from rich.text import Text

from .storage import atomic_path

EXPERIMENT_CAPTION = ("Balanced accuracy on each task's test split [95 % bootstrap interval]; invariance: embedding distance "
                      "within counterfactual pairs / between unrelated images (0: blind to the attribute, 1: as moved as by "
                      "another scene).")


def experiment_label(row: dict[str, Any]) -> str:
    """How the headline table names a row: the representation, and the method when it is not a probe of it."""
    return f"{row['row']} · zero-shot" if row["method"] == "zero-shot" else row["row"]


def experiment_cells(record: dict[str, Any], row: dict[str, Any], separator: str) -> list[str]:
    cells = [experiment_label(row), row["policy"] or "-"]
    for task in record["tasks"]:
        result = row["tasks"].get(task)
        cells.append("-" if result is None else _with_interval(result["balanced_accuracy"], result["interval"], separator))
    for attribute in record["attributes"]:
        score = (row.get("invariance") or {}).get(attribute)
        cells.append("-" if not score or score["score"] is None else _with_interval(score["score"], score["interval"], separator))
    return cells


def _with_interval(value: float, interval: list[float] | None, separator: str) -> str:
    return f"{value:.3f}" + (f"{separator}[{interval[0]:.3f}, {interval[1]:.3f}]" if interval else "")


def experiment_headers(record: dict[str, Any]) -> list[str]:
    return ["Representation", "Captions", *record["tasks"], *(f"invariance: {a}" for a in record["attributes"])]


def experiment_title(record: dict[str, Any]) -> str:
    return f"Curation experiment: {', '.join(record['design']['policies'])}"


def experiment_table(record: dict[str, Any]) -> Table:
    """The headline table in the terminal: rows = representations, columns = tasks, then invariance scores."""
    table = Table(title=experiment_title(record), caption=EXPERIMENT_CAPTION, title_justify="left")
    for i, header in enumerate(experiment_headers(record)):
        table.add_column(header, justify="left" if i < 2 else "right")
    for row in record["rows"]:
        table.add_row(*(Text(cell) for cell in experiment_cells(record, row, separator="\n")))
    return table


def experiment_markdown(record: dict[str, Any]) -> str:
    headers = experiment_headers(record)
    lines = [f"### {experiment_title(record)}", "", EXPERIMENT_CAPTION, "",
             "| " + " | ".join(headers) + " |", "| " + " | ".join("---" if i < 2 else "---:" for i in range(len(headers))) + " |"]
    lines += ["| " + " | ".join(experiment_cells(record, row, separator=" ")) + " |" for row in record["rows"]]
    return "\n".join(lines) + "\n"


def write_experiment_plots(experiments: list[dict[str, Any]], plots_by_experiment: list[dict[str, bytes]],
                           out_dir: Path) -> dict[str, Path]:
    """Each experiment's plots as PNG files beside report.html (which embeds the same bytes), for READMEs and slides."""
    files = {}
    for experiment, plots in zip(experiments, plots_by_experiment, strict=True):
        for kind, png in plots.items():
            path = Path(out_dir) / f"{experiment['name']}-{kind}.png"
            with atomic_path(path) as tmp:
                tmp.write_bytes(png)
            files[f"{experiment['name']} {kind}"] = path
    return files
