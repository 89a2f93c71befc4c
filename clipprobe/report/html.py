"""report.html: one self-contained page per report, the tables with matplotlib plots embedded as PNG data URIs."""

from __future__ import annotations

import base64
import html
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from ..core.paths import slug
from ..core.text import inert
from ..results import Result
from .answers import Answer, footnote
from .gate import GateOutcome
from .plots import CHANCE_COLOUR, KIND_COLOURS, bar_chart_png, confusion_png, curve_axis, curve_png, few_shot_png
from .tables import (
    BUILT_IN,
    CAPTION,
    FEW_SHOT_CAPTION,
    HEADERS,
    NUMERIC,
    ROW_KINDS,
    SEEDS_CAPTION,
    SEEDS_NUMBERS,
    YOUR_DATA,
    cell,
    chance_level,
    chance_note,
    columns,
    data_note,
    edge_note,
    entry_key,
    few_shot_cells,
    few_shot_grid,
    full_data,
    geometry_note,
    has_several_seeds,
    named,
    record_key,
    row_precision,
    seeds_headers,
    seeds_rows,
    selected_cell,
    skipped_notes,
    task_group,
)

# From this many result cards on, they are drawn in worker processes (the demo's report has 60).
MANY_CARDS = 16
CARDS_CAPTION = (
    "Per row: the confusion matrix on the test split (counts; rows true, columns predicted) and the "
    "validation curve behind the choice (balanced accuracy on a fixed 0-1 axis, chance dashed), the chosen point "
    "starred."
)
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
.answer { font-weight: 600; margin: 0.3em 0; }
img { display: block; max-width: 100%; height: auto; }
nav h3 { margin: 0.8em 0 0.2em 0; }
nav ul { margin: 0.2em 0; padding: 0; list-style: none; display: flex; flex-wrap: wrap; gap: 0.2em 1.6em; }
a.top { float: right; font-size: 0.7em; font-weight: normal; text-decoration: none; }
a.to-top { position: fixed; right: 1em; bottom: 1em; background: #fff; border: 1px solid #ccc; border-radius: 4px;
  padding: 0.2em 0.5em; font-size: 0.85em; text-decoration: none; }
