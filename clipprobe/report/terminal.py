"""The report in the terminal: rich tables per task (the main table, the means across seeds, the few-shot grid)."""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text

from .tables import (
    CAPTION,
    FEW_SHOT_CAPTION,
    HEADERS,
    NUMERIC,
    SEEDS_CAPTION,
    SEEDS_HEADERS,
    cell,
    chance_note,
    columns,
    edge_note,
    few_shot_cells,
    few_shot_grid,
    full_data,
    geometry_note,
    has_several_seeds,
    seeds_rows,
    skipped_notes,
)


def task_table(entries: list[dict[str, Any]], task: str) -> Table:
    """The task's full-data entries, as ordered (best balanced accuracy first)."""
    rows = [entry for entry in full_data(entries) if entry["task"] == task]
    notes = [note for note in (chance_note(rows, task), geometry_note(rows, task), edge_note(rows, task)) if note]
    table = Table(title=f"{task}", caption="\n".join([CAPTION, *notes]), title_justify="left")
    shown = columns(rows)
    for column in shown:
        table.add_column(
            HEADERS[column], justify="right" if column in NUMERIC else "left", no_wrap=column != "per_class_recall"
        )
    for row in rows:
        # Text, not markup: names such as "mini-clip/random [orbit:hflip]" hold brackets.
        # The interval goes under its number here, so that the table fits 160 columns (CI logs).
        table.add_row(*(Text(cell(column, row, separator="\n")) for column in shown))
    return table


def task_tables(
    entries: list[dict[str, Any]], aggregates: list[dict[str, Any]], skipped: list[dict[str, Any]], tasks: list[str]
) -> list[Table]:
    """Per task: the full-data entries; then, when there are any, the means across seeds and the few-shot table."""
    tables = []
    for task in tasks:
        if any(entry["task"] == task for entry in full_data(entries)):
            tables.append(task_table(entries, task))
        tables += rich_tables(aggregates, skipped, task)
    return tables


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
    columns, grid = few_shot_grid(entries, skipped, task)
    if grid:
        caption = "\n".join([FEW_SHOT_CAPTION, *skipped_notes(skipped, task)])
        table = Table(title=f"{task}: few-shot balanced accuracy", caption=caption, title_justify="left")
        table.add_column("Representation")
        table.add_column("Method")
        for k in columns:
            table.add_column(f"{k}-shot", justify="right")
        for row, method, cells in grid:
            table.add_row(Text(row), Text(method), *(Text(cell) for cell in few_shot_cells(cells, columns)))
        tables.append(table)
    return tables
