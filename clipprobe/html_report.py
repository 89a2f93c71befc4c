"""report.html: one self-contained page per report, the tables with matplotlib plots embedded as PNG data URIs."""

from __future__ import annotations

import base64
import html
import io
import os
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullLocator

from .experiment_report import EXPERIMENT_CAPTION, experiment_cells, experiment_headers, experiment_label, experiment_title
from .aggregate import (
    FEW_SHOT_CAPTION, SEEDS_CAPTION, SEEDS_HEADERS, aggregate, few_shot_cells, few_shot_grid, has_several_seeds, seeds_rows,
    shots_order, skipped_notes,
)
from .report import _NUMERIC, CAPTION, HEADERS, _cell, columns, full_data
from .shots import ALL
from .results import slug

DPI = 100
BAR_WIDTH = 7.5  # inches; the bar chart's height grows with its rows
BAR_ROW_HEIGHT = 0.32
CURVE_SIZE = (3.6, 2.6)
# From this many result cards on, they are drawn in worker processes (the demo's report has 60).
MANY_CARDS = 16
CARDS_CAPTION = ("Per row: the confusion matrix on the test split (counts; rows true, columns predicted) and the "
                 "validation curve behind the choice, the chosen point starred.")
STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2em; color: #222; }
h1 { margin-bottom: 0.2em; }
h2 { border-bottom: 2px solid #ccc; padding-bottom: 0.2em; margin-top: 2em; }
h3 { font-size: 1em; margin: 0 0 0.5em 0; overflow-wrap: anywhere; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.85em; }
.scroll { overflow-x: auto; }
th, td { border: 1px solid #ddd; padding: 0.3em 0.5em; text-align: left; vertical-align: top; white-space: nowrap; }
th { background: #f3f3f3; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.wrap { white-space: normal; min-width: 10em; }
.cards { display: flex; flex-wrap: wrap; gap: 1em; }
.card { border: 1px solid #ddd; border-radius: 6px; padding: 0.8em; }
.card .plots { display: flex; flex-wrap: wrap; gap: 0.5em; align-items: flex-start; }
.none { color: #777; font-style: italic; font-size: 0.9em; max-width: 16em; }
figcaption, .caption { color: #555; font-size: 0.9em; }
img { display: block; max-width: 100%; height: auto; }
"""


def render_html(rows: list[dict[str, Any]], records: list[dict[str, Any]], experiments: list[dict[str, Any]] = (),
                plots_by_experiment: list[dict[str, bytes]] | None = None, skipped: list[dict[str, Any]] = ()) -> str:
    """The whole page: the experiments' headline tables and plots first; then per task its table, a bar chart of
    balanced accuracy, the means across seeds and the few-shot table and curves when there are any, and per row
    its confusion matrix and validation curve. Every text from the records is escaped; the same rows and records
    give the same string."""
    by_key = {_key(record): record for record in records}
    entries = aggregate(rows)
    tasks = list(dict.fromkeys(row["task"] for row in [*rows, *skipped]))
    anchors = {task: f"task-{i}-{slug(task)}" for i, task in enumerate(tasks)}
    experiment_anchors = [f"experiment-{i}" for i in range(len(experiments))]
    if plots_by_experiment is None:
        plots_by_experiment = [experiment_plots(experiment) for experiment in experiments]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        '<head><meta charset="utf-8"><title>clipprobe results</title>',
        f"<style>{STYLE}</style></head>",
        "<body>",
        "<h1>clipprobe results</h1>",
        f'<p class="caption">{_e(CAPTION)} Intervals: 95 % bootstrap over test examples ([-]: none in the result file).</p>',
        "<nav><ul>"
        + "".join(f'<li><a href="#{a}">{_e(experiment_title(x))}</a></li>' for a, x in zip(experiment_anchors, experiments))
        + "".join(f'<li><a href="#{anchors[t]}">{_e(t)}</a></li>' for t in tasks) + "</ul></nav>",
    ]
    for anchor, experiment, plots in zip(experiment_anchors, experiments, plots_by_experiment, strict=True):
        parts.append(_experiment_section(anchor, experiment, plots))
    sections = []
    for task in tasks:
        task_rows = [row for row in full_data(rows) if row["task"] == task]
        sections.append((task, task_rows, _card_rows(task_rows)))
    cards = _render_cards([(label, row, by_key.get(_key(row)) or {}) for task, task_rows, card_rows in sections
                           for label, row in zip(_labels(card_rows), card_rows)])
    for task, task_rows, card_rows in sections:
        records_of = [by_key.get(_key(row)) for row in task_rows]
        few_shot = _few_shot_section(task, entries, list(skipped), records_of)
        parts.append(_task_section(task, anchors[task], task_rows, records_of, [cards.pop(0) for _ in card_rows],
                                   _seeds_section(task, entries) + few_shot))
    parts += ["</body>", "</html>"]
    return "\n".join(parts) + "\n"


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
        table.append("<tr>" + "".join(f'<td{"" if i < 2 else " class=num"}>{_e(c)}</td>' for i, c in enumerate(cells)) + "</tr>")
    table.append("</table>")
    parts = [f'<section id="{anchor}"><h2>{_e(experiment_title(record))}</h2>',
             f'<p class="caption">{_e(EXPERIMENT_CAPTION)}</p>', '<div class="scroll">' + "".join(table) + "</div>",
             _img(plots["heatmap"], "balanced accuracy per representation and task")]
    if "dose-response" in plots:
        parts.append(_img(plots["dose-response"], "balanced accuracy and invariance against the fraction of descriptive captions"))
        parts.append('<p class="caption">Each pretrained model at its fraction of descriptive captions (salient 0, '
                     'descriptive 1); error bars are the 95 % intervals; the x axis is linear below 0.01 and logarithmic above.</p>')
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
                axes.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=8,
                          color="white" if shades[i][j] > 0.6 else "#222")
    axes.set_xticks(range(len(tasks)), [_plain(t) for t in tasks], rotation=30, ha="right", rotation_mode="anchor", fontsize=8)
    axes.set_yticks(range(len(rows)), [_plain(_short(experiment_label(r), 44)) for r in rows], fontsize=8)
    axes.set_title("balanced accuracy (test); shade: above chance", fontsize=9)
    return _png(figure)


def dose_points(record: dict[str, Any]) -> list[tuple[float, dict[str, Any]]]:
    """(descriptive fraction, row) for the pretrained models' probe rows on the salient-descriptive axis, by fraction."""
    points = [(row["descriptive_fraction"], row) for row in record["rows"]
              if row["kind"] == "pretrained" and row["method"] == "linear-probe" and row["descriptive_fraction"] is not None]
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
    panels = ((left, record["tasks"], _accuracy, "balanced accuracy (test)", "what a linear probe can read"),
              (right, record["attributes"], _invariance, "invariance score (0: blind to it)",
               "how much the embedding moves with the attribute"))
    for axes, names, measure, ylabel, title in panels:
        for name in names:
            measured = [(fraction, m) for fraction, row in points if (m := measure(row, name)) is not None]
            if not measured:
                continue
            xs = [fraction for fraction, _ in measured]
            values = [value for _, (value, _) in measured]
            below = [value - (interval or (value, value))[0] for _, (value, interval) in measured]
            above = [(interval or (value, value))[1] - value for _, (value, interval) in measured]
            axes.errorbar(xs, values, yerr=[[max(b, 0) for b in below], [max(a, 0) for a in above]], marker="o",
                          markersize=4, capsize=3, lw=1.3, label=_plain(name))
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
    return _png(figure)


def _key(item: dict[str, Any]) -> tuple:
    return (item["task"], item["row"], item["method"], item.get("shots"), item["seed"])


def _card_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows that get a card: each row and method once, at its first seed (the others are in the tables)."""
    first: dict[tuple, int] = {}
    for row in rows:
        first[row["row"], row["method"]] = min(row["seed"], first.get((row["row"], row["method"]), row["seed"]))
    return [row for row in rows if row["seed"] == first[row["row"], row["method"]]]


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _img(png: bytes, alt: str) -> str:
    return f'<img src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}" alt="{_e(alt)}">'


def _label(row: dict[str, Any], seeds: bool) -> str:
    return f"{row['row']} · {row['method']}" + (f" · seed {row['seed']}" if seeds else "")


def _labels(rows: list[dict[str, Any]]) -> list[str]:
    seeds = len({row["seed"] for row in rows}) > 1
    return [_label(row, seeds) for row in rows]


def _render_cards(jobs: list[tuple[str, dict[str, Any], dict[str, Any]]]) -> list[str]:
    """Every row's card (two PNGs each, most of the page's cost), on every core when there are many: the same
    bytes either way, since each card is drawn alone from its own data."""
    workers = min(os.cpu_count() or 1, 8)
    if len(jobs) < MANY_CARDS or workers < 2:
        return [_card(*job) for job in jobs]
    with ProcessPoolExecutor(workers) as pool:
        return list(pool.map(_card, *zip(*jobs), chunksize=4))


def _chance(records: list[dict[str, Any] | None]) -> tuple[float | None, str]:
    classes = next((record["classes"] for record in records if record and record.get("classes")), None)
    if not classes:
        return None, ""
    return 1 / len(classes), f"; dashed line: chance, 1/{len(classes)} = {1 / len(classes):.3f}"


def _task_section(task: str, anchor: str, rows: list[dict[str, Any]], records: list[dict[str, Any] | None],
                  cards: list[str], extra: list[str]) -> str:
    parts = [f'<section id="{_e(anchor)}">', f"<h2>{_e(task)}</h2>"]
    if rows:
        chance, chance_text = _chance(records)
        chart = bar_chart_png(_labels(rows), rows, chance)
        parts += [
            _table(rows),
            "<figure>",
            _img(chart, f"Balanced accuracy per row, {task}"),
            f"<figcaption>Balanced accuracy on the test split with its 95 % interval{chance_text}.</figcaption>",
            "</figure>",
        ]
    parts += extra
    if cards:
        seeds = " Several seeds: one card per row, at its first seed." if len({r["seed"] for r in rows}) > 1 else ""
        parts += [f'<p class="caption">{CARDS_CAPTION}{seeds}</p>', '<div class="cards">', *cards, "</div>"]
    parts.append("</section>")
    return "\n".join(parts)


def _seeds_section(task: str, entries: list[dict[str, Any]]) -> list[str]:
    """The full-data rows' mean ± std across seeds, when some row has several."""
    lines = seeds_rows(entries, task)
    if not has_several_seeds(entries, task) or not lines:
        return []
    head = "".join(f"<th>{_e(h)}</th>" for h in SEEDS_HEADERS)
    body = ["<tr>" + "".join(f'<td{" class=num" if i >= 2 else ""}>{_e(c)}</td>' for i, c in enumerate(line)) + "</tr>"
            for line in lines]
    return ["<h3>Across seeds</h3>", f'<p class="caption">{_e(SEEDS_CAPTION)}</p>',
            f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>' + "".join(body) + "</tbody></table></div>"]


def _few_shot_section(task: str, entries: list[dict[str, Any]], skipped: list[dict[str, Any]],
                      records: list[dict[str, Any] | None]) -> list[str]:
    """The few-shot table, its curves (balanced accuracy against k, log axis) and the skipped runs with reasons."""
    shots, lines = few_shot_grid(entries, skipped, task)
    if not lines:
        return []
    head = "".join(f"<th>{_e(h)}</th>" for h in ["Representation", "Method", *(f"{k}-shot" for k in shots)])
    body = ["<tr>" + f"<td>{_e(row)}</td><td>{_e(method)}</td>"
            + "".join(f"<td class=num>{_e(c)}</td>" for c in few_shot_cells(cells, shots)) + "</tr>"
            for row, method, cells in lines]
    parts = ["<h3>Few-shot</h3>", f'<p class="caption">{_e(FEW_SHOT_CAPTION)}</p>',
             f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>' + "".join(body) + "</tbody></table></div>"]
    chance, chance_text = _chance(records)
    curves = [(f"{row} · {method}", cells) for row, method, cells in lines]
    if any(isinstance(entry, dict) for _, cells in curves for entry in cells.values()):
        parts += ["<figure>", _img(few_shot_png(curves, chance), f"Few-shot curves, {task}"),
                  f"<figcaption>Balanced accuracy on the test split against k training examples per class (log axis), "
                  f"mean over seeds with ± one standard deviation{chance_text}.</figcaption>", "</figure>"]
    notes = skipped_notes(skipped, task)
    if notes:
        parts.append("<ul>" + "".join(f"<li>{_e(note)}</li>" for note in notes) + "</ul>")
    return parts


def _table(rows: list[dict[str, Any]]) -> str:
    shown = columns(rows)
    head = "".join(f"<th>{_e(HEADERS[c])}</th>" for c in shown)
    body = ["<tr>" + "".join(_td(c, row) for c in shown) + "</tr>" for row in rows]
    return ('<div class="scroll"><table>\n<thead><tr>' + head + "</tr></thead>\n<tbody>\n" + "\n".join(body)
            + "\n</tbody>\n</table></div>")


def _td(column: str, row: dict[str, Any]) -> str:
    kind = ' class="num"' if column in _NUMERIC else ' class="wrap"' if column == "per_class_recall" else ""
    return f"<td{kind}>{_e(_cell(column, row))}</td>"


def _card(label: str, row: dict[str, Any], record: dict[str, Any]) -> str:
    parts = ['<div class="card">', f"<h3>{_e(label)}</h3>", '<div class="plots">']
    matrix = record.get("metrics", {}).get("confusion_matrix")
    classes = record.get("classes")
    if matrix and classes and len(matrix) == len(classes):
        parts.append(_img(confusion_png(matrix, classes), f"Confusion matrix, {label}"))
    else:
        parts.append('<p class="none">No confusion matrix in the result file.</p>')
    selection = record.get("selection") or {}
    curve = selection.get("curve")
    if curve and _curve_axis(curve):
        parts.append(_img(curve_png(curve, selection, row.get("selected")), f"Validation curve, {label}"))
    else:
        why = ("No validation curve in the result file." if row.get("selected")
               else selection.get("note") or "No validation curve: nothing was chosen on validation.")
        parts.append(f'<p class="none">{_e(why)}</p>')
    parts += ["</div>", "</div>"]
    return "\n".join(parts)


def _curve_axis(curve: list[dict[str, Any]]) -> str | None:
    """"C" for a linear probe's curve, "alpha" for an MLP probe's, "epoch" for a trained baseline's, None otherwise."""
    return next((axis for axis in ("C", "alpha", "epoch") if all(axis in point for point in curve)), None)


# --- Plots: each returns PNG bytes, the same bytes for the same input. ---------------------------------------


def _plain(text: str) -> str:
    """Text as matplotlib should draw it: escaped dollars, so that a row name is never read as mathtext."""
    return text.replace("$", r"\$")


def _short(text: str, limit: int = 24) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    # No "Software" entry (it names the matplotlib version) and no time stamp: equal plots, equal bytes.
    figure.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    figure.clear()
    return buffer.getvalue()


def bar_chart_png(labels: list[str], rows: list[dict[str, Any]], chance: float | None) -> bytes:
    """Horizontal bars of balanced accuracy in table order (first row on top), 95 % intervals as error bars."""
    figure = Figure(figsize=(BAR_WIDTH, 0.9 + BAR_ROW_HEIGHT * len(rows)), dpi=DPI, layout="constrained")
    axes = figure.add_subplot()
    positions = list(range(len(rows)))
    values = [row["balanced_accuracy"] for row in rows]
    axes.barh(positions, values, color="#4c78a8", height=0.65)
    for position, row in zip(positions, rows):
        interval = (row.get("intervals") or {}).get("balanced_accuracy")
        if interval:
            low, high = interval
            value = row["balanced_accuracy"]
            errors = [[max(value - low, 0)], [max(high - value, 0)]]
            axes.errorbar(value, position, xerr=errors, fmt="none", ecolor="#222", capsize=3, lw=1)
    if chance is not None:
        axes.axvline(chance, color="#c44e52", linestyle="--", lw=1.2, label=f"chance {chance:.3f}")
        # Above the axes, where no bar can hide it.
        axes.legend(loc="lower right", bbox_to_anchor=(1, 1), fontsize=8, frameon=False, borderaxespad=0.2)
    axes.set_yticks(positions, [_plain(_short(label, 70)) for label in labels], fontsize=8)
    axes.invert_yaxis()
    axes.set_xlim(0, 1)
    axes.set_xlabel("balanced accuracy (test)")
    axes.grid(axis="x", alpha=0.3)
    return _png(figure)


def confusion_png(matrix: list[list[int]], classes: list[str]) -> bytes:
    """Counts of true (rows) against predicted (columns) classes, darker for more."""
    k = len(classes)
    names = [_plain(_short(str(name))) for name in classes]
    # Margins sized from the longest class name (about 0.06 in a character at 8 pt) rather than by a layout
    # engine, which would draw every figure twice.
    side = min(max(0.42 * k, 1.6), 4.5)
    label = 0.06 * max(len(name) for name in names)
    rotate = k > 3
    left, bottom, pad = 0.4 + label, 0.55 + (0.72 * label if rotate else 0.15), 0.12
    width, height = left + side + pad, bottom + side + pad
    figure = Figure(figsize=(width, height), dpi=DPI)
    axes = figure.add_axes((left / width, bottom / height, side / width, side / height))
    top = max((max(line) for line in matrix), default=0) or 1
    axes.imshow(matrix, cmap="Blues", vmin=0, vmax=top)
    fontsize = 9 if k <= 5 else 7 if k <= 10 else 5
    for i, line in enumerate(matrix):
        for j, count in enumerate(line):
            axes.text(j, i, str(count), ha="center", va="center", fontsize=fontsize,
                      color="white" if count > top / 2 else "#222")
    axes.set_xticks(range(k), names, rotation=45 if rotate else 0, ha="right" if rotate else "center",
                    rotation_mode="anchor" if rotate else "default", fontsize=8)
    axes.set_yticks(range(k), names, fontsize=8)
    axes.set_xlabel("predicted", fontsize=8)
    axes.set_ylabel("true", fontsize=8)
    return _png(figure)


def curve_png(curve: list[dict[str, float]], selection: dict[str, Any], selected: str | None) -> bytes:
    """Validation balanced accuracy against C or alpha (log axis) for probes or against epoch for trained
    baselines, the chosen point marked."""
    metric = selection.get("metric") or "balanced_accuracy"
    axis = _curve_axis(curve)
    by_c = axis != "epoch"  # a probe's penalty: a log axis
    xs = [point[axis] for point in curve]
    ys = [float("nan") if point.get(metric) is None else point[metric] for point in curve]
    chosen = selection.get(f"chosen_{axis}")
    # Fixed margins: the labels here are short and of known form, and a layout engine would double the cost.
    figure = Figure(figsize=CURVE_SIZE, dpi=DPI)
    figure.subplots_adjust(left=0.19, right=0.96, bottom=0.17, top=0.89)
    axes = figure.add_subplot()
    axes.plot(xs, ys, marker="o", markersize=3, color="#4c78a8", lw=1.2)
    if chosen is not None:
        axes.axvline(chosen, color="#c44e52", linestyle=":", lw=1)
        at = [y for x, y in zip(xs, ys) if x == chosen]
        if at:
            axes.plot([chosen], at[:1], marker="*", markersize=12, color="#c44e52", linestyle="none")
    if len(set(xs)) == 1:  # a sweep that stopped at its first point: give the axis a range around it
        axes.set_xlim(*((xs[0] / 10, xs[0] * 10) if by_c else (xs[0] - 1, xs[0] + 1)))
    if by_c:
        axes.set_xscale("log")
        # Plain "0.01", "100" tick labels: the default 10^x labels go through mathtext, slow for a small plot.
        axes.xaxis.set_major_locator(LogLocator(numticks=8))
        axes.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        axes.xaxis.set_minor_locator(NullLocator())
    else:
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel(axis, fontsize=8)
    axes.set_ylabel("balanced accuracy (val.)", fontsize=8)
    axes.tick_params(labelsize=7)
    axes.grid(alpha=0.3)
    axes.set_title(_plain("chosen: " + (selected or "-")), fontsize=8)
    return _png(figure)


def few_shot_png(curves: list[tuple[str, dict[Any, Any]]], chance: float | None) -> bytes:
    """One line per row and method: mean balanced accuracy against k (log axis, "all" placed one doubling past
    the largest k), error bars one standard deviation across seeds; skipped points are left out."""
    numeric = sorted({k for _, cells in curves for k in cells if k != ALL})
    all_at = 2 * numeric[-1] if numeric else 1
    figure = Figure(figsize=(6.4, 3.6), dpi=DPI, layout="constrained")
    axes = figure.add_subplot()
    for label, cells in curves:
        points = sorted(((k, e) for k, e in cells.items() if isinstance(e, dict)), key=lambda item: shots_order(item[0]))
        if not points:
            continue
        xs = [all_at if k == ALL else k for k, _ in points]
        ys = [e["balanced_accuracy"]["mean"] for _, e in points]
        errors = [e["balanced_accuracy"]["std"] or 0.0 for _, e in points]
        axes.errorbar(xs, ys, yerr=errors, marker="o", markersize=3, capsize=2, lw=1.2, label=_plain(_short(label, 48)))
    if chance is not None:
        axes.axhline(chance, color="#c44e52", linestyle="--", lw=1, label=f"chance {chance:.3f}")
    axes.set_xscale("log", base=2)
    ticks = numeric + ([all_at] if any(ALL in cells for _, cells in curves) else [])
    axes.set_xticks(ticks, [str(k) for k in numeric] + (["all"] if len(ticks) > len(numeric) else []))
    axes.xaxis.set_minor_locator(NullLocator())
    axes.set_ylim(0, 1)
    axes.set_xlabel("training examples per class (k)", fontsize=8)
    axes.set_ylabel("balanced accuracy (test)", fontsize=8)
    axes.tick_params(labelsize=7)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    return _png(figure)
