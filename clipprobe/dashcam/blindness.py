"""The blindness table: per attribute of the blind-pattern suite (grouped by the visual pattern its task tests) and
per frozen representation, what a linear probe of the embedding reads, what a CNN trained on the labels reads, how
much the embedding moves with the attribute (the sensitivity score) and how often a counterfactual pair's two
embeddings are nearly identical (the blind-pair rate, MMVP's measure).

It is a view of an experiment's rows (clipprobe.dashcam.records.ExperimentRow), so the curation experiment and
`clipprobe blind-spots` build it the same way; the CNN's column is the reference for "could the images tell at all"
(a probe at chance beside a CNN at chance says nothing about the embedding)."""

from __future__ import annotations

from rich.table import Table

from ..core.kinds import RowKind
from ..data.patterns import PATTERNS
from ..data.task import get_task
from ..probes.registry import get_probe
from ..report.html import escape
from ..report.markdown import table_line
from ..report.terminal import fitted_tables
from .records import BlindnessCell, BlindnessRow, ExperimentRow, Measure, SensitivityCell, TaskCell

# The trained network whose balanced accuracy is the table's reference, and the control read like every model.
REFERENCE_BASELINE = "cnn"
CONTROL_BASELINE = "random"


def _from_task(cell: TaskCell | None) -> Measure | None:
    return None if cell is None else Measure(cell.balanced_accuracy, cell.interval, list(cell.per_seed))


def _from_sensitivity(cell: SensitivityCell | None) -> tuple[Measure | None, Measure | None, float | None]:
    if cell is None:
        return None, None, None
    score = (
        None if cell.score is None else Measure(cell.score, cell.interval, [v for v in cell.per_seed if v is not None])
    )
    if cell.blind_pair_rate is None:
        return score, None, None
    rate = Measure(cell.blind_pair_rate, cell.blind_pair_interval, list(cell.blind_per_seed))
    unrelated = sum(cell.unrelated_blind_rate) / len(cell.unrelated_blind_rate) if cell.unrelated_blind_rate else None
    return score, rate, unrelated


def frozen_rows(rows: list[ExperimentRow]) -> list[ExperimentRow]:
    """The representations of the table: every frozen model's and random weights' linear probe at the embedding."""
    linear = get_probe("linear").method
    return [
        row
        for row in rows
        if row.method == linear
        and row.layer == "embedding"
        and (row.kind is RowKind.PROBE or (row.kind is RowKind.CONTROL and row.baseline == CONTROL_BASELINE))
    ]


def blindness_table(rows: list[ExperimentRow], tasks: list[str]) -> list[BlindnessRow]:
    """One row per task of `tasks` that tests a pattern (clipprobe.data.task.Task.pattern), in the patterns' order,
    each with a cell per frozen representation."""
    pattern_of = {task: get_task(task).pattern for task in tasks}
    reference = next((row for row in rows if row.kind is RowKind.TRAINED and row.baseline == REFERENCE_BASELINE), None)
    table = []
    for pattern in PATTERNS:
        for task in (t for t in tasks if pattern_of[t] == pattern):
            cells = []
            chance = None
            for row in frozen_rows(rows):
                measured = row.tasks.get(task)
                chance = chance if measured is None else measured.chance
                score, rate, unrelated = _from_sensitivity((row.sensitivity or {}).get(task))
                cells.append(
                    BlindnessCell(
                        row.representation, row.policy, row.kind, _from_task(measured), score, rate, unrelated
                    )
                )
            trained = reference.tasks.get(task) if reference is not None else None
            chance = chance if chance is not None else (trained.chance if trained is not None else None)
            if chance is None:  # no row read this task
                continue
            table.append(
                BlindnessRow(
                    pattern=pattern,
                    task=task,
                    chance=chance,
                    trained=_from_task(trained),
                    trained_name=reference.representation if reference is not None and trained is not None else None,
                    cells=cells,
                )
            )
    return table