.legend { display: flex; flex-direction: column; gap: 0.2em; font-size: 0.9em; margin: 1em 0;
  padding: 0.5em 0.8em; background: #f8f8f8; border-radius: 6px; }
.legend span.swatch { display: inline-block; width: 0.9em; height: 0.9em; margin-right: 0.35em; vertical-align: -0.1em; }
.gate { border: 2px solid; border-radius: 6px; padding: 0.2em 1em; margin: 1em 0; }
.gate h2 { margin-top: 0.4em; }
.gate.passed { border-color: #54a24b; }
.gate.failed { border-color: #c44e52; }
details { margin: 0.5em 0; }
summary { cursor: pointer; color: #555; font-size: 0.9em; }
""" + "".join(
    # Each kind of row its colour: a bar at the left of its table row and of its card.
    f"tr.kind-{kind} > td:first-child {{ box-shadow: inset 5px 0 0 {colour}; padding-left: 0.8em; }}\n"
    f".card.kind-{kind} {{ border-left: 5px solid {colour}; }}\n"
    for kind, colour in KIND_COLOURS.items()
)


def render_html(
    rows: list[dict[str, Any]],
    aggregates: list[dict[str, Any]],
    records: list[Result],
    experiments: Sequence[tuple[str, str, str]] = (),
    skipped: Sequence[dict[str, Any]] = (),
    gate: GateOutcome | None = None,
    answers: dict[str, list[Answer]] | None = None,
) -> str:
    """The whole page: the CI gate's outcome when there is one, a table of contents (the experiments, the built-in
    tasks, the user's own data) and a legend of the kinds of row; the experiments' sections ((anchor, title, HTML)
    as their views drew them, see clipprobe.report.experiments); then per task, in the rows' order, its answers
    (clipprobe.report.answers), its data and
    chance level, its table, a bar chart of balanced accuracy, the rows' provenance, the means across seeds and the
    few-shot table and curves when there are any, and per row its confusion matrix and validation curve. Every
    text from the records is escaped; the same rows and records give the same string."""
    by_key = {record_key(r): r for r in records}
    entries = aggregates
    tasks = list(dict.fromkeys(row["task"] for row in [*rows, *skipped]))
    anchors = {task: f"task-{i}-{slug(task)}" for i, task in enumerate(tasks)}
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        '<head><meta charset="utf-8"><title>clipprobe results</title>',
        f"<style>{STYLE}</style></head>",
        "<body>",
        '<h1 id="top">clipprobe results</h1>',
        f'<p class="caption">{escape(CAPTION)} Intervals: 95 % bootstrap over test examples, '
        "written [low, high] ([-]: none in the result file).</p>",
    ]
    if gate is not None:
        parts.append(_gate_section(gate))
    parts += [_contents(experiments, tasks, anchors), _legend()]
    parts += [section for _, _, section in experiments]
    sections = []
    for task in tasks:
        task_rows = [row for row in full_data(rows) if row["task"] == task]
        sections.append((task, task_rows, _card_rows(task_rows)))
    chances = {task: chance_level(rows, task) for task in tasks}
    cards = _render_cards(
        [
            (label, row, by_key.get(entry_key(row)), (chances[task] or (None,))[0])
            for task, task_rows, card_rows in sections
            for label, row in zip(_labels(card_rows), card_rows)
        ]
    )
    for task, task_rows, card_rows in sections:
        few_shot = _few_shot_section(task, entries, list(skipped), chances[task])
        parts.append(
            _task_section(
                task,
                anchors[task],
                rows,
                task_rows,
                [cards.pop(0) for _ in card_rows],
                _seeds_section(task, entries) + few_shot,
                (answers or {}).get(task, []),
            )
        )
    parts += ['<a class="to-top" href="#top">&uarr; top</a>', "</body>", "</html>"]
    return "\n".join(parts) + "\n"


def _contents(experiments: Sequence[tuple[str, str, str]], tasks: list[str], anchors: dict[str, str]) -> str:
    """The table of contents: the experiments, the built-in tasks, the user's own data."""
    groups = [("Experiments", [(anchor, title) for anchor, title, _ in experiments])]
    groups += [(group, [(anchors[t], t) for t in tasks if task_group(t) == group]) for group in (BUILT_IN, YOUR_DATA)]
    parts = ['<nav id="contents">']
    for title, links in groups:
        if links:
            parts += [
                f"<h3>{escape(title)}</h3>",
                "<ul>" + "".join(f'<li><a href="#{escape(a)}">{escape(text)}</a></li>' for a, text in links) + "</ul>",
            ]
    parts.append("</nav>")
    return "\n".join(parts)


def _legend() -> str:
    """What each kind of row is, with its colour in the tables, the cards and the bar charts."""
    items = [
        f'<span><span class="swatch" style="background: {KIND_COLOURS[kind]}"></span><b>{escape(name)}</b>: '
        f"{escape(what)}</span>"
        for kind, (name, what) in ROW_KINDS.items()
    ]
    items.append(
        f'<span><span class="swatch" style="border-top: 2px dashed {CHANCE_COLOUR}; height: 0; width: 1.4em; vertical-align: 0.3em"></span>'
        "<b>chance</b>: 1 / number of classes, the balanced accuracy of a constant or random guess</span>"
    )
    return '<div class="legend"><b>Kinds of row</b>' + "".join(items) + "</div>"


def _gate_section(gate: GateOutcome) -> str:
    """The CI gate's outcome: passed or FAILED, one table line per check, each failure and note."""
    head = "".join(f"<th>{h}</th>" for h in ("Check", "Entries", "Outcome"))
    body = "".join(
        f"<tr><td>{escape(what)}</td><td class=num>{escape(count)}</td><td>{escape(outcome)}</td></tr>"
        for what, count, outcome in gate.checks()
    )
    parts = [
        f'<section id="gate" class="gate {"passed" if gate.passed else "failed"}">',
        f"<h2>CI gate: {escape(gate.summary())}</h2>",
        f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>',
    ]
    if gate.failures or gate.notes:
        parts.append("<ul>" + "".join(f"<li>{escape(line)}</li>" for line in gate.failures + gate.notes) + "</ul>")
    parts.append("</section>")
    return "\n".join(parts)


def _card_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows that get a card: each row (in each precision) and method once, at its first seed (the others are
    in the tables)."""
    first: dict[tuple, int] = {}
    for row in rows:
        line = (row["representation"], row_precision(row), row["method"])
        first[line] = min(row["seed"], first.get(line, row["seed"]))
    return [row for row in rows if row["seed"] == first[row["representation"], row_precision(row), row["method"]]]


def escape(text: Any) -> str:
    """Text from records, safe inside HTML (element content and attribute values), control characters written as
    escapes (clipprobe.core.text.inert)."""
    return html.escape(inert(str(text)), quote=True)


def img(png: bytes, alt: str) -> str:
    """A PNG embedded as a data URI."""
    return f'<img src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}" alt="{escape(alt)}">'


def _label(row: dict[str, Any], seeds: bool) -> str:
    return f"{named(row)} · {row['method']}" + (f" · seed {row['seed']}" if seeds else "")


def _labels(rows: list[dict[str, Any]]) -> list[str]:
    seeds = len({row["seed"] for row in rows}) > 1
    return [_label(row, seeds) for row in rows]


def _render_cards(jobs: list[tuple[str, dict[str, Any], Result | None, float | None]]) -> list[str]:
    """Every row's card (two PNGs each, most of the page's cost), on every core when there are many: the same
    bytes either way, since each card is drawn alone from its own data."""
    workers = min(os.cpu_count() or 1, 8)
    if len(jobs) < MANY_CARDS or workers < 2:
        return [_card(*job) for job in jobs]
    with ProcessPoolExecutor(workers) as pool:
        return list(pool.map(_card, *zip(*jobs), chunksize=4))


def _chance_text(chance: tuple[float, int] | None) -> str:
    return "" if chance is None else f"; dashed line: chance, 1/{chance[1]} = {chance[0]:.3f}"


def _task_section(
    task: str,
    anchor: str,
    entries: list[dict[str, Any]],
    rows: list[dict[str, Any]],
    cards: list[str],
    extra: list[str],
    found: Sequence[Answer] = (),
) -> str:
    """One task: its heading (with a link back to the contents), data and chance level, table, bar chart,
    provenance, the sections in `extra` and the cards."""
    chance = chance_level(entries, task)
    parts = [
        f'<section id="{escape(anchor)}">',
        f'<h2>{escape(task)}<a class="top" href="#contents">&uarr; contents</a></h2>',
    ]
    parts += [f'<p class="answer">{escape(answer.sentence())}</p>' for answer in found]
    if how := footnote(found):
        parts.append(f'<p class="caption">{escape(how)}</p>')
    notes = [note for note in (data_note(entries, task), chance_note(entries, task)) if note]
    if notes:
        parts.append(f'<p class="caption">{escape(" ".join(notes))}</p>')
    if rows:
        chart = bar_chart_png(_labels(rows), rows, chance[0] if chance else None)
        parts += [
            _table(rows),
            "<figure>",
            img(chart, f"Balanced accuracy per row, {task}"),
            f"<figcaption>Balanced accuracy on the test split with its 95 % interval, coloured by kind of row"
            f"{_chance_text(chance)}.</figcaption>",
            "</figure>",
        ]
        for note in (geometry_note(rows, task), edge_note(rows, task)):
            if note:
                parts.insert(-4, f'<p class="caption">{escape(note)}</p>')
        parts.append(_provenance(rows))
    parts += extra
    if cards:
        seeds = " Several seeds: one card per row, at its first seed." if len({r["seed"] for r in rows}) > 1 else ""
        parts += [f'<p class="caption">{CARDS_CAPTION}{seeds}</p>', '<div class="cards">', *cards, "</div>"]
    parts.append("</section>")
    return "\n".join(parts)


# The provenance table's columns: (entry field, header).
PROVENANCE_COLUMNS = (
    ("representation", "Representation"),
    ("kind", "Kind"),
    ("method", "Method"),
    ("model", "Model"),
    ("pretrained", "Pretrained"),
    ("weights_kind", "Weights"),
    ("weights_sha256", "Weights sha256"),
    ("layer", "Layer"),
    ("precision", "Precision"),
    ("geometry", "Resize"),
)


def _provenance(rows: list[dict[str, Any]]) -> str:
    """Where each full-data row comes from, folded away: model, weights (kind, content hash), layer, precision,
    resize. Each row and method once (the seeds share all of it but the weights of a seeded pretraining)."""
    lines = list(dict.fromkeys(tuple(row.get(field) for field, _ in PROVENANCE_COLUMNS) for row in rows))
    head = "".join(f"<th>{escape(header)}</th>" for _, header in PROVENANCE_COLUMNS)
    body = [
        f'<tr class="kind-{escape(line[1])}">'
        + "".join(
            f"<td>{escape(_short_hash(value) if field == 'weights_sha256' else '-' if value is None else value)}</td>"
            for (field, _), value in zip(PROVENANCE_COLUMNS, line)
        )
        + "</tr>"
        for line in lines
    ]
    return (
        "<details><summary>Where each row comes from (model, weights, layer, precision, resize; every field is also "
        "in results.json and results.csv)</summary>"
        f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>' + "".join(body) + "</tbody></table></div>"
        "</details>"
    )


def _short_hash(value: Any) -> str:
    return "-" if not value else str(value)[:12]


def _seeds_section(task: str, entries: list[dict[str, Any]]) -> list[str]:
    """The full-data rows' mean ± std across seeds, when some row has several."""
    lines = seeds_rows(entries, task)
    if not has_several_seeds(entries, task) or not lines:
        return []
    headers = seeds_headers(entries, task)
    text = len(headers) - SEEDS_NUMBERS
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = [
        "<tr>"
        + "".join(f"<td{' class=num' if i >= text else ''}>{escape(c)}</td>" for i, c in enumerate(line))
        + "</tr>"
        for line in lines
    ]
    return [
        "<h3>Across seeds</h3>",
        f'<p class="caption">{escape(SEEDS_CAPTION)}</p>',
        f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>' + "".join(body) + "</tbody></table></div>",
    ]


def _few_shot_section(
    task: str, entries: list[dict[str, Any]], skipped: list[dict[str, Any]], chance: tuple[float, int] | None
) -> list[str]:
    """The few-shot table, its curves (balanced accuracy against k, log axis) and the skipped runs with reasons."""
    shots, names, lines = few_shot_grid(entries, skipped, task)
    if not lines:
        return []
    head = "".join(f"<th>{escape(h)}</th>" for h in [*names, *(f"{k}-shot" for k in shots)])
    body = [
        "<tr>"
        + "".join(f"<td>{escape(text)}</td>" for text in line)
        + "".join(f"<td class=num>{escape(c)}</td>" for c in few_shot_cells(cells, shots))
        + "</tr>"
        for line, cells in lines
    ]
    parts = [
        "<h3>Few-shot</h3>",
        f'<p class="caption">{escape(FEW_SHOT_CAPTION)}</p>',
        f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>' + "".join(body) + "</tbody></table></div>",
    ]
    # A line's label: its name, its precision where the table shows one, and its method.
    curves = [(" · ".join(line), cells) for line, cells in lines]
    if any(isinstance(entry, dict) for _, cells in curves for entry in cells.values()):
        parts += [
            "<figure>",
            img(few_shot_png(curves, chance[0] if chance else None), f"Few-shot curves, {task}"),
            f"<figcaption>Balanced accuracy on the test split against k training examples per class (log axis), "
            f"mean over seeds with ± one standard deviation{_chance_text(chance)}.</figcaption>",
            "</figure>",
        ]
    notes = skipped_notes(skipped, task)
    if notes:
        parts.append("<ul>" + "".join(f"<li>{escape(note)}</li>" for note in notes) + "</ul>")
    return parts


def _table(rows: list[dict[str, Any]]) -> str:
    shown = columns(rows)
    head = "".join(f"<th>{escape(HEADERS[c])}</th>" for c in shown)
    body = [
        f'<tr class="kind-{escape(row.get("kind", "probe"))}">' + "".join(_td(c, row) for c in shown) + "</tr>"
        for row in rows
    ]
    return (
        '<div class="scroll"><table>\n<thead><tr>'
        + head
        + "</tr></thead>\n<tbody>\n"
        + "\n".join(body)
        + "\n</tbody>\n</table></div>"
    )


def _td(column: str, row: dict[str, Any]) -> str:
    kind = ' class="num"' if column in NUMERIC else ' class="wrap"' if column == "per_class_recall" else ""
    return f"<td{kind}>{escape(cell(column, row))}</td>"


def _card(label: str, row: dict[str, Any], record: Result | None, chance: float | None = None) -> str:
    kind = escape(row.get("kind", "probe"))
    parts = [f'<div class="card kind-{kind}">', f"<h3>{escape(label)}</h3>", '<div class="plots">']
    matrix = record.metrics.confusion_matrix if record is not None and record.metrics is not None else None
    classes = record.classes if record is not None else None
    if matrix and classes and len(matrix) == len(classes):
        parts.append(img(confusion_png(matrix, classes), f"Confusion matrix, {label}"))
    else:
        parts.append('<p class="none">No confusion matrix in the result file.</p>')
    selection = record.selection if record is not None else None
    curve = selection.curve if selection is not None else None
    if selection is not None and curve and curve_axis(curve):
        parts.append(img(curve_png(curve, selection, selected_cell(row), chance), f"Validation curve, {label}"))
    else:
        why = (
            "No validation curve in the result file."
            if row.get("selected")
            else (selection.note if selection is not None else None)
            or "No validation curve: nothing was chosen on validation."
        )
        parts.append(f'<p class="none">{escape(why)}</p>')
    parts += ["</div>", "</div>"]
    return "\n".join(parts)
