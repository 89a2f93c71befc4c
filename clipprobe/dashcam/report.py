"""How `clipprobe report` shows the curation experiment's records: the headline table (terminal, Markdown, HTML),
its heat map and the dose-response plot. Registered as the report's view of "curation-experiment" records."""

from __future__ import annotations

from typing import Any

from matplotlib.figure import Figure
from matplotlib.ticker import NullLocator
from rich.table import Table

from ..core.kinds import RowKind
from ..core.progress import console
from ..core.records import from_json
from ..probes.registry import get_probe
from ..report.experiments import EXPERIMENT_VIEWS
from ..report.html import escape as _e
from ..report.html import img as _img
from ..report.markdown import table_line
from ..report.plots import DPI, plain, png_bytes, short
from ..report.terminal import fitted_tables
from .blindness import blindness_caption, blindness_html, blindness_markdown, blindness_terminal
from .contrasts import EXPLORATORY
from .records import EXPERIMENT_KIND, EXPERIMENT_SCHEMA_VERSION, Contrast, ExperimentRecord, ExperimentRow

EXPERIMENT_CAPTION = (
    "Balanced accuracy on each task's test split: the mean over seeds ± their standard deviation, and a 95 % "
    "interval of that mean with the seed as the unit (t over the seeds, the test images' share added) [low, high]. Sensitivity (on the final embedding; larger: more "
    "sensitive): distance within counterfactual pairs / distance within unrelated pairs that make the same value "
    "change (0: blind to it, 1: as sensitive as an embedding of that attribute alone), mean ± sd over seeds and a "
    "seed-level interval; each seed's numerator (in the embedding's units) is in the JSON."
)
PRIMARY_CAPTION = (
    "Pre-registered primary contrasts (clipprobe.dashcam.preregistration, version {version}): row minus reference "
    "in balanced accuracy, with the seed as the unit (paired t over shared pretraining seeds, Welch's t over a "
    "trained network's own seeds; the test images' share added), a 95 % interval, Holm-adjusted p across the "
    "family, and the equivalence test against the declared margin. Resolved: adjusted p < 0.05. Not resolved is "
    "not equal: equality is claimed only when the equivalence test rejects."
)
EXPLORATORY_CAPTION = (
    "Exploratory comparisons (not pre-registered): the same estimate and seed-level interval, with "
    "Benjamini-Hochberg q-values over all of them. A q-value under 0.05 is a lead for a later pre-registered run, "
    "not a conclusion."
)
PRIMARY_HEADERS = ["Contrast", "Estimate", "95 % interval", "Seeds", "p (Holm)", "Equivalence p", "Verdict"]
EXPLORATORY_HEADERS = ["Comparison", "Estimate", "95 % interval", "Seeds", "p", "q (BH)", "Verdict"]


def _linear_method() -> str:
    """The method of the linear probe's rows (the headline rows, named by their representation alone)."""
    return get_probe("linear").method


def experiment_label(row: ExperimentRow) -> str:
    """How the headline table names a row: the representation, and the method unless the row is its linear probe
    or a network trained on the labels (whose name says what it is): "mini-clip/dashcam-salient · mlp-probe"."""
    if row.kind is RowKind.TRAINED or row.method == _linear_method():
        return row.representation
    return f"{row.representation} · {row.method}"


def layer_rows(record: ExperimentRecord, layer: str) -> list[ExperimentRow]:
    """The rows of one layer's table; rows without layers (the trained baselines) go with the first layer."""
    first = record.layers[0]
    return [row for row in record.rows if row.layer == layer or (row.layer is None and layer == first)]


def _number(value: float, sd: float | None, interval: list[float] | None, separator: str) -> str:
    text = f"{value:.3f}" + (f" ± {sd:.3f}" if sd is not None else "")
    return text + (f"{separator}[{interval[0]:.3f}, {interval[1]:.3f}]" if interval else "")


def experiment_cells(
    record: ExperimentRecord, row: ExperimentRow, separator: str, attributes: bool = True
) -> list[str]:
    cells = [experiment_label(row), row.policy or "-"]
    for task in record.tasks:
        result = row.tasks.get(task)
        cells.append(
            "-" if result is None else _number(result.balanced_accuracy, result.sd, result.interval, separator)
        )
    for attribute in record.attributes if attributes else ():
        score = (row.sensitivity or {}).get(attribute)
        cells.append(
            "-" if not score or score.score is None else _number(score.score, score.sd, score.interval, separator)
        )
    return cells


