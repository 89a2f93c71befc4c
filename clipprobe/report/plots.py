"""The report's plots as PNG bytes (matplotlib, no pyplot state): interval bar charts, confusion matrices,
validation curves and few-shot curves."""

from __future__ import annotations

import io
from typing import Any

from matplotlib.artist import Artist
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullLocator

from ..probes.shots import ALL
from ..results import Selection
from .tables import ROW_KINDS, shots_order

DPI = 100


# One colour per kind of row (clipprobe.report.tables.ROW_KINDS), in the plots and in report.html alike.
KIND_COLOURS = {"probe": "#4c78a8", "control": "#9c9c9c", "trained": "#f58518", "zero-shot": "#54a24b"}
CHANCE_COLOUR = "#c44e52"


BAR_WIDTH = 7.5  # inches; the bar chart's height grows with its rows


BAR_ROW_HEIGHT = 0.32


CURVE_SIZE = (3.6, 2.6)


def curve_axis(curve: list[dict[str, Any]]) -> str | None:
    """ "C" for a linear probe's curve, "alpha" for an MLP probe's, "epoch" for a trained baseline's, None otherwise."""
    return next((axis for axis in ("C", "alpha", "epoch") if all(axis in point for point in curve)), None)


def png_bytes(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    # No "Software" entry (it names the matplotlib version) and no time stamp: equal plots, equal bytes.
    figure.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    figure.clear()
    return buffer.getvalue()


def bar_chart_png(labels: list[str], rows: list[dict[str, Any]], chance: float | None) -> bytes:
    """Horizontal bars of balanced accuracy in table order (first row on top), coloured by kind of row, 95 %
    intervals as error bars, on a fixed 0-1 axis."""
    figure = Figure(figsize=(BAR_WIDTH, 1.1 + BAR_ROW_HEIGHT * len(rows)), dpi=DPI, layout="constrained")
    axes = figure.add_subplot()
    positions = list(range(len(rows)))
    values = [row["balanced_accuracy"] for row in rows]
    kinds = [row["kind"] if row.get("kind") in KIND_COLOURS else "probe" for row in rows]
    axes.barh(positions, values, color=[KIND_COLOURS[kind] for kind in kinds], height=0.65)
    for position, row in zip(positions, rows):
        interval = (row.get("intervals") or {}).get("balanced_accuracy")
        if interval:
            low, high = interval
            value = row["balanced_accuracy"]
            errors = [[max(value - low, 0)], [max(high - value, 0)]]
            axes.errorbar(value, position, xerr=errors, fmt="none", ecolor="#222", capsize=3, lw=1)
    handles: list[Artist] = [
        Patch(color=KIND_COLOURS[kind], label=ROW_KINDS[kind][0]) for kind in KIND_COLOURS if kind in kinds
    ]
    if chance is not None:
        handles.append(axes.axvline(chance, color=CHANCE_COLOUR, linestyle="--", lw=1.2, label=f"chance {chance:.3f}"))
    # Above the axes, where no bar can hide it.
    axes.legend(
        handles=handles,
        loc="lower right",
        bbox_to_anchor=(1, 1),
        ncols=len(handles),
        fontsize=8,
        frameon=False,
        borderaxespad=0.2,
        handlelength=1.5,
    )
    axes.set_yticks(positions, [plain(short(label, 70)) for label in labels], fontsize=8)
    axes.set_ylim(len(rows) - 0.5, -0.5)  # first row on top, no empty band above or below the bars
    axes.set_xlim(0, 1)
    axes.set_xlabel("balanced accuracy (test)")
    axes.grid(axis="x", alpha=0.3)
    return png_bytes(figure)


def confusion_png(matrix: list[list[int]], classes: list[str]) -> bytes:
    """Counts of true (rows) against predicted (columns) classes, darker for more."""
    k = len(classes)
    names = [plain(short(str(name))) for name in classes]
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
            axes.text(
                j,
                i,
                str(count),
                ha="center",
                va="center",
                fontsize=fontsize,
                color="white" if count > top / 2 else "#222",
            )
    axes.set_xticks(
        range(k),
        names,
        rotation=45 if rotate else 0,
        ha="right" if rotate else "center",
        rotation_mode="anchor" if rotate else "default",
        fontsize=8,
    )
    axes.set_yticks(range(k), names, fontsize=8)
    axes.set_xlabel("predicted", fontsize=8)
    axes.set_ylabel("true", fontsize=8)
    return png_bytes(figure)


def curve_png(
    curve: list[dict[str, float]], selection: Selection, selected: str | None, chance: float | None = None
) -> bytes:
    """Validation balanced accuracy against C or alpha (log axis) for probes or against epoch for trained
    baselines, the chosen point marked, on a fixed 0-1 axis (every card comparable at a glance), chance dashed."""
    return png_bytes(curve_figure(curve, selection, selected, chance))


def curve_figure(
    curve: list[dict[str, float]], selection: Selection, selected: str | None, chance: float | None = None
) -> Figure:
    """The figure that curve_png draws."""
    metric = selection.metric or "balanced_accuracy"
    axis = curve_axis(curve)
    assert axis is not None, "curve_figure draws a curve of C, alpha or epoch (the caller checks curve_axis)"
    by_c = axis != "epoch"  # a probe's penalty: a log axis
    xs = [point[axis] for point in curve]
    ys = [float("nan") if point.get(metric) is None else point[metric] for point in curve]
    chosen = selection.chosen
    # Fixed margins: the labels here are short and of known form, and a layout engine would double the cost.
    figure = Figure(figsize=CURVE_SIZE, dpi=DPI)
    figure.subplots_adjust(left=0.19, right=0.96, bottom=0.17, top=0.89)
    axes = figure.add_subplot()
    axes.plot(xs, ys, marker="o", markersize=3, color="#4c78a8", lw=1.2)
    if chance is not None:
        axes.axhline(chance, color=CHANCE_COLOUR, linestyle="--", lw=1)
    if chosen is not None:
        axes.axvline(chosen, color="#222", linestyle=":", lw=1)
        at = [y for x, y in zip(xs, ys) if x == chosen]
        if at:
            axes.plot([chosen], at[:1], marker="*", markersize=12, color="#222", linestyle="none")
    # Fixed, not autoscaled: a curve between 0.35 and 0.40 would look like a large effect.
    axes.set_ylim(0, 1.02)
    axes.set_yticks([0, 0.25, 0.5, 0.75, 1])
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
    axes.set_title(plain("chosen: " + (selected or "-")), fontsize=8)
    return figure


def few_shot_png(curves: list[tuple[str, dict[Any, Any]]], chance: float | None) -> bytes:
    """One line per row and method: mean balanced accuracy against k (log axis, "all" placed one doubling past
    the largest k), error bars one standard deviation across seeds; skipped points are left out."""
    numeric = sorted({k for _, cells in curves for k in cells if k != ALL})
    all_at = 2 * numeric[-1] if numeric else 1
    figure = Figure(figsize=(6.4, 3.6), dpi=DPI, layout="constrained")
    axes = figure.add_subplot()
    for label, cells in curves:
        points = sorted(
            ((k, e) for k, e in cells.items() if isinstance(e, dict)), key=lambda item: shots_order(item[0])
        )
        if not points:
            continue
        xs = [all_at if k == ALL else k for k, _ in points]
        ys = [e["balanced_accuracy"]["mean"] for _, e in points]
        errors = [e["balanced_accuracy"]["std"] or 0.0 for _, e in points]
        axes.errorbar(xs, ys, yerr=errors, marker="o", markersize=3, capsize=2, lw=1.2, label=plain(short(label, 48)))
    if chance is not None:
        axes.axhline(chance, color=CHANCE_COLOUR, linestyle="--", lw=1, label=f"chance {chance:.3f}")
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
    return png_bytes(figure)


def plain(text: str) -> str:
    """Text as matplotlib should draw it: escaped dollars, so that a row name is never read as mathtext."""
    return text.replace("$", r"\$")


def short(text: str, limit: int = 24) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
