"""How `clipprobe report` shows the curation experiment's records: the headline table (terminal, Markdown, HTML),
its heat map and the dose-response plot. Registered as the report's view of "curation-experiment" records."""

from __future__ import annotations

from typing import Any

from matplotlib.figure import Figure
from matplotlib.ticker import NullLocator
from rich.table import Table
from rich.text import Text

from ..report.experiments import EXPERIMENT_VIEWS
from ..report.html import escape as _e
from ..report.html import img as _img
from ..report.plots import DPI, plain, png_bytes, short

# What `clipprobe experiment curation` writes: the record's kind, and the version of its shape (bump when it changes).
EXPERIMENT_KIND = "curation-experiment"
EXPERIMENT_SCHEMA_VERSION = 2
EXPERIMENT_CAPTION = (
    "Balanced accuracy on each task's test split [95 % bootstrap interval]; invariance: embedding distance "
    "within counterfactual pairs / between unrelated images (0: blind to the attribute, 1: as moved as by "
    "another scene)."
)


def experiment_label(row: dict[str, Any]) -> str:
    """How the headline table names a row: the representation, and the method when it is not a probe of it."""
    return f"{row['representation']} · zero-shot" if row["method"] == "zero-shot" else row["representation"]


def experiment_cells(record: dict[str, Any], row: dict[str, Any], separator: str) -> list[str]:
    cells = [experiment_label(row), row["policy"] or "-"]
    for task in record["tasks"]:
        result = row["tasks"].get(task)
        cells.append(
            "-" if result is None else _with_interval(result["balanced_accuracy"], result["interval"], separator)
        )
    for attribute in record["attributes"]:
        score = (row.get("invariance") or {}).get(attribute)
        cells.append(
            "-" if not score or score["score"] is None else _with_interval(score["score"], score["interval"], separator)
        )
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
    lines = [
        f"### {experiment_title(record)}",
        "",
        EXPERIMENT_CAPTION,
        "",
        "| " + " | ".join(headers) + " |",
        "| " + " | ".join("---" if i < 2 else "---:" for i in range(len(headers))) + " |",
    ]
    lines += ["| " + " | ".join(experiment_cells(record, row, separator=" ")) + " |" for row in record["rows"]]
    return "\n".join(lines) + "\n"


def experiment_plots(record: dict[str, Any]) -> dict[str, bytes]:
    """An experiment's plots by kind: the heat map, and with two or more descriptive fractions the dose-response plot."""
    plots = {"heatmap": heatmap_png(record)}
    if len(dose_points(record)) >= 2:
        plots["dose-response"] = dose_response_png(record)
    return plots


def _experiment_section(anchor: str, record: dict[str, Any], plots: dict[str, bytes]) -> str:
    """The headline table, a heat map of it, and (with two or more descriptive fractions) the dose-response plot."""
    headers = experiment_headers(record)
    table = ["<table><tr>" + "".join(f"<th>{_e(h)}</th>" for h in headers) + "</tr>"]
    for row in record["rows"]:
        cells = experiment_cells(record, row, separator=" ")
        table.append(
            "<tr>" + "".join(f"<td{'' if i < 2 else ' class=num'}>{_e(c)}</td>" for i, c in enumerate(cells)) + "</tr>"
        )
    table.append("</table>")
    parts = [
        f'<section id="{anchor}"><h2>{_e(experiment_title(record))}</h2>',
        f'<p class="caption">{_e(EXPERIMENT_CAPTION)}</p>',
        '<div class="scroll">' + "".join(table) + "</div>",
        _img(plots["heatmap"], "balanced accuracy per representation and task"),
    ]
    if "dose-response" in plots:
        parts.append(
            _img(
                plots["dose-response"], "balanced accuracy and invariance against the fraction of descriptive captions"
            )
        )
        parts.append(
            '<p class="caption">Each pretrained model at its fraction of descriptive captions (salient 0, '
            "descriptive 1); error bars are the 95 % intervals; the x axis is linear below 0.01 and logarithmic above.</p>"
        )
    return "\n".join(parts) + "</section>"