def experiment_headers(record: ExperimentRecord, attributes: bool = True) -> list[str]:
    sensitivity = [f"sensitivity: {a}" for a in record.attributes] if attributes else []
    return ["Representation", "Captions", *record.tasks, *sensitivity]


def experiment_title(record: ExperimentRecord) -> str:
    seeds = record.seeds
    span = f"seed {seeds[0]}" if len(seeds) == 1 else f"{len(seeds)} pretraining seeds ({seeds[0]}-{seeds[-1]})"
    return f"Curation experiment: {', '.join(record.design.policies)}; {span}"


def _layer_tables(record: ExperimentRecord) -> list[tuple[str, list[str], list[ExperimentRow], bool]]:
    """(layer, headers, rows, with sensitivity columns) per layer: sensitivity is measured on the embedding only."""
    out = []
    for layer in record.layers:
        attributes = layer == "embedding"
        out.append((layer, experiment_headers(record, attributes), layer_rows(record, layer), attributes))
    return out


def _p(value: float | None) -> str:
    if value is None:
        return "-"
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


def _seeds(c: Contrast) -> str:
    n_row, n_against = len(c.per_seed), len(c.per_seed_against)
    return f"{n_row} paired" if c.paired else f"{n_row} vs {n_against}"


def contrast_cells(c: Contrast) -> list[str]:
    interval = "-" if c.interval is None else f"[{c.interval[0]:+.3f}, {c.interval[1]:+.3f}]"
    last = _p(c.equivalence) + (f" (±{c.margin:g})" if c.margin is not None and c.equivalence is not None else "")
    middle = last if c.family != EXPLORATORY else _p(c.p)
    adjusted = _p(c.adjusted)
    cells = [c.name, f"{c.estimate:+.3f}", interval, _seeds(c)]
    return cells + ([adjusted, middle] if c.family != EXPLORATORY else [middle, adjusted]) + [c.verdict]


def primary_grid(record: ExperimentRecord) -> list[list[str]]:
    return [contrast_cells(c) for c in record.primary]


def exploratory_grid(record: ExperimentRecord, leads_only: bool = False) -> list[list[str]]:
    """The exploratory comparisons (with `leads_only`, those with q < 0.05), smallest q first."""
    chosen = [c for c in record.exploratory if not leads_only or (c.adjusted is not None and c.adjusted < 0.05)]
    return [contrast_cells(c) for c in sorted(chosen, key=lambda c: (c.adjusted is None, c.adjusted or 0.0, c.name))]


def primary_caption(record: ExperimentRecord) -> str:
    return PRIMARY_CAPTION.format(version=record.preregistration)


# The narrowest a column of names gets in the terminal: narrower, a name folds into too many lines to read.
NAME_WIDTH = 16


