"""report.md: the report as GitHub-flavoured Markdown (the CI job summary)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..core.text import inert
from .answers import footnote
from .tables import (
    CAPTION,
    FEW_SHOT_CAPTION,
    HEADERS,
    NUMERIC,
    SEEDS_CAPTION,
    SEEDS_NUMBERS,
    cell,
    chance_note,
    columns,
    data_note,
    edge_note,
    few_shot_cells,
    few_shot_grid,
    full_data,
    geometry_note,
    has_several_seeds,
    seeds_headers,
    seeds_rows,
    skipped_notes,
)

if TYPE_CHECKING:
    from .answers import Answer
    from .gate import GateOutcome


def md(text: object) -> str:
    """Text from result files made inert in Markdown: no table cell split by `|`, no raw HTML, no link or image
    (`](` and `][` escaped; an interval "[0.962, 0.983]" stays as it is), no control character
    (clipprobe.core.text.inert), one line."""
    escaped = inert(str(text)).replace("\\", "\\\\").replace("|", "\\|").replace("&", "&amp;")
    escaped = escaped.replace("](", "]\\(").replace("][", "]\\[")
    return " ".join(escaped.replace("<", "&lt;").replace(">", "&gt;").split())


def table_line(cells: Sequence[object]) -> str:
    return "| " + " | ".join(md(c) for c in cells) + " |"


def markdown(
    rows: list[dict[str, Any]],
    aggregates: list[dict[str, Any]],
    experiments: Sequence[str] = (),
    skipped: Sequence[dict[str, Any]] = (),
    gate: GateOutcome | None = None,
    answers: dict[str, list[Answer]] | None = None,
) -> str:
    """report.md (also the GitHub job summary): the CI gate's outcome when there is a gate, the experiments' tables
    (already Markdown), then per task (in the rows' order) its answers (clipprobe.report.answers), its data and
    chance level, its table, the means across seeds and the few-shot grid."""
    lines = ["## clipprobe results"]
    if gate is not None:
        lines += gate_lines(gate)
    for experiment in experiments:
        lines += ["", experiment.rstrip("\n")]
    lines += ["", CAPTION]
    entries = aggregates
    for task in dict.fromkeys(row["task"] for row in [*rows, *skipped]):
        task_rows = [row for row in full_data(rows) if row["task"] == task]
        shown = columns(task_rows)
        lines += ["", f"### {md(task)}"]
        lines += answer_lines((answers or {}).get(task, []))
        notes = [note for note in (data_note(rows, task), chance_note(rows, task)) if note]
        if notes:
            lines += ["", md(" ".join(notes))]
        if task_rows:
            lines += [
                "",
                "| " + " | ".join(HEADERS[c] for c in shown) + " |",
                "| " + " | ".join("---:" if c in NUMERIC else "---" for c in shown) + " |",
            ]
            lines += [table_line([cell(c, row) for c in shown]) for row in task_rows]
            for note in (geometry_note(task_rows, task), edge_note(task_rows, task)):
                if note:
                    lines += ["", md(note)]
        lines += markdown_sections(entries, list(skipped), task)
    return "\n".join(lines) + "\n"


def answer_lines(found: list[Answer]) -> list[str]:
    """A task's answers, one line each (bold: what the table means), then how they were made."""
    if not found:
        return []
    lines = ["", *(f"**{md(answer.sentence())}**  " for answer in found)]
    note = footnote(found)
    lines[-1] = lines[-1].rstrip()
    return lines + (["", md(note)] if note else [])


def markdown_sections(entries: list[dict[str, Any]], skipped: list[dict[str, Any]], task: str) -> list[str]:
    """The same tables as Markdown lines, for report.md."""
    lines = []
    if has_several_seeds(entries, task) and (rows := seeds_rows(entries, task)):
        headers = seeds_headers(entries, task)
        text = len(headers) - SEEDS_NUMBERS
        lines += [
            "",
            f"#### {md(task)}: across seeds",
            "",
            SEEDS_CAPTION,
            "",
            "| " + " | ".join(headers) + " |",
            "| " + " | ".join("---" if i < text else "---:" for i in range(len(headers))) + " |",
        ]
        lines += [table_line(row) for row in rows]
    columns, names, grid = few_shot_grid(entries, skipped, task)
    if grid:
        lines += [
            "",
            f"#### {md(task)}: few-shot balanced accuracy",
            "",
            FEW_SHOT_CAPTION,
            "",
            "| " + " | ".join([*names, *(f"{k}-shot" for k in columns)]) + " |",
            "| " + " | ".join(["---"] * len(names) + ["---:"] * len(columns)) + " |",
        ]
        lines += [table_line([*line, *few_shot_cells(cells, columns)]) for line, cells in grid]
        if notes := skipped_notes(skipped, task):
            lines += ["", *(f"- {md(note)}" for note in notes)]
    return lines


def gate_lines(gate: GateOutcome) -> list[str]:
    """The CI gate's outcome: a heading that says passed or FAILED, one table line per check, each failure and
    note. Specs and messages are code spans: `*:*:accuracy=0.3` is not emphasis."""
    lines = ["", f"### CI gate: {gate.summary()}", "", "| Check | Entries | Outcome |", "| --- | ---: | --- |"]
    lines += [
        "| " + " | ".join([code(what, table=True), md(count), md(outcome)]) + " |"
        for what, count, outcome in gate.checks()
    ]
    if gate.failures or gate.notes:
        lines += ["", *(f"- {code(line)}" for line in gate.failures + gate.notes)]
    return lines


def code(text: object, table: bool = False) -> str:
    """Text as an inline code span (inert: no emphasis, links or HTML); in a table cell its pipes escaped. Text
    that holds a backtick or a line break cannot be one: it is escaped with md() instead."""
    text = str(text)
    if "`" in text or "\n" in text or "\r" in text:
        return md(text)
    return "`" + (text.replace("|", "\\|") if table else text) + "`"
