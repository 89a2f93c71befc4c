"""The report in the terminal: rich tables per task (the main table, the means across seeds, the few-shot grid)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

from rich.cells import cell_len
from rich.console import Console, RenderableType
from rich.table import Table
from rich.text import Text

from ..core.progress import console
from ..core.text import inert
from .answers import Answer, footnote
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

# A name column narrower than this folds names into too many lines to read.
MIN_NAME_WIDTH = 24
# The columns a terminal table leaves out first when it is wider than the terminal, in this order (report.md and
# report.html keep every column): the table is never cut to "…".
DROP_ORDER = ("per_class_recall", "n_test", "macro_f1", "accuracy", "seed", "selected", "precision")
ELLIPSIS = "\u2026"


def task_table(entries: list[dict[str, Any]], task: str, width: int | None = None) -> Table:
    """The task's full-data entries, as ordered (the rows under test first, then the baselines), fitted to `width` columns (the
    console's by default): numbers with their intervals under them, columns wrapped, and when that is not enough
    the columns of DROP_ORDER left out, with a note that names them."""
    rows = [entry for entry in full_data(entries) if entry["task"] == task]
    notes = [note for note in (chance_note(rows, task), geometry_note(rows, task), edge_note(rows, task)) if note]
    if any(row.get("duplicates") for row in rows):
        notes.insert(0, str(data_note(rows, task)))
    width = width or console.width
    shown = list(columns(rows))
    left_out: list[str] = []
    while True:
        more = [f"Left out at {width} columns: {', '.join(HEADERS[c] for c in left_out)} (report.md has them)."]
        table = _task_table(rows, task, shown, notes + (more if left_out else []))
        droppable = [c for c in DROP_ORDER if c in shown]
        if _fits(table, width) or not droppable:
            return table
        shown.remove(droppable[0])
        left_out.append(droppable[0])


def _task_table(rows: list[dict[str, Any]], task: str, shown: list[str], notes: list[str]) -> Table:
    table = Table(title=f"{task}", caption="\n".join([CAPTION, *notes]), title_justify="left")
    for column in shown:
        # A name folds when it must (it is one long word); every other cell wraps at spaces and keeps its words.
        table.add_column(
            HEADERS[column],
            justify="right" if column in NUMERIC else "left",
            overflow="fold" if column == "representation" else "ellipsis",
            min_width=MIN_NAME_WIDTH if column == "representation" else None,
        )
    for row in rows:
        # Text, not markup: names such as "mini-clip/random [orbit:hflip]" hold brackets. The interval goes under
        # its number.
        table.add_row(*(Text(cell(column, row, separator="\n")) for column in shown))
    return table


def _fits(table: Table, width: int) -> bool:
    """Whether `table` renders within `width` columns with no cell cut to "…" (rendered, not estimated: rich's
    own layout decides)."""
    trial = Console(width=width, file=io.StringIO(), color_system=None, soft_wrap=False)
    with trial.capture() as captured:
        trial.print(table, crop=False)
    text = captured.get()
    return ELLIPSIS not in text and all(cell_len(line) <= width for line in text.splitlines())


def summary(
    answers: dict[str, list[Answer]],
    experiments: Sequence[tuple[str, list[str]]] = (),
    covered: Sequence[str] = (),
) -> list[RenderableType]:
    """The report's opening: each experiment's findings under its title ((title, lines)), then the answers of every
    task no experiment covers, one line each under the task's name (nothing when there is neither). A task an
    experiment covers has the experiment's contrasts here, and its answers above its own table."""
    lines = Text("Summary", style="bold")
    for title, found_lines in experiments:
        lines.append(f"\n{inert(title)}", style="bold")
        for line in found_lines:
            lines.append(f"\n  {inert(line)}")
    for task, found in answers.items():
        if found and task not in covered:
            lines.append(f"\n{inert(task)}", style="bold")
            for answer in found:
                lines.append(f"\n  {inert(answer.sentence())}")
    return [lines, Text("")] if len(lines.plain) > len("Summary") else []


def answer_text(found: list[Answer]) -> list[RenderableType]:
    """A task's answers, printed above its table, with how they were made."""
    if not found:
        return []
    text = Text("\n".join(inert(answer.sentence()) for answer in found), style="bold")
    if note := footnote(found):
        text.append("\n" + note, style="dim")
    return [text]


def fitted_tables(
    title: str,
    caption: str,
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    width: int,
    keep: int = 1,
    left: Sequence[int] = (0,),
    name_width: int | None = None,
) -> list[Table]:
    """A table of text cells fitted to `width` columns without cutting a cell: whole when it fits; else its
    columns after the first `keep` (the names, repeated in each part) split into parts of as many columns as fit
    ("title (1/2)", ...), down to one column per part. Columns in `left` are left-justified, the rest right; the
    first column is at least `name_width` wide (a name is never folded below it). Every cell folds, never "…"."""
    values = list(range(keep, len(headers)))
    for size in range(len(values), 0, -1):
        chunks = [values[i : i + size] for i in range(0, len(values), size)] or [[]]
        tables = []
        for n, chunk in enumerate(chunks, 1):
            picked = [*range(keep), *chunk]
            part = f" ({n}/{len(chunks)})" if len(chunks) > 1 else ""
            table = Table(title=title + part, caption=caption if n == len(chunks) else None, title_justify="left")
            for j in picked:
                table.add_column(
                    headers[j],
                    justify="left" if j in left else "right",
                    overflow="fold",
                    min_width=name_width if j == 0 else None,
                )
            for row in rows:
                table.add_row(*(Text(row[j]) for j in picked))
            tables.append(table)
        if all(_fits(table, width) for table in tables) or size == 1:
            return tables
    return []


def task_tables(
    entries: list[dict[str, Any]],
    aggregates: list[dict[str, Any]],
    skipped: list[dict[str, Any]],
    tasks: list[str],
    answers: dict[str, list[Answer]] | None = None,
) -> list[RenderableType]:
    """Per task: its answers, the full-data entries; then, when there are any, the means across seeds and the
    few-shot table."""
    tables: list[RenderableType] = []
    for task in tasks:
        if any(entry["task"] == task for entry in full_data(entries)):
            tables += answer_text((answers or {}).get(task, []))
            tables.append(task_table(entries, task))
        tables += rich_tables(aggregates, skipped, task)
    return tables


def rich_tables(entries: list[dict[str, Any]], skipped: list[dict[str, Any]], task: str) -> list[Table]:
    """The terminal's across-seeds and few-shot tables for one task (none when there is nothing to show)."""
    tables = []
    if has_several_seeds(entries, task) and (lines := seeds_rows(entries, task)):
        table = Table(title=f"{task}: across seeds", caption=SEEDS_CAPTION, title_justify="left")
        headers = seeds_headers(entries, task)
        for i, header in enumerate(headers):
            table.add_column(header, justify="left" if i < len(headers) - SEEDS_NUMBERS else "right")
        for cells in lines:
            table.add_row(*(Text(cell) for cell in cells))
        tables.append(table)
    columns, names, grid = few_shot_grid(entries, skipped, task)
    if grid:
        caption = "\n".join([FEW_SHOT_CAPTION, *skipped_notes(skipped, task)])
        table = Table(title=f"{task}: few-shot balanced accuracy", caption=caption, title_justify="left")
        for name in names:
            table.add_column(name)
        for k in columns:
            table.add_column(f"{k}-shot", justify="right")
        for line, shots in grid:
            table.add_row(*(Text(text) for text in line), *(Text(cell) for cell in few_shot_cells(shots, columns)))
        tables.append(table)
    return tables