def experiment_tables(record: ExperimentRecord, width: int | None = None) -> list[Table]:
    """The headline tables in the terminal (`width` columns, the console's by default): the primary contrasts and
    the exploratory leads, then per layer a table of balanced accuracy and, at the embedding, one of sensitivity
    (report.md has them side by side). Every row and comparison is named in full where the width allows (two fifths
    of it for names; a model's name holds its caption policy), and a table that does not fit is split into parts
    that do (clipprobe.report.terminal.fitted_tables), never cut to "…"."""
    width = width or console.width
    names = max(NAME_WIDTH, 2 * width // 5)
    tables = _contrast_tables(record, names, width)
    for layer, headers, rows, attributes in _layer_tables(record):
        tasks = 2 + len(record.tasks)  # the name, the captions, then a column per task
        parts = [(f"layer {layer}", list(range(tasks)), rows)]
        if attributes:
            measured = [row for row in rows if row.sensitivity]
            parts.append((f"sensitivity, layer {layer}", [0, 1, *range(tasks, len(headers))], measured))
        for title, picked, shown in parts:
            if not shown or len(picked) == 2:
                continue
            picked.remove(1)  # the captions: in the terminal, the model's name says them
            cells = [experiment_cells(record, row, "\n", attributes) for row in shown]
            tables += fitted_tables(
                f"{experiment_title(record)} · {title}",
                EXPERIMENT_CAPTION,
                [headers[j] for j in picked],
                [[line[j] for j in picked] for line in cells],
                width,
                name_width=min(max(len(line[0]) for line in cells), names),
            )
    return tables + blindness_tables(record, width)


def blindness_tables(record: ExperimentRecord, width: int | None = None) -> list[Table]:
    """The blindness table in the terminal (none when the run has no task of the blind-pattern suite)."""
    if not record.blindness:
        return []
    title = f"{experiment_title(record)} · blindness table"
    return blindness_terminal(title, record.blindness, record.design.blind_threshold, width or console.width)


def experiment_summary(record: ExperimentRecord) -> list[str]:
    """One line per primary contrast ("light: descriptive - salient: +0.139 [+0.042, +0.235], resolved (Holm p
    0.016)"), then how many exploratory comparisons have q < 0.05; or why there is no primary contrast."""
    lines = []
    for c in record.primary:
        interval = f" [{c.interval[0]:+.3f}, {c.interval[1]:+.3f}]" if c.interval is not None else ""
        lines.append(f"{c.name}: {c.estimate:+.3f}{interval}, {c.verdict} (Holm p {_p(c.adjusted)})")
    if not record.primary:
        lines.append("No pre-registered contrast: the run lacks the rows they compare (make experiment runs them).")
    leads = sum(c.adjusted is not None and c.adjusted < 0.05 for c in record.exploratory)
    if record.exploratory:
        lines.append(
            f"Exploratory: {leads} of {len(record.exploratory)} comparisons with q < 0.05 (leads, not findings)."
        )
    return lines


def _contrast_tables(record: ExperimentRecord, names: int, width: int) -> list[Table]:
    """The primary contrasts, then the exploratory leads (q < 0.05; every comparison is in report.md and the JSON)."""
    out: list[Table] = []
    leads = exploratory_grid(record, leads_only=True)
    others = len(record.exploratory) - len(leads)
    for title, caption, headers, grid in (
        ("primary contrasts", primary_caption(record), PRIMARY_HEADERS, primary_grid(record)),
        (
            f"exploratory leads (q < 0.05; {others} more not resolved, in report.md)",
            EXPLORATORY_CAPTION,
            EXPLORATORY_HEADERS,
            leads,
        ),
    ):
        if not grid and title.startswith("primary"):
            continue
        out += fitted_tables(
            f"{experiment_title(record)} · {title}",
            caption,
            headers,
            grid,
            width,
            left=(0, 3, 6),
            name_width=min(max((len(line[0]) for line in grid), default=NAME_WIDTH), names),
        )
    return out


def _markdown_table(headers: list[str], rows: list[list[str]], left: int) -> list[str]:
    return [
        "| " + " | ".join(headers) + " |",
        "| " + " | ".join("---" if i < left else "---:" for i in range(len(headers))) + " |",
        *(table_line(row) for row in rows),
    ]


def experiment_markdown(record: ExperimentRecord) -> str:
    lines = [f"### {experiment_title(record)}", ""]
    if record.primary:
        lines += ["#### Primary contrasts (pre-registered)", "", primary_caption(record), ""]
        lines += _markdown_table(PRIMARY_HEADERS, primary_grid(record), 1)
        lines += [""]
    lines += [EXPERIMENT_CAPTION]
    for layer, headers, rows, attributes in _layer_tables(record):
        lines += ["", f"#### Layer: {layer}", ""]
        lines += _markdown_table(headers, [experiment_cells(record, row, " ", attributes) for row in rows], 2)
    if record.blindness:
        lines += [
            "",
            "#### Blindness table (the blind-pattern suite)",
            "",
            blindness_caption(record.design.blind_threshold),
            "",
        ]
        lines += blindness_markdown(record.blindness)
    if record.exploratory:
        lines += ["", "#### Exploratory comparisons", "", EXPLORATORY_CAPTION, ""]
        lines += _markdown_table(EXPLORATORY_HEADERS, exploratory_grid(record), 1)
    return "\n".join(lines) + "\n"


def experiment_plots(record: ExperimentRecord) -> dict[str, bytes]:
    """An experiment's plots by kind: the heat map, and with two or more descriptive fractions the dose-response plot."""
    plots = {"heatmap": heatmap_png(record)}
    if len(dose_points(record)) >= 2:
        plots["dose-response"] = dose_response_png(record)
    return plots


def _html_table(headers: list[str], rows: list[list[str]], left: int) -> str:
    table = ["<table><tr>" + "".join(f"<th>{_e(h)}</th>" for h in headers) + "</tr>"]
    for cells in rows:
        table.append(
            "<tr>"
            + "".join(f"<td{'' if i < left else ' class=num'}>{_e(c)}</td>" for i, c in enumerate(cells))
            + "</tr>"
        )
    return '<div class="scroll">' + "".join(table) + "</table></div>"


def _experiment_section(anchor: str, record: ExperimentRecord, plots: dict[str, bytes]) -> str:
    """The headline tables (one per layer), the paired differences, a heat map, and (with two or more
    descriptive fractions) the dose-response plot."""
    parts = [
        f'<section id="{anchor}"><h2>{_e(experiment_title(record))}</h2>',
    ]
    if record.primary:
        parts += [
            "<h3>Primary contrasts (pre-registered)</h3>",
            f'<p class="caption">{_e(primary_caption(record))}</p>',
            _html_table(PRIMARY_HEADERS, primary_grid(record), 1),
        ]
    parts.append(f'<p class="caption">{_e(EXPERIMENT_CAPTION)}</p>')
    for layer, headers, rows, attributes in _layer_tables(record):
        parts += [
            f"<h3>Layer: {_e(layer)}</h3>",
            _html_table(headers, [experiment_cells(record, row, " ", attributes) for row in rows], 2),
        ]
    if record.blindness:
        parts += [
            "<h3>Blindness table (the blind-pattern suite)</h3>",
            f'<p class="caption">{_e(blindness_caption(record.design.blind_threshold))}</p>',
            blindness_html(record.blindness),
        ]
    if record.exploratory:
        parts += [
            "<h3>Exploratory comparisons</h3>",
            f'<p class="caption">{_e(EXPLORATORY_CAPTION)}</p>',
            _html_table(EXPLORATORY_HEADERS, exploratory_grid(record), 1),
        ]
    parts.append(_img(plots["heatmap"], "balanced accuracy per representation and task, one panel per layer"))
    if "dose-response" in plots:
        parts.append(
            _img(
                plots["dose-response"], "balanced accuracy and sensitivity against the fraction of descriptive captions"
            )
        )
        parts.append(
            '<p class="caption">Each pretrained model at its fraction of descriptive captions (salient 0, '
            "descriptive 1), on its final embedding: each seed a small dot, their mean with the 95 % interval; the x "
            "axis is linear below 0.01 and logarithmic above.</p>"
        )
    return "\n".join(parts) + "</section>"


def heatmap_png(record: ExperimentRecord) -> bytes:
    """Balanced accuracy above chance, rows x tasks, one panel per layer: 0 (white) at chance, 1 (dark) at perfect;
    the mean over seeds in each cell."""
    tasks, panels = record.tasks, [(layer, layer_rows(record, layer)) for layer in record.layers]
    height = 0.8 * len(panels) + 0.3 * sum(len(rows) for _, rows in panels)
    figure = Figure(figsize=(1.4 + 1.0 * len(tasks) + 2.2, height), dpi=DPI, layout="constrained")
    axes_list = figure.subplots(len(panels), 1, squeeze=False, height_ratios=[max(1, len(r)) for _, r in panels])[:, 0]
    for axes, (layer, rows) in zip(axes_list, panels):
        values, shades = [], []
        for row in rows:
            line, shade = [], []
            for task in tasks:
                result = row.tasks.get(task)
                line.append(None if result is None else result.balanced_accuracy)
                shade.append(
                    float("nan") if result is None else (result.balanced_accuracy - result.chance) / (1 - result.chance)
                )
            values.append(line)
            shades.append(shade)
        axes.imshow(shades, cmap="Blues", vmin=0, vmax=1, aspect="auto")
        for i, line in enumerate(values):
            for j, value in enumerate(line):
                if value is not None:
                    color = "white" if shades[i][j] > 0.6 else "#222"
                    axes.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=8, color=color)
        axes.set_xticks(
            range(len(tasks)), [plain(t) for t in tasks], rotation=30, ha="right", rotation_mode="anchor", fontsize=8
        )
        axes.set_yticks(range(len(rows)), [plain(short(experiment_label(r), 44)) for r in rows], fontsize=8)
        axes.set_title(f"layer {layer}: balanced accuracy (test); shade: above chance", fontsize=9)
    return png_bytes(figure)