BLINDNESS_CAPTION = (
    "The blind-pattern suite, one row per attribute and representation, grouped by the visual pattern it tests "
    "(MMVP's nine). Probe: balanced accuracy of a linear probe of the frozen embedding; CNN: a network trained on "
    "the labels (the reference: whether the images tell the attribute at all); chance beside them. Sensitivity: how "
    "far counterfactual pairs move apart relative to unrelated images that make the same change (0: blind). Blind "
    "pairs: the share of counterfactual pairs whose embeddings have cosine similarity above {threshold}, beside the "
    "same share among unrelated images (a rate near the unrelated one means the pairs are no closer than any two "
    "scenes). Mean over seeds with a 95 % interval (seed-level; one seed: over test images, or over pairs)."
)
BLINDNESS_HEADERS = ["Pattern", "Attribute", "Representation", "Probe", "CNN", "Chance", "Sensitivity", "Blind pairs"]


def _measure(measure: Measure | None, separator: str, digits: int = 3) -> str:
    if measure is None:
        return "-"
    text = f"{measure.value:.{digits}f}"
    if measure.interval is not None:
        text += f"{separator}[{measure.interval[0]:.{digits}f}, {measure.interval[1]:.{digits}f}]"
    return text


def blindness_grid(table: list[BlindnessRow], separator: str = " ") -> list[list[str]]:
    """The table as text cells, a line per (attribute, representation); the pattern and attribute on the first
    line of each attribute only."""
    grid = []
    for row in table:
        for index, cell in enumerate(row.cells):
            rate = _measure(cell.blind_pair_rate, separator, 2)
            if cell.blind_pair_rate is not None and cell.unrelated_blind_rate is not None:
                rate += f"{separator}(unrelated {cell.unrelated_blind_rate:.2f})"
            grid.append(
                [
                    row.pattern if index == 0 else "",
                    row.task if index == 0 else "",
                    cell.representation,
                    _measure(cell.probe, separator),
                    _measure(row.trained, separator) if index == 0 else "",
                    f"{row.chance:.3f}" if index == 0 else "",
                    _measure(cell.sensitivity, separator),
                    rate,
                ]
            )
    return grid


def blindness_caption(threshold: float | None) -> str:
    return BLINDNESS_CAPTION.format(threshold=f"{threshold:g}" if threshold is not None else "the threshold")


# The narrowest the column of names gets in the terminal.
NAME_WIDTH = 16


def blindness_terminal(title: str, table: list[BlindnessRow], threshold: float | None, width: int) -> list[Table]:
    """The table in a terminal of `width` columns: the representation first, the attribute and its pattern beside
    it on each attribute's first line; split into parts that repeat the names when too wide."""
    grid = blindness_grid(table, "\n")
    cells = [[line[2], f"{line[1]}\n({line[0]})" if line[1] else "", *line[3:]] for line in grid]
    return fitted_tables(
        title,
        blindness_caption(threshold),
        ["Representation", "Attribute", *BLINDNESS_HEADERS[3:]],
        cells,
        width,
        left=(0, 1),
        name_width=min(max((len(line[0]) for line in cells), default=NAME_WIDTH), max(NAME_WIDTH, 2 * width // 5)),
    )


def blindness_markdown(table: list[BlindnessRow]) -> list[str]:
    """The table as Markdown lines (text columns left, numbers right)."""
    return [
        "| " + " | ".join(BLINDNESS_HEADERS) + " |",
        "| " + " | ".join("---" if i < 3 else "---:" for i in range(len(BLINDNESS_HEADERS))) + " |",
        *(table_line(row) for row in blindness_grid(table)),
    ]


def blindness_html(table: list[BlindnessRow]) -> str:
    """The table as a scrolling HTML table (text columns left, numbers right)."""
    header = "<tr>" + "".join(f"<th>{escape(h)}</th>" for h in BLINDNESS_HEADERS) + "</tr>"
    body = "".join(
        "<tr>" + "".join(f"<td{'' if i < 3 else ' class=num'}>{escape(c)}</td>" for i, c in enumerate(cells)) + "</tr>"
        for cells in blindness_grid(table)
    )
    return f'<div class="scroll"><table>{header}{body}</table></div>'
