"""Across seeds and shots: mean and standard deviation per (task, row, method, shots), and the few-shot tables."""

from __future__ import annotations

from typing import Any

import numpy as np
from rich.table import Table
from rich.text import Text

from .shots import ALL

AGGREGATE_METRICS = ("balanced_accuracy", "accuracy", "macro_f1")
SEEDS_CAPTION = ("Mean ± standard deviation over seeds (sample standard deviation; each seed its own few-shot sample, "
                 "probe and network initialisation). A linear probe on all the data is deterministic: its spread is 0.")
FEW_SHOT_CAPTION = ("Balanced accuracy on the test split with k training examples per class (stratified, seeded); the "
                    "probe's hyperparameter chosen on the validation split, no refit on it. Mean ± standard deviation "
                    "over seeds.")


def group_key(row: dict[str, Any]) -> tuple:
    return (row["task"], row["row"], row["method"], row.get("shots"))


def aggregate(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per (task, row, method, shots), in first-seen order: the seeds, and per metric mean and std.

    std is the sample standard deviation (ddof=1), None for a single seed."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(group_key(row), []).append(row)
    entries = []
    for (task, name, method, shots), members in groups.items():
        entry = {"task": task, "row": name, "method": method, "shots": shots,
                 "seeds": sorted(member["seed"] for member in members)}
        for metric in AGGREGATE_METRICS:
            values = np.array([member[metric] for member in members], dtype=np.float64)
            entry[metric] = {"mean": float(values.mean()), "std": float(values.std(ddof=1)) if len(values) > 1 else None}
        entries.append(entry)
    return entries


def mean_std(summary: dict[str, Any]) -> str:
    """"0.612 ± 0.034" (or "0.612" for one seed)."""
    return f"{summary['mean']:.3f}" + (f" ± {summary['std']:.3f}" if summary["std"] is not None else "")


def shots_order(value: Any) -> tuple:
    """Sort key for shots: 1, 2, 4, ..., then "all"."""
    return (1, 0) if value == ALL else (0, value)


def few_shot_grid(entries: list[dict[str, Any]], skipped: list[dict[str, Any]], task: str) -> tuple[list, list]:
    """The task's few-shot table: (the shots as columns, [(row, method, {shots: entry or "skipped"})])."""
    few = [e for e in entries if e["task"] == task and e["shots"] is not None]
    gaps = [s for s in skipped if s["task"] == task]
    columns = sorted({e["shots"] for e in few} | {s["shots"] for s in gaps}, key=shots_order)
    lines: dict[tuple, dict] = {}
    for entry in few:
        lines.setdefault((entry["row"], entry["method"]), {})[entry["shots"]] = entry
    for gap in gaps:
        lines.setdefault((gap["row"], gap["method"]), {}).setdefault(gap["shots"], "skipped")
    return columns, [(row, method, cells) for (row, method), cells in lines.items()]


def few_shot_cells(cells: dict[Any, Any], columns: list) -> list[str]:
    return ["skipped" if cells.get(k) == "skipped" else mean_std(cells[k]["balanced_accuracy"]) if k in cells else "-"
            for k in columns]


def skipped_notes(skipped: list[dict[str, Any]], task: str) -> list[str]:
    """One line per skipped (row, method, shots), with its reason and seeds: never dropped silently."""
    notes: dict[tuple, list] = {}
    for gap in skipped:
        if gap["task"] == task:
            notes.setdefault((gap["row"], gap["method"], gap["shots"], gap["reason"]), []).append(gap["seed"])
    return [f"Skipped {row} · {method} · {shots}-shot (seed {', '.join(map(str, sorted(seeds)))}): {reason}"
            for (row, method, shots, reason), seeds in notes.items()]


def has_several_seeds(entries: list[dict[str, Any]], task: str) -> bool:
    return any(len(entry["seeds"]) > 1 for entry in entries if entry["task"] == task)


def seeds_rows(entries: list[dict[str, Any]], task: str) -> list[list[str]]:
    """The full-data rows of a task across seeds: Representation, Method, Seeds, then mean ± std per metric."""
    return [[e["row"], e["method"], str(len(e["seeds"])), *(mean_std(e[m]) for m in AGGREGATE_METRICS)]
            for e in entries if e["task"] == task and e["shots"] is None]


SEEDS_HEADERS = ("Representation", "Method", "Seeds", "Balanced acc.", "Accuracy", "Macro-F1")


def rich_tables(entries: list[dict[str, Any]], skipped: list[dict[str, Any]], task: str) -> list[Table]:
    """The terminal's across-seeds and few-shot tables for one task (none when there is nothing to show)."""
    tables = []
    if has_several_seeds(entries, task) and (lines := seeds_rows(entries, task)):
        table = Table(title=f"{task}: across seeds", caption=SEEDS_CAPTION, title_justify="left")
        for i, header in enumerate(SEEDS_HEADERS):
            table.add_column(header, justify="left" if i < 2 else "right")
        for line in lines:
            table.add_row(*(Text(cell) for cell in line))
        tables.append(table)
    columns, lines = few_shot_grid(entries, skipped, task)
    if lines:
        caption = "\n".join([FEW_SHOT_CAPTION, *skipped_notes(skipped, task)])
        table = Table(title=f"{task}: few-shot balanced accuracy", caption=caption, title_justify="left")
        table.add_column("Representation")
        table.add_column("Method")
        for k in columns:
            table.add_column(f"{k}-shot", justify="right")
        for row, method, cells in lines:
            table.add_row(Text(row), Text(method), *(Text(cell) for cell in few_shot_cells(cells, columns)))
        tables.append(table)
    return tables


def markdown_sections(entries: list[dict[str, Any]], skipped: list[dict[str, Any]], task: str) -> list[str]:
    """The same tables as Markdown lines, for report.md."""
    lines = []
    if has_several_seeds(entries, task) and (rows := seeds_rows(entries, task)):
        lines += ["", f"#### {task}: across seeds", "", SEEDS_CAPTION, "", "| " + " | ".join(SEEDS_HEADERS) + " |",
                  "| --- | --- | ---: | ---: | ---: | ---: |"]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
    columns, grid = few_shot_grid(entries, skipped, task)
    if grid:
        lines += ["", f"#### {task}: few-shot balanced accuracy", "", FEW_SHOT_CAPTION, "",
                  "| Representation | Method | " + " | ".join(f"{k}-shot" for k in columns) + " |",
                  "| --- | --- | " + " | ".join("---:" for _ in columns) + " |"]
        lines += ["| " + " | ".join([row, method, *few_shot_cells(cells, columns)]) + " |" for row, method, cells in grid]
        if notes := skipped_notes(skipped, task):
            lines += ["", *(f"- {note}" for note in notes)]
    return lines