def dose_points(record: ExperimentRecord) -> list[tuple[float, ExperimentRow]]:
    """(descriptive fraction, row) for the pretrained models' probe rows on the salient-descriptive axis, by fraction."""
    points = [
        (row.descriptive_fraction, row)
        for row in record.rows
        if row.kind is RowKind.PROBE
        and row.policy is not None
        and row.method == _linear_method()
        and row.descriptive_fraction is not None
        and row.layer == "embedding"
    ]
    return sorted(points, key=lambda point: point[0])


def _accuracy(row: ExperimentRow, task: str) -> tuple[float, list[float] | None, list[float]] | None:
    result = row.tasks.get(task)
    return None if result is None else (result.balanced_accuracy, result.interval, result.per_seed)


def _sensitivity(row: ExperimentRow, attribute: str) -> tuple[float, list[float] | None, list[float]] | None:
    score = (row.sensitivity or {}).get(attribute)
    if not score or score.score is None:
        return None
    return score.score, score.interval, [v for v in score.per_seed if v is not None] or [score.score]


def dose_response_png(record: ExperimentRecord) -> bytes:
    """Left: balanced accuracy per task against the fraction of descriptive captions; right: sensitivity per attribute."""
    points = dose_points(record)
    figure = Figure(figsize=(10, 3.8), dpi=DPI, layout="constrained")
    left, right = figure.subplots(1, 2)
    panels = (
        (left, record.tasks, _accuracy, "balanced accuracy (test)", "what a linear probe can read"),
        (
            right,
            record.attributes,
            _sensitivity,
            "sensitivity score (0: blind to it)",
            "how much the embedding moves with the attribute",
        ),
    )
    for axes, names, measure, ylabel, title in panels:
        for name in names:
            measured = [(fraction, m) for fraction, row in points if (m := measure(row, name)) is not None]
            if not measured:
                continue
            xs = [fraction for fraction, _ in measured]
            values = [value for _, (value, _, _) in measured]
            below = [value - (interval or (value, value))[0] for _, (value, interval, _) in measured]
            above = [(interval or (value, value))[1] - value for _, (value, interval, _) in measured]
            line = axes.errorbar(
                xs,
                values,
                yerr=[[max(b, 0) for b in below], [max(a, 0) for a in above]],
                marker="o",
                markersize=4,
                capsize=3,
                lw=1.3,
                label=plain(name),
            )
            seeds = [(x, v) for x, (_, _, per_seed) in zip(xs, [m for _, m in measured]) for v in per_seed]
            if len(seeds) > len(xs):  # several seeds: each one's value, beside their mean
                axes.scatter(
                    [x for x, _ in seeds],
                    [v for _, v in seeds],
                    s=8,
                    alpha=0.45,
                    color=line.lines[0].get_color(),
                    zorder=3,
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

    def from_json(self, data: Any, where: str) -> ExperimentRecord:
        return from_json(ExperimentRecord, data, where)

    def tasks(self, record: ExperimentRecord) -> list[str]:
        return list(record.tasks)

    def title(self, record: ExperimentRecord) -> str:
        return experiment_title(record)

    def tables(self, record: ExperimentRecord) -> list[Table]:
        return experiment_tables(record)

    def summary(self, record: ExperimentRecord) -> list[str]:
        return experiment_summary(record)

    def markdown(self, record: ExperimentRecord) -> str:
        return experiment_markdown(record)

    def plots(self, record: ExperimentRecord) -> dict[str, bytes]:
        return experiment_plots(record)

    def html(self, anchor: str, record: ExperimentRecord, plots: dict[str, bytes]) -> str:
        return _experiment_section(anchor, record, plots)


EXPERIMENT_VIEWS.register(EXPERIMENT_KIND, CurationView(EXPERIMENT_SCHEMA_VERSION))
