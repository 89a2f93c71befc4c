"""Merge result files into one report: rich in the terminal, Markdown, HTML (with plots), JSON and CSV on disk."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import RenderableType

from ..core.defaults import REPORTS_DIR, RESULTS_DIR
from ..core.kinds import RowKind
from ..core.records import to_json
from ..core.storage import atomic_path, write_json
from ..results import read_results
from .answers import Answer, answers
from .experiments import Experiment, read_experiments
from .files import stable, write_csv, write_experiment_plots
from .gate import Gate, GateOutcome
from .markdown import markdown
from .tables import aggregate, group_key, order_tasks, row_precision, skipped_entry, summarise
from .terminal import summary, task_tables


@dataclass
class Report:
    """The merged entries (one per result with metrics) and the files written for them; `aggregates` over seeds per
    (task, representation, method, shots), computed once; the few-shot runs `skipped` with their reasons; the
    experiments as their views read them; and the CI gate's outcome when it was given a gate."""

    entries: list[dict[str, Any]]
    files: dict[str, Path]
    experiments: list[Experiment] = field(default_factory=list)
    aggregates: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    gate: GateOutcome | None = None
    # Per task, the one-line answers of its rows under test (clipprobe.report.answers).
    answers: dict[str, list[Answer]] = field(default_factory=dict)

    def tasks(self) -> list[str]:
        named = [task for experiment in self.experiments for task in experiment.view.tasks(experiment.record)]
        return order_tasks((entry["task"] for entry in self.entries + self.skipped), named)

    def tables(self) -> list[RenderableType]:
        """What the terminal prints: a summary first when the report has experiments or several tasks (what each
        experiment found, then the answers of the tasks no experiment covers), the experiments' headline tables,
        then per task its answers and tables (clipprobe.report.terminal)."""
        tasks = self.tasks()
        opening = (
            summary(
                self.answers,
                [(e.view.title(e.record), e.view.summary(e.record)) for e in self.experiments],
                [task for e in self.experiments for task in e.view.tasks(e.record)],
            )
            if self.experiments or len(tasks) > 1
            else []
        )
        headline = [table for e in self.experiments for table in e.view.tables(e.record)]
        return opening + headline + task_tables(self.entries, self.aggregates, self.skipped, tasks, self.answers)


# The order of a task's rows by kind: what is being measured first, then what it is compared with.
KIND_ORDER = (RowKind.PROBE.value, RowKind.ZERO_SHOT.value, RowKind.TRAINED.value, RowKind.CONTROL.value)


def build_report(results_dir: Path = RESULTS_DIR, out_dir: Path = REPORTS_DIR, gate: Gate | None = None) -> Report:
    """Read every result file under `results_dir`; write report.md, report.html, results.json and results.csv in `out_dir`.

    Experiment records (`clipprobe experiment curation`) come first, as headline tables across tasks; then the
    tasks in `order_tasks` order. With a `gate` (Gate.from_options) its outcome is decided first, so that every
    file shows it (report.md, the CI job summary, at the top); a floor that matches no entry is a UsageError
    before anything is written. Report.gate holds the outcome: the caller decides what a failure means."""
    results = read_results(results_dir)
    experiments = read_experiments(results_dir)
    skipped = [skipped_entry(r) for r in results if r.skipped is not None]
    scored = [r for r in results if r.metrics is not None]
    entries = [summarise(r) for r in scored]
    # Tasks in the report's order; in each, the rows under test first (probes of pretrained weights, then their
    # zero-shot rows), then the networks trained on the labels, then the controls, each group best first by the
    # mean over seeds, so that the seeds of one representation stay together.
    means = {group_key(e): e["balanced_accuracy"]["mean"] for e in aggregate(entries)}
    named = [task for experiment in experiments for task in experiment.view.tasks(experiment.record)]
    rank = {task: i for i, task in enumerate(order_tasks((e["task"] for e in entries + skipped), named))}
    skipped.sort(key=lambda e: rank[e["task"]])
    entries.sort(
        key=lambda e: (
            rank[e["task"]],
            e["shots"] is not None,
            KIND_ORDER.index(e["kind"]),
            -means[group_key(e)],
            e["representation"],
            row_precision(e) or "",
            e["method"],
            e["seed"],
        )
    )
    aggregates = aggregate(entries)  # once, in the entries' order: every format reads these
    # A task an experiment covers is answered by the experiment's own contrasts (with its pretraining seeds as the
    # unit), not row by row.
    answered = answers(scored, [task for task in rank if task not in named])
    outcome = gate.check(entries) if gate is not None else None
    out_dir = Path(out_dir)
    files = {
        "markdown": out_dir / "report.md",
        "html": out_dir / "report.html",
        "json": out_dir / "results.json",
        "csv": out_dir / "results.csv",
    }
    text = markdown(entries, aggregates, [e.view.markdown(e.record) for e in experiments], skipped, outcome, answered)
    with atomic_path(files["markdown"]) as tmp:
        tmp.write_text(text)
    from .html import render_html  # imports matplotlib

    plots = [e.view.plots(e.record) for e in experiments]  # drawn once: the page and the files share them
    sections = [
        (f"experiment-{i}", e.view.title(e.record), e.view.html(f"experiment-{i}", e.record, drawn))
        for i, (e, drawn) in enumerate(zip(experiments, plots))
    ]
    with atomic_path(files["html"]) as tmp:
        tmp.write_text(render_html(entries, aggregates, scored, sections, skipped, outcome, answered), encoding="utf-8")
    files.update(write_experiment_plots(experiments, plots, out_dir))
    write_json(
        files["json"],
        {
            "entries": entries,
            "aggregates": aggregates,
            "skipped": skipped,
            "records": [r.to_json(volatile=False) for r in results],
            "experiments": [stable(to_json(e.record)) for e in experiments],
            "gate": outcome.to_json() if outcome is not None else None,
            "answers": {task: [to_json(a) for a in found] for task, found in answered.items() if found},
        },
    )
    write_csv(files["csv"], entries)
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:  # a CI job summary, when running under GitHub Actions
        with open(summary, "a") as f:
            f.write(text)
    return Report(
        entries=entries,
        files=files,
        experiments=experiments,
        aggregates=aggregates,
        skipped=skipped,
        gate=outcome,
        answers=answered,
    )