def heatmap_png(record: dict[str, Any]) -> bytes:
    """Balanced accuracy above chance, rows x tasks: 0 (white) at chance, 1 (dark) at perfect; the value in each cell."""
    rows, tasks = record["rows"], record["tasks"]
    figure = Figure(figsize=(1.4 + 1.0 * len(tasks) + 2.2, 0.8 + 0.32 * len(rows)), dpi=DPI, layout="constrained")
    axes = figure.add_subplot()
    values, shades = [], []
    for row in rows:
        line, shade = [], []
        for task in tasks:
            result = row["tasks"].get(task)
            value = None if result is None else result["balanced_accuracy"]
            line.append(value)
            shade.append(float("nan") if value is None else (value - result["chance"]) / (1 - result["chance"]))
        values.append(line)
        shades.append(shade)
    axes.imshow(shades, cmap="Blues", vmin=0, vmax=1, aspect="auto")
    for i, line in enumerate(values):
        for j, value in enumerate(line):
            if value is not None:
                axes.text(
                    j,
                    i,
                    f"{value:.2f}",
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if shades[i][j] > 0.6 else "#222",
                )
    axes.set_xticks(
        range(len(tasks)), [plain(t) for t in tasks], rotation=30, ha="right", rotation_mode="anchor", fontsize=8
    )
    axes.set_yticks(range(len(rows)), [plain(short(experiment_label(r), 44)) for r in rows], fontsize=8)
    axes.set_title("balanced accuracy (test); shade: above chance", fontsize=9)
    return png_bytes(figure)


def dose_points(record: dict[str, Any]) -> list[tuple[float, dict[str, Any]]]:
    """(descriptive fraction, row) for the pretrained models' probe rows on the salient-descriptive axis, by fraction."""
    points = [
        (row["descriptive_fraction"], row)
        for row in record["rows"]
        if row["kind"] == "pretrained" and row["method"] == "linear-probe" and row["descriptive_fraction"] is not None
    ]
    return sorted(points, key=lambda point: point[0])


def _accuracy(row: dict[str, Any], task: str) -> tuple[float, list[float] | None] | None:
    result = row["tasks"].get(task)
    return None if result is None else (result["balanced_accuracy"], result["interval"])


def _invariance(row: dict[str, Any], attribute: str) -> tuple[float, list[float] | None] | None:
    score = (row.get("invariance") or {}).get(attribute)
    return None if not score or score["score"] is None else (score["score"], score["interval"])


def dose_response_png(record: dict[str, Any]) -> bytes:
    """Left: balanced accuracy per task against the fraction of descriptive captions; right: invariance per attribute."""
    points = dose_points(record)
    figure = Figure(figsize=(10, 3.8), dpi=DPI, layout="constrained")
    left, right = figure.subplots(1, 2)
    panels = (
        (left, record["tasks"], _accuracy, "balanced accuracy (test)", "what a linear probe can read"),
        (
            right,
            record["attributes"],
            _invariance,
            "invariance score (0: blind to it)",
            "how much the embedding moves with the attribute",
        ),
    )
    for axes, names, measure, ylabel, title in panels:
        for name in names:
            measured = [(fraction, m) for fraction, row in points if (m := measure(row, name)) is not None]
            if not measured:
                continue
            xs = [fraction for fraction, _ in measured]
            values = [value for _, (value, _) in measured]
            below = [value - (interval or (value, value))[0] for _, (value, interval) in measured]
            above = [(interval or (value, value))[1] - value for _, (value, interval) in measured]
            axes.errorbar(
                xs,
                values,
                yerr=[[max(b, 0) for b in below], [max(a, 0) for a in above]],
                marker="o",
                markersize=4,
                capsize=3,
                lw=1.3,
                label=plain(name),
            )
        fractions = sorted({fraction for fraction, _ in points})
        # Linear below 1 %, logarithmic above: 0, 0.01, 0.1 and 1 all get room.
        axes.set_xscale("symlog", linthresh=0.01)
        axes.set_xlim(-0.001, 1.1)
        axes.set_xticks(fractions, [f"{x:g}" for x in fractions], fontsize=7)
        axes.xaxis.set_minor_locator(NullLocator())
        axes.set_xlabel("fraction of descriptive captions", fontsize=8)
        axes.set_ylabel(ylabel, fontsize=8)
        axes.tick_params(labelsize=7)
        axes.grid(alpha=0.3)
        axes.legend(fontsize=7, frameon=False)
        axes.set_title(title, fontsize=9)
    return png_bytes(figure)


class CurationView:
    """The report's view of a curation-experiment record (clipprobe.report.experiments.ExperimentView)."""

    def __init__(self, schema_version: int):
        self.schema_version = schema_version

    def title(self, record: dict[str, Any]) -> str:
        return experiment_title(record)

    def table(self, record: dict[str, Any]) -> Table:
        return experiment_table(record)

    def markdown(self, record: dict[str, Any]) -> str:
        return experiment_markdown(record)

    def plots(self, record: dict[str, Any]) -> dict[str, bytes]:
        return experiment_plots(record)

    def html(self, anchor: str, record: dict[str, Any], plots: dict[str, bytes]) -> str:
        return _experiment_section(anchor, record, plots)


EXPERIMENT_VIEWS.register(EXPERIMENT_KIND, CurationView(EXPERIMENT_SCHEMA_VERSION))
