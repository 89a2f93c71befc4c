"""How `clipprobe report` shows a blind-spots record (clipprobe.dashcam.blindspots): the blindness table in every
format and a line per model for the summary. Registered as the report's view of "blind-spots" records."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from ..core.progress import console
from ..core.records import from_json
from ..report.experiments import EXPERIMENT_VIEWS
from ..report.html import escape as _e
from .blindness import blindness_caption, blindness_html, blindness_markdown, blindness_terminal
from .blindspots import BLIND_SPOTS_KIND, BLIND_SPOTS_SCHEMA_VERSION, BlindSpotsRecord
from .records import BlindnessRow


def blind_spots_title(record: BlindSpotsRecord) -> str:
    seeds = record.design.seeds
    span = f"seed {seeds[0]}" if len(seeds) == 1 else f"{len(seeds)} seeds"
    return f"Blind spots: {', '.join(record.design.models)} ({span}, {record.design.precision})"


def reaches_chance(row: BlindnessRow, representation: str) -> bool:
    """Whether the representation's probe interval on the attribute reaches chance (or it has no interval and its
    estimate is at or below chance): read-outs the data cannot tell from guessing."""
    cell = next((c for c in row.cells if c.representation == representation), None)
    if cell is None or cell.probe is None:
        return False
    low = cell.probe.interval[0] if cell.probe.interval is not None else cell.probe.value
    return low <= row.chance


def blind_spots_summary(rows: list[BlindnessRow]) -> list[str]:
    """Per representation: the attributes its probe cannot tell from chance, beside the CNN's reading of them
    (descriptive: intervals, no test across attributes)."""
    names = list(dict.fromkeys(c.representation for row in rows for c in row.cells))
    lines = []
    for name in names:
        blind = [row for row in rows if reaches_chance(row, name)]
        if not blind:
            lines.append(f"{name}: every attribute's probe interval lies above chance.")
            continue
        read = [
            f"{row.task} ({row.pattern}; CNN {row.trained.value:.2f})" if row.trained else f"{row.task} ({row.pattern})"
            for row in blind
        ]
        lines.append(f"{name}: probe interval reaches chance on {len(blind)} of {len(rows)}: {'; '.join(read)}.")
    return lines


class BlindSpotsView:
    """The report's view of a blind-spots record (clipprobe.report.experiments.ExperimentView)."""

    def __init__(self, schema_version: int):
        self.schema_version = schema_version

    def from_json(self, data: Any, where: str) -> BlindSpotsRecord:
        return from_json(BlindSpotsRecord, data, where)

    def tasks(self, record: BlindSpotsRecord) -> list[str]:
        return list(record.design.tasks)

    def title(self, record: BlindSpotsRecord) -> str:
        return blind_spots_title(record)

    def tables(self, record: BlindSpotsRecord, width: int | None = None) -> list[Table]:
        threshold = record.design.blind_threshold
        return blindness_terminal(blind_spots_title(record), record.rows, threshold, width or console.width)

    def summary(self, record: BlindSpotsRecord) -> list[str]:
        return blind_spots_summary(record.rows)

    def markdown(self, record: BlindSpotsRecord) -> str:
        lines = [f"### {blind_spots_title(record)}", "", blindness_caption(record.design.blind_threshold), ""]
        lines += blindness_markdown(record.rows)
        lines += ["", *(f"- {line}" for line in blind_spots_summary(record.rows))]
        return "\n".join(lines) + "\n"

    def plots(self, record: BlindSpotsRecord) -> dict[str, bytes]:
        return {}

    def html(self, anchor: str, record: BlindSpotsRecord, plots: dict[str, bytes]) -> str:
        summary = "".join(f"<li>{_e(line)}</li>" for line in blind_spots_summary(record.rows))
        return (
            f'<section id="{anchor}"><h2>{_e(blind_spots_title(record))}</h2>'
            f'<p class="caption">{_e(blindness_caption(record.design.blind_threshold))}</p>'
            f"{blindness_html(record.rows)}<ul>{summary}</ul></section>"
        )


EXPERIMENT_VIEWS.register(BLIND_SPOTS_KIND, BlindSpotsView(BLIND_SPOTS_SCHEMA_VERSION))
