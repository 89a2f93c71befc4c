"""Merge result files into one table: rich in the terminal, Markdown, HTML (with plots), JSON and CSV on disk."""

from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.table import Table
from rich.text import Text

from .aggregate import aggregate, group_key, markdown_sections, rich_tables
from .errors import UsageError
from .experiment_report import experiment_markdown, write_experiment_plots
from .results import DEFAULT_RESULTS_DIR, VOLATILE_FIELD, read_experiments, read_results
from .storage import atomic_path, write_json

DEFAULT_REPORTS_DIR = Path("reports")
# One table per task: the probed representations and the baselines, on the same test split and metrics.
COLUMNS = ("row", "method", "balanced_accuracy", "accuracy", "macro_f1", "selected", "per_class_recall", "n_test")
HEADERS = {
    "row": "Representation",
    "method": "Method",
    "seed": "Seed",
    "balanced_accuracy": "Balanced acc.",
    "accuracy": "Accuracy",
    "macro_f1": "Macro-F1",
    "selected": "Chosen on val.",
    "per_class_recall": "Recall per class",
    "n_test": "n test",
}
_NUMERIC = {"balanced_accuracy", "accuracy", "macro_f1", "n_test", "seed"}
# The headline metrics: each shown with its 95 % bootstrap interval, and the ones --fail-under can gate on.
METRICS = ("accuracy", "balanced_accuracy", "macro_f1")
CSV_COLUMNS = ("task", "row", "method", "shots", "seed", "balanced_accuracy", "low", "high", "accuracy", "macro_f1", "n_test", "selected")
CAPTION = "Test split; every choice (probe C, training epoch) made on the validation split."


@dataclass
class Report:
    """The merged rows (one per result file with metrics) and the files written for them; `aggregates` over seeds
    per (task, row, method, shots), and the few-shot runs `skipped` with their reasons."""

    rows: list[dict[str, Any]]
    files: dict[str, Path]
    experiments: list[dict[str, Any]] = field(default_factory=list)
    aggregates: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)

    def tasks(self) -> list[str]:
        return list(dict.fromkeys(row["task"] for row in self.rows + self.skipped))

    def tables(self) -> list[Table]:
        """Per task: the full-data rows, best balanced accuracy first; then, when there are any, the means across
        seeds and the few-shot table."""
        tables = []
        for task in self.tasks():
            if any(row["task"] == task for row in full_data(self.rows)):
                tables.append(self._main_table(task))
            tables += rich_tables(self.aggregates, self.skipped, task)
        return tables

    def _main_table(self, task: str) -> Table:
        table = Table(title=f"{task}", caption=CAPTION, title_justify="left")
        rows = [row for row in full_data(self.rows) if row["task"] == task]
        shown = columns(rows)
        for column in shown:
            table.add_column(
                HEADERS[column], justify="right" if column in _NUMERIC else "left", no_wrap=column != "per_class_recall"
            )
        for row in rows:
            # Text, not markup: row names such as "mini-clip/random [orbit:hflip]" hold brackets.
            # The interval goes under its number here, so that the table fits 160 columns (CI logs).
            table.add_row(*(Text(_cell(column, row, separator="\n")) for column in shown))
        return table


def columns(rows: list[dict[str, Any]]) -> tuple[str, ...]:
    """COLUMNS, with a Seed column after Method when the rows come from several seeds."""
    if len({row["seed"] for row in rows}) < 2:
        return COLUMNS
    return COLUMNS[:2] + ("seed",) + COLUMNS[2:]


