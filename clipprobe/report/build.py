"""Merge result files into one report: rich in the terminal, Markdown, HTML (with plots), JSON and CSV on disk."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.table import Table

from ..core.storage import atomic_path, write_json
from ..results import DEFAULT_RESULTS_DIR, read_results
from .experiments import get_experiment_view, read_experiments
from .files import stable, write_csv, write_experiment_plots
from .gate import Gate, GateOutcome
from .markdown import markdown
from .tables import aggregate, group_key, order_tasks, skipped_entry, summarise
from .terminal import task_tables

DEFAULT_REPORTS_DIR = Path("reports")


@dataclass
class Report:
    """The merged entries (one per result file with metrics) and the files written for them; `aggregates` over
    seeds per (task, representation, method, shots), the few-shot runs `skipped` with their reasons, and the CI
    gate's outcome when it was given a gate."""

    entries: list[dict[str, Any]]
    files: dict[str, Path]
    experiments: list[dict[str, Any]] = field(default_factory=list)
    aggregates: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    gate: GateOutcome | None = None

    def tasks(self) -> list[str]:
        return order_tasks((entry["task"] for entry in self.entries + self.skipped), self.experiments)

    def tables(self) -> list[Table]:
        """The experiments' headline tables, then per task its tables (see clipprobe.report.terminal)."""
        headline = [
            table for record in self.experiments for table in get_experiment_view(record["kind"]).tables(record)
        ]
        return headline + task_tables(self.entries, self.aggregates, self.skipped, self.tasks())


def build_report(
    results_dir: Path = DEFAULT_RESULTS_DIR, out_dir: Path = DEFAULT_REPORTS_DIR, gate: Gate | None = None
) -> Report:
    """Read every result file under `results_dir`; write report.md, report.html, results.json and results.csv in `out_dir`.

    Experiment records (`clipprobe experiment curation`) come first, as headline tables across tasks; then the
    tasks in `order_tasks` order. With a `gate` (Gate.from_options) its outcome is decided first, so that every
    file shows it (report.md, the CI job summary, at the top); a floor that matches no entry is a UsageError
    before anything is written. Report.gate holds the outcome: the caller decides what a failure means."""
    results = read_results(results_dir)
    experiments = read_experiments(results_dir)
    records = [result.to_json(volatile=False) for result in results]
    skipped = [skipped_entry(r) for r in records if "skipped" in r]
    records = [r for r in records if "skipped" not in r]
    entries = [summarise(r) for r in records]
    aggregates = aggregate(entries)
    # Tasks in the report's order; in each, best first by the mean over seeds, so that the seeds of one
    # representation stay together.
    means = {group_key(e): e["balanced_accuracy"]["mean"] for e in aggregates}
    rank = {task: i for i, task in enumerate(order_tasks((e["task"] for e in entries + skipped), experiments))}
    skipped.sort(key=lambda e: rank[e["task"]])
    entries.sort(
        key=lambda e: (
            rank[e["task"]],
            e["shots"] is not None,
            -means[group_key(e)],
            e["representation"],
            e["method"],
            e["seed"],
        )
    )
    aggregates = aggregate(entries)
    outcome = gate.check(entries) if gate is not None else None
    out_dir = Path(out_dir)
    files = {
        "markdown": out_dir / "report.md",
        "html": out_dir / "report.html",
        "json": out_dir / "results.json",
        "csv": out_dir / "results.csv",
    }
    views = [get_experiment_view(record["kind"]) for record in experiments]
    text = markdown(entries, [view.markdown(record) for view, record in zip(views, experiments)], skipped, outcome)
    with atomic_path(files["markdown"]) as tmp:
        tmp.write_text(text)
    from .html import render_html  # imports matplotlib

    plots = [
        view.plots(record) for view, record in zip(views, experiments)
    ]  # drawn once: the page and the files share them
    sections = [
        (f"experiment-{i}", view.title(record), view.html(f"experiment-{i}", record, drawn))
        for i, (view, record, drawn) in enumerate(zip(views, experiments, plots))
    ]
    with atomic_path(files["html"]) as tmp:
        tmp.write_text(render_html(entries, records, sections, skipped, outcome), encoding="utf-8")
    files.update(write_experiment_plots(experiments, plots, out_dir))
    write_json(
        files["json"],
        {
            "entries": entries,
            "aggregates": aggregates,
            "skipped": skipped,
            "records": records,
            "experiments": [stable(e) for e in experiments],
            "gate": outcome.to_json() if outcome is not None else None,
        },
    )
    write_csv(files["csv"], entries)
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:  # a CI job summary, when running under GitHub Actions
        with open(summary, "a") as f:
            f.write(text)
    return Report(
        entries=entries, files=files, experiments=experiments, aggregates=aggregates, skipped=skipped, gate=outcome
    )