def full_data(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows of probes and baselines trained on the whole train split (not the few-shot runs)."""
    return [row for row in rows if row.get("shots") is None]


def summarise(record: dict[str, Any]) -> dict[str, Any]:
    metrics = record["metrics"]
    selection = record.get("selection", {})
    return {
        "task": record["task"],
        "row": record["row"],
        "method": record["method"],
        "balanced_accuracy": metrics["balanced_accuracy"],
        "accuracy": metrics["accuracy"],
        "macro_f1": metrics["macro_f1"],
        # 95 % bootstrap intervals, {metric: [low, high]}; None for result files written before they existed.
        "intervals": metrics.get("intervals") or None,
        "chosen_C": selection.get("chosen_C"),
        "chosen_epoch": selection.get("chosen_epoch"),
        "selected": _selected(selection),
        # Class order, not the alphabetical order that sorted JSON keys would give.
        "per_class_recall": {name: metrics["per_class_recall"][name] for name in record["classes"]},
        "n_test": metrics["n"],
        "shots": record.get("shots"),
        "seed": record["seed"],
    }


def skipped_entry(record: dict[str, Any]) -> dict[str, Any]:
    """A few-shot run that could not be made (a class with fewer than k training examples), and why."""
    return {key: record.get(key) for key in ("task", "row", "method", "shots", "seed")} | {"reason": record["skipped"]}


def _selected(selection: dict[str, Any]) -> str | None:
    # A probe's swept penalty: "C" for the linear probe, "alpha" for the MLP (older records name only chosen_C).
    parameter = selection.get("parameter", "C")
    if selection.get(f"chosen_{parameter}") is not None:
        edge = " (grid edge)" if selection.get("at_grid_edge") else ""
        return f"{parameter}={selection[f'chosen_{parameter}']:.3g}{edge}"
    if selection.get("chosen_epoch") is not None:
        return f"epoch {selection['chosen_epoch']}"
    return None


def _format(column: str, value: Any) -> str:
    if value is None:
        return "-"
    if column in ("balanced_accuracy", "accuracy", "macro_f1"):
        return f"{value:.3f}"
    if column == "per_class_recall":
        return " · ".join(f"{name} {recall:.2f}" for name, recall in value.items())
    return str(value)


def _cell(column: str, row: dict[str, Any], separator: str = " ") -> str:
    """A headline number with its interval beside it, "0.973 [0.962, 0.983]" ("0.973 [-]" without one)."""
    text = _format(column, row[column])
    if column in METRICS and row[column] is not None:
        interval = (row.get("intervals") or {}).get(column)
        text += separator + (f"[{interval[0]:.3f}, {interval[1]:.3f}]" if interval else "[-]")
    return text


def markdown(rows: list[dict[str, Any]], experiments: list[dict[str, Any]] = (), skipped: list[dict[str, Any]] = ()) -> str:
    lines = ["## clipprobe results"]
    for experiment in experiments:
        lines += ["", experiment_markdown(experiment).rstrip("\n")]
    lines += ["", CAPTION]
    entries = aggregate(rows)
    for task in dict.fromkeys(row["task"] for row in [*rows, *skipped]):
        task_rows = [row for row in full_data(rows) if row["task"] == task]
        shown = columns(task_rows)
        lines += ["", f"### {task}"]
        if task_rows:
            lines += [
                "",
                "| " + " | ".join(HEADERS[c] for c in shown) + " |",
                "| " + " | ".join("---:" if c in _NUMERIC else "---" for c in shown) + " |",
            ]
            lines += ["| " + " | ".join(_cell(c, row) for c in shown) + " |" for row in task_rows]
        lines += markdown_sections(entries, list(skipped), task)
    return "\n".join(lines) + "\n"


def build_report(results_dir: Path = DEFAULT_RESULTS_DIR, out_dir: Path = DEFAULT_REPORTS_DIR) -> Report:
    """Read every result file under `results_dir`; write report.md, report.html, results.json and results.csv in `out_dir`.

    Experiment records (`clipprobe experiment curation`) come first, as headline tables across tasks."""
    records = read_results(results_dir)
    experiments = read_experiments(results_dir)
    skipped = [skipped_entry(r) for r in records if "skipped" in r]
    records = [r for r in records if "skipped" not in r]
    rows = [summarise(r) for r in records]
    aggregates = aggregate(rows)
    # Best first, by the mean over seeds, so that the seeds of one row stay together.
    means = {group_key(e): e["balanced_accuracy"]["mean"] for e in aggregates}
    rows.sort(key=lambda r: (r["task"], r["shots"] is not None, -means[group_key(r)], r["row"], r["method"], r["seed"]))
    aggregates = aggregate(rows)
    out_dir = Path(out_dir)
    files = {"markdown": out_dir / "report.md", "html": out_dir / "report.html", "json": out_dir / "results.json",
             "csv": out_dir / "results.csv"}
    text = markdown(rows, experiments, skipped)
    with atomic_path(files["markdown"]) as tmp:
        tmp.write_text(text)
    from .html_report import experiment_plots, render_html  # imports matplotlib; html_report imports this module

    plots = [experiment_plots(experiment) for experiment in experiments]  # drawn once: the page and the files share them
    with atomic_path(files["html"]) as tmp:
        tmp.write_text(render_html(rows, records, experiments, plots, skipped), encoding="utf-8")
    files.update(write_experiment_plots(experiments, plots, out_dir))
    write_json(files["json"], {"rows": rows, "aggregates": aggregates, "skipped": skipped,
                               "records": [_stable(r) for r in records], "experiments": [_stable(e) for e in experiments]})
    write_csv(files["csv"], rows)
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:  # a CI job summary, when running under GitHub Actions
        with open(summary, "a") as f:
            f.write(text)
    return Report(rows=rows, files=files, experiments=experiments, aggregates=aggregates, skipped=skipped)


def _stable(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k != VOLATILE_FIELD}


def write_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    """One line per task x row x method x shots x seed (shots empty for full-data rows); low and high bound the
    balanced accuracy (empty without an interval)."""
    with atomic_path(Path(path)) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(CSV_COLUMNS)
        for row in rows:
            low, high = (row.get("intervals") or {}).get("balanced_accuracy") or ("", "")
            writer.writerow([
                row["task"], row["row"], row["method"], "" if row.get("shots") is None else row["shots"], row["seed"],
                row["balanced_accuracy"], low, high,
                row["accuracy"], row["macro_f1"], row["n_test"], row["selected"] or "",
            ])
    return Path(path)


# --- The CI gate: floors on metrics, and regressions against an earlier report. ---------------------------

FLOOR_FORM = (
    "TASK:ROW:METRIC=VALUE (TASK and ROW may be *; METRIC one of " + ", ".join(METRICS) + "), "
    "e.g. traffic-light:*:balanced_accuracy=0.3"
)


@dataclass(frozen=True)
class Floor:
    """`--fail-under TASK:ROW:METRIC=VALUE`: every matched row's METRIC must be at least VALUE."""

    spec: str
    target: str  # "TASK:ROW", either part possibly "*"
    metric: str
    value: float

    def matches(self, row: dict[str, Any]) -> bool:
        # Task and row names may hold colons ("orbit-cnn/translate:4+hflip"), so the whole "TASK:ROW" is compared.
        task, name = row["task"], row["row"]
        return self.target in (f"{task}:{name}", f"{task}:*", f"*:{name}", "*:*")


def parse_floor(spec: str) -> Floor:
    """Parse TASK:ROW:METRIC=VALUE; a malformed spec is a UsageError showing the expected form."""
    target, equals, value = spec.rpartition("=")
    target, colon, metric = target.rpartition(":")
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not equals or not colon or ":" not in target or metric not in METRICS or not math.isfinite(number):
        raise UsageError(f"--fail-under expects {FLOOR_FORM}; got '{spec}'")
    return Floor(spec=spec, target=target, metric=metric, value=number)


def _where(row: dict[str, Any]) -> str:
    shots = f" | {row['shots']}-shot" if row.get("shots") is not None else ""
    return f"{row['task']} | {row['row']} | {row['method']}{shots} | seed {row['seed']}"


def _available(rows: list[dict[str, Any]]) -> str:
    by_task: dict[str, list[str]] = {}
    for row in rows:
        by_task.setdefault(row["task"], [])
        if row["row"] not in by_task[row["task"]]:
            by_task[row["task"]].append(row["row"])
    return "; ".join(f"{task}: {', '.join(names)}" for task, names in by_task.items())


def check_floors(rows: list[dict[str, Any]], floors: list[Floor | str]) -> list[str]:
    """One message per (floor, row) whose metric is below the floor; [] when every floor holds.

    Floors apply to the full-data rows: a few-shot run is not meant to reach them. A floor that matches no row
    at all is a UsageError (a typo must not pass the gate silently)."""
    floors = [parse_floor(f) if isinstance(f, str) else f for f in floors]
    rows = full_data(rows)
    for floor in floors:
        if not any(floor.matches(row) for row in rows):
            raise UsageError(f"--fail-under '{floor.spec}' matches no row. Available: {_available(rows)}")
    failures = []
    for floor in floors:
        for row in rows:
            if floor.matches(row) and row[floor.metric] < floor.value:
                failures.append(
                    f"Below floor: {_where(row)}: {floor.metric} {row[floor.metric]:.4f} < {floor.value:g} (--fail-under {floor.spec})"
                )
    return failures


def _key(row: dict[str, Any]) -> tuple:
    return (row["task"], row["row"], row["method"], row.get("shots"), row["seed"])


@dataclass
class Comparison:
    """Rows of the current report against a baseline report, matched by (task, row, method, shots, seed).

    A matched row has *regressed* when even the top of its current balanced-accuracy interval is more than
    `max_drop` below the baseline's balanced accuracy: current_high < baseline - max_drop (a row without an
    interval uses its point estimate as current_high). Rows on one side only are listed, never failures."""

    max_drop: float
    regressed: list[dict[str, Any]] = field(default_factory=list)  # {"row": current row, "baseline": float, "high": float}
    added: list[dict[str, Any]] = field(default_factory=list)
    removed: list[dict[str, Any]] = field(default_factory=list)
    matched: int = 0

    def failures(self) -> list[str]:
        return [
            f"Regression: {_where(r['row'])}: balanced_accuracy {r['row']['balanced_accuracy']:.4f} "
            f"(interval top {r['high']:.4f}) < baseline {r['baseline']:.4f} - max drop {self.max_drop:g}"
            for r in self.regressed
        ]

    def notes(self) -> list[str]:
        return [f"Added (not in the baseline): {_where(row)}" for row in self.added] + [
            f"Removed (only in the baseline): {_where(row)}" for row in self.removed
        ]


def compare(rows: list[dict[str, Any]], baseline_rows: list[dict[str, Any]], max_drop: float = 0.02) -> Comparison:
    """Compare balanced accuracy row by row against an earlier report's rows (see Comparison for the rule)."""
    if not (max_drop >= 0 and math.isfinite(max_drop)):
        raise UsageError(f"--max-drop must be a number >= 0, got {max_drop}")
    result = Comparison(max_drop=max_drop)
    baseline = {_key(row): row for row in baseline_rows}
    current_keys = {_key(row) for row in rows}
    for row in rows:
        before = baseline.get(_key(row))
        if before is None:
            result.added.append(row)
            continue
        result.matched += 1
        interval = (row.get("intervals") or {}).get("balanced_accuracy")
        high = interval[1] if interval else row["balanced_accuracy"]
        if high < before["balanced_accuracy"] - max_drop:
            result.regressed.append({"row": row, "baseline": before["balanced_accuracy"], "high": high})
    result.removed = [row for row in baseline_rows if _key(row) not in current_keys]
    return result


def load_baseline(path: Path) -> list[dict[str, Any]]:
    """The rows of a results.json written by an earlier `clipprobe report`; a missing or invalid file is a UsageError."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"Baseline file not found: {path}")
    try:
        rows = json.loads(path.read_text())["rows"]
        for row in rows:
            _key(row), float(row["balanced_accuracy"])
    except (ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"Baseline file {path} is not a results.json written by `clipprobe report` ({type(exc).__name__}: {exc})") from None
    return rows
