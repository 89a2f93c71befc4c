"""The report's tables, format-neutral: one entry per result (a table row), the means across seeds per (task,
representation, method, shots), the few-shot grid, and how each cell is written. The terminal, Markdown and HTML
renderers all draw from here."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import numpy as np

from ..core.defaults import PRECISION
from ..core.kinds import RowKind
from ..core.text import inert
from ..data.task import TASKS
from ..probes.shots import ALL
from ..results import Result, Selection, distinct_precision

AGGREGATE_METRICS = ("balanced_accuracy", "accuracy", "macro_f1")
SEEDS_CAPTION = (
    "Mean ± standard deviation over seeds (sample standard deviation; each seed its own few-shot sample, "
    "probe and network initialisation). A linear probe on all the data is deterministic: its spread is 0."
)
FEW_SHOT_CAPTION = (
    "Balanced accuracy on the test split with k training examples per class (stratified, seeded); the "
    "probe's hyperparameter chosen on the validation split. Mean ± standard deviation "
    "over seeds."
)


def row_precision(row: dict[str, Any]) -> str | None:
    """The precision that makes an entry another row than the fp32 one of the same name: None for fp32 and for
    rows without features, else bf16, fp16, amp, ... (clipprobe.results.distinct_precision)."""
    return distinct_precision(row.get("precision"))


def precision_shown(rows: Iterable[dict[str, Any]]) -> bool:
    """Whether a table shows a Precision column: when one of its rows is not fp32. A table of fp32 rows (and rows
    without features) stays as it was; a bf16 row's precision is never hidden."""
    return any(row_precision(row) is not None for row in rows)


def named(row: dict[str, Any]) -> str:
    """A row's name where its precision cannot have a column of its own (a card's title, a plot's legend, a gate
    message): "ViT-B-32/openai (bf16)"; the name alone for fp32."""
    precision = row_precision(row)
    return row["representation"] + (f" ({precision})" if precision is not None else "")


def entry_key(row: dict[str, Any]) -> tuple:
    """What tells the entries of a report apart: (task, representation, precision, method, shots, seed)."""
    return (*group_key(row), row["seed"])


def record_key(result: Result) -> tuple:
    """`entry_key` of the entry that `summarise` makes of `result`."""
    precision = distinct_precision(record_precision(result))
    return (result.task, result.representation, precision, result.method, result.shots, result.seed)


def record_precision(result: Result) -> str | None:
    """The precision an entry shows: its features' (fp32 too); for a record without features, the one it is keyed
    by (None: fp32, or no features)."""
    return result.features.precision if result.features is not None else result.precision


def group_key(row: dict[str, Any]) -> tuple:
    return (row["task"], row["representation"], row_precision(row), row["method"], row.get("shots"))


def aggregate(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per (task, row, precision, method, shots), in first-seen order: the seeds, and per metric mean and
    std.

    std is the sample standard deviation (ddof=1), None for a single seed."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(group_key(row), []).append(row)
    entries = []
    for (task, name, _, method, shots), members in groups.items():
        entry = {
            "task": task,
            "representation": name,
            "precision": members[0].get("precision"),
            "method": method,
            "shots": shots,
            "seeds": sorted(member["seed"] for member in members),
        }
        for metric in AGGREGATE_METRICS:
            values = np.array([member[metric] for member in members], dtype=np.float64)
            entry[metric] = {
                "mean": float(values.mean()),
                "std": float(values.std(ddof=1)) if len(values) > 1 else None,
            }
        entries.append(entry)
    return entries


def mean_std(summary: dict[str, Any]) -> str:
    """ "0.612 ± 0.034" (or "0.612" for one seed)."""
    return f"{summary['mean']:.3f}" + (f" ± {summary['std']:.3f}" if summary["std"] is not None else "")


def shots_order(value: Any) -> tuple:
    """Sort key for shots: 1, 2, 4, ..., then "all"."""
    return (1, 0) if value == ALL else (0, value)


def few_shot_grid(
    entries: list[dict[str, Any]], skipped: list[dict[str, Any]], task: str
) -> tuple[list, tuple[str, ...], list[tuple[tuple[str, ...], dict]]]:
    """The task's few-shot table: (the shots as columns, the headers of the cells that name a line, [(those cells:
    representation, precision when shown, method; {shots: entry or "skipped"})])."""
    few = [e for e in entries if e["task"] == task and e["shots"] is not None]
    gaps = [s for s in skipped if s["task"] == task]
    columns = sorted({e["shots"] for e in few} | {s["shots"] for s in gaps}, key=shots_order)
    shown = precision_shown(few + gaps)
    names: dict[tuple, tuple[str, ...]] = {}
    lines: dict[tuple, dict] = {}
    for item in few + gaps:
        key = (item["representation"], row_precision(item), item["method"])
        precision = [_format("precision", item.get("precision"))] if shown else []
        names.setdefault(key, (item["representation"], *precision, item["method"]))
        cells = lines.setdefault(key, {})
        if "reason" in item:  # a skipped run: only where no seed of it has an entry
            cells.setdefault(item["shots"], "skipped")
        else:
            cells[item["shots"]] = item
    headers = ("Representation", *(["Precision"] if shown else []), "Method")
    return columns, headers, [(names[key], cells) for key, cells in lines.items()]


def few_shot_cells(cells: dict[Any, Any], columns: list) -> list[str]:
    return [
        "skipped" if cells.get(k) == "skipped" else mean_std(cells[k]["balanced_accuracy"]) if k in cells else "-"
        for k in columns
    ]


def skipped_notes(skipped: list[dict[str, Any]], task: str) -> list[str]:
    """One line per skipped (row, method, shots), with its reason and seeds: never dropped silently."""
    notes: dict[tuple, list] = {}
    for gap in skipped:
        if gap["task"] == task:
            notes.setdefault((named(gap), gap["method"], gap["shots"], gap["reason"]), []).append(gap["seed"])
    return [
        f"Skipped {row} · {method} · {shots}-shot (seed {', '.join(map(str, sorted(seeds)))}): {reason}"
        for (row, method, shots, reason), seeds in notes.items()
    ]


def has_several_seeds(entries: list[dict[str, Any]], task: str) -> bool:
    return any(len(entry["seeds"]) > 1 for entry in entries if entry["task"] == task)


def seeds_rows(entries: list[dict[str, Any]], task: str) -> list[list[str]]:
    """The full-data rows of a task across seeds: Representation, Precision (when shown), Method, Seeds, then
    mean ± std per metric (the headers: `seeds_headers`)."""
    full = [e for e in entries if e["task"] == task and e["shots"] is None]
    shown = precision_shown(full)
    return [
        [
            e["representation"],
            *([_format("precision", e.get("precision"))] if shown else []),
            e["method"],
            str(len(e["seeds"])),
            *(mean_std(e[m]) for m in AGGREGATE_METRICS),
        ]
        for e in full
    ]


SEEDS_HEADERS = ("Representation", "Method", "Seeds", "Balanced acc.", "Accuracy", "Macro-F1")
# The across-seeds table's last columns are numbers (Seeds and the metrics), the others text.
SEEDS_NUMBERS = 4


def seeds_headers(entries: list[dict[str, Any]], task: str) -> tuple[str, ...]:
    """SEEDS_HEADERS, with Precision after Representation when one of the task's rows is not fp32."""
    if not precision_shown(e for e in entries if e["task"] == task and e["shots"] is None):
        return SEEDS_HEADERS
    return SEEDS_HEADERS[:1] + ("Precision",) + SEEDS_HEADERS[1:]


# One table per task: the probed representations and the baselines, on the same test split and metrics.
COLUMNS = (
    "representation",
    "method",
    "balanced_accuracy",
    "accuracy",
    "macro_f1",
    "selected",
    "per_class_recall",
    "n_test",
)


HEADERS = {
    "representation": "Representation",
    "precision": "Precision",
    "method": "Method",
    "seed": "Seed",
    "balanced_accuracy": "Balanced acc.",
    "accuracy": "Accuracy",
    "macro_f1": "Macro-F1",
    "selected": "Chosen on val.",
    "per_class_recall": "Recall per class",
    "n_test": "n test",
}


NUMERIC = {"balanced_accuracy", "accuracy", "macro_f1", "n_test", "seed"}


# The headline metrics: each shown with its 95 % bootstrap interval, and the ones --fail-under can gate on.
METRICS = ("accuracy", "balanced_accuracy", "macro_f1")


CAPTION = "Test split; every choice (probe C, training epoch) made on the validation split."


def columns(rows: list[dict[str, Any]]) -> tuple[str, ...]:
    """COLUMNS, with a Precision column after Representation when a row is not fp32 (`precision_shown`: the name is
    the same in every precision, the column tells them apart), and a Seed column after Method when the rows come
    from several seeds."""
    shown = COLUMNS[:1] + (("precision",) if precision_shown(rows) else ()) + COLUMNS[1:]
    if len({row["seed"] for row in rows}) < 2:
        return shown
    at = shown.index("method") + 1
    return shown[:at] + ("seed",) + shown[at:]


def full_data(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows of probes and baselines trained on the whole train split (not the few-shot runs)."""
    return [row for row in rows if row.get("shots") is None]


def summarise(result: Result) -> dict[str, Any]:
    """A result record -> its table entry: the headline numbers with their intervals, the choice made, and where the
    row comes from (`provenance`). Only results with metrics have entries (see `skipped_entry`)."""
    metrics = result.metrics
    assert metrics is not None, "a skipped result has no table entry"
    selection = result.selection
    return {
        "task": result.task,
        "representation": result.representation,
        "kind": result.kind.value,
        "method": result.method,
        "balanced_accuracy": metrics.balanced_accuracy,
        "accuracy": metrics.accuracy,
        "macro_f1": metrics.macro_f1,
        # 95 % bootstrap intervals, {metric: [low, high]}.
        "intervals": metrics.intervals or None,
        "parameter": selection.parameter if selection is not None else None,
        "chosen": selection.chosen if selection is not None else None,
        "selected": selected(selection),
        # The choice at the edge of what was swept (a grid's end, a budget's last epoch): marked in every table.
        "at_grid_edge": at_edge(result),
        # Class order, not the alphabetical order that sorted JSON keys would give.
        "per_class_recall": {name: metrics.per_class_recall[name] for name in result.classes},
        "n_test": metrics.n,
        "shots": result.shots,
        "seed": result.seed,
        # Why the run stopped early (a user's time limit), or None: shown in every format, refused by the gate.
        "incomplete": result.incomplete.note() if result.incomplete is not None else None,
        # How the images became square inputs: crop, squash or pad (None when the record does not say).
        "geometry": result.geometry,
        # Validation and test images with the content of a training image, allowed by the task file (0: none).
        "duplicates": result.data.duplicates,
        **provenance(result),
    }


# The kinds of row a task's table holds, in the order the report's legend lists them: (name, what it is). Each
# result declares its kind (clipprobe.core.kinds.RowKind); nothing here guesses it.
ROW_KINDS = {
    RowKind.PROBE.value: (
        "probe",
        "a linear or MLP probe on the frozen features of pretrained weights: what is being measured",
    ),
    RowKind.CONTROL.value: (
        "control",
        "the same probe on raw pixels or on the architecture with random weights: what needs no pretraining",
    ),
    RowKind.TRAINED.value: (
        "trained on the labels",
        "a CNN (or an orbit CNN) trained from scratch on the task's own labels: what the labels allow",
    ),
    RowKind.ZERO_SHOT.value: ("zero-shot", "the model's own text prompts, nothing fitted: what its captions taught it"),
}


# Where each entry comes from, one field each in results.json and results.csv (and the HTML's provenance table).
PROVENANCE = (
    "model",
    "pretrained",
    "weights_kind",
    "weights_sha256",
    "source",
    "source_scheme",
    "source_path",
    "source_fingerprint",
    "layer",
    "precision",
)


def provenance(result: Result) -> dict[str, Any]:
    """The model, its weights (kind and content hash), the data (name, scheme, path, fingerprint), the layer and
    the precision of a result; None where the record does not say (a trained CNN has no layer)."""
    scheme, path = result.data.scheme_path
    features = result.features
    return {
        "model": result.model,
        "pretrained": result.pretrained,
        "weights_kind": result.weights.kind,
        "weights_sha256": result.weights.sha256,
        "source": result.data.source,
        "source_scheme": scheme,
        "source_path": path,
        "source_fingerprint": result.data.fingerprint,
        "layer": features.layer if features is not None else None,
        "precision": record_precision(result),
    }


def chance_level(entries: list[dict[str, Any]], task: str) -> tuple[float, int] | None:
    """The task's chance level for balanced accuracy, 1 / number of classes, with that number; None if unknown."""
    counts = {len(entry.get("per_class_recall") or {}) for entry in entries if entry["task"] == task}
    counts.discard(0)
    if len(counts) != 1:
        return None
    (classes,) = counts
    return 1 / classes, classes


def chance_note(entries: list[dict[str, Any]], task: str) -> str | None:
    """ "Chance: 0.333 (1/3 classes)." for the task's captions, None when the entries do not say."""
    chance = chance_level(entries, task)
    return None if chance is None else f"Chance: {chance[0]:.3f} (1/{chance[1]} classes)."


def data_note(entries: list[dict[str, Any]], task: str) -> str | None:
    """ "Data: photos (imagefolder:/data/photos), fingerprint imagefolder-98926cc7." for a task's entries."""
    seen = []
    for entry in entries:
        if entry["task"] == task and entry.get("source_fingerprint"):
            where = ":".join(part for part in (entry.get("source_scheme"), entry.get("source_path")) if part)
            text = f"{entry.get('source')}" + (f" ({where})" if where and where != entry.get("source") else "")
            text += f", fingerprint {entry['source_fingerprint']}"
            if text not in seen:
                seen.append(text)
    repeated = max((entry.get("duplicates") or 0 for entry in entries if entry["task"] == task), default=0)
    if repeated:
        seen.append(f"{repeated} validation and test images repeat images of another split (allowed by the task file)")
    return f"Data: {'; '.join(seen)}." if seen else None


# How report.html groups the tasks in its contents: the built-in tasks, then the user's own data.
BUILT_IN, YOUR_DATA = "Built-in tasks", "Your data"


def task_group(task: str) -> str:
    """BUILT_IN for a registered task (or one of its variants, `traffic-light[seed=1]`), else YOUR_DATA."""
    return BUILT_IN if task.split("[", 1)[0] in TASKS else YOUR_DATA


def order_tasks(tasks: Iterable[str], named_first: Iterable[str] = ()) -> list[str]:
    """The report's task order: the built-in tasks, those experiments name first in their own order (the curation
    experiment: traffic-light, pedestrian, ...), the others by name; then the user's own data by name."""
    tasks = list(dict.fromkeys(tasks))
    named = [t for t in named_first if t in tasks]
    first = list(dict.fromkeys(named))
    rest = sorted(t for t in tasks if t not in first)
    ordered = first + rest
    return [t for t in ordered if task_group(t) == BUILT_IN] + [t for t in ordered if task_group(t) == YOUR_DATA]


def geometry_note(entries: list[dict[str, Any]], task: str) -> str | None:
    """When a task's rows saw the images in different geometries, which saw which (a comparison of image
    geometry as much as of representations; `--resize` makes them equal)."""
    groups: dict[str, list[str]] = {}
    for entry in entries:
        if entry["task"] == task and entry.get("geometry"):
            names = groups.setdefault(entry["geometry"], [])
            # One name per model: without its seed's weights tag (@...) or its layer ([...]).
            name = re.sub(r"@\w+| \[.*\]$", "", entry["representation"])
            if name not in names:
                names.append(name)
    if len(groups) < 2:
        return None
    listed = "; ".join(f"{mode}: {', '.join(names)}" for mode, names in sorted(groups.items()))
    return f"Image geometry differs between rows ({listed}); --resize crop|squash|pad gives every row the same."


def skipped_entry(result: Result) -> dict[str, Any]:
    """A few-shot run that could not be made (a class with fewer than k training examples), and why."""
    return {
        "task": result.task,
        "representation": result.representation,
        "method": result.method,
        "shots": result.shots,
        "seed": result.seed,
        # As the entries of its kind say it: a row with features in fp32 says fp32 (its record, None).
        "precision": result.precision or (PRECISION if result.kind is not RowKind.TRAINED else None),
        "reason": result.skipped,
    }


def selected(selection: Selection | None) -> str | None:
    """What was chosen on validation, as a cell: "C=0.01", "alpha=1", "epoch 7"; None for nothing. Whether it
    lies at the edge of what was swept is the entry's `at_grid_edge` (`at_edge`), marked by `cell`."""
    if selection is None or selection.parameter is None or selection.chosen is None:
        return None
    if selection.parameter == "epoch":
        return f"epoch {selection.chosen}"
    return f"{selection.parameter}={selection.chosen:.3g}"


# The mark of a choice at the edge of what was swept, and its footnote under every table that shows one.
EDGE_MARK = "†"
EDGE_NOTE = (
    f"{EDGE_MARK} Chosen at the edge of what was swept: a probe's C or alpha at the first or last value of its grid "
    "(the linear probe's grid already extended a decade at a time beyond an edge it chose, up to C = 1e-6 or 1e6; "
    "the result's selection lists the grid swept), a trained network's epoch the last of its budget. The best "
    "value may lie beyond."
)


def at_edge(result: Result) -> bool:
    """Whether the result's choice lies at the edge of what was swept: its selection's `at_grid_edge`, or a trained
    network's chosen epoch equal to its budget's epochs (records written before networks set the flag)."""
    selection = result.selection
    if selection is None or selection.chosen is None:
        return False
    if selection.at_grid_edge:
        return True
    budget = result.training.budget if result.training is not None else {}
    return selection.parameter == "epoch" and selection.chosen == budget.get("epochs")


def edge_note(entries: list[dict[str, Any]], task: str) -> str | None:
    """The footnote to EDGE_MARK, when one of the task's entries is marked."""
    return EDGE_NOTE if any(e["task"] == task and e.get("at_grid_edge") for e in entries) else None


def selected_cell(row: dict[str, Any]) -> str | None:
    """The entry's choice as shown: "C=1e+04 †" at the edge of what was swept (see EDGE_NOTE)."""
    if row.get("selected") is None:
        return None
    return f"{row['selected']} {EDGE_MARK}" if row.get("at_grid_edge") else row["selected"]


def _format(column: str, value: Any) -> str:
    if value is None:
        return "-"
    if column in ("balanced_accuracy", "accuracy", "macro_f1"):
        return f"{value:.3f}"
    if column == "per_class_recall":
        return " · ".join(f"{name} {recall:.2f}" for name, recall in value.items())
    return str(value)


def cell(column: str, row: dict[str, Any], separator: str = " ") -> str:
    """A headline number with its interval beside it, "0.973 [0.962, 0.983]" ("0.973 [-]" without one)."""
    text = inert(_format(column, selected_cell(row) if column == "selected" else row[column]))
    if column == "representation" and row.get("incomplete"):
        text += f"{separator}[{row['incomplete']}]"
    if column in METRICS and row[column] is not None:
        text += separator + interval_text((row.get("intervals") or {}).get(column))
    return text


def interval_text(interval: list[float] | tuple[float, float] | None, signed: bool = False) -> str:
    """An interval as every output of clipprobe writes it: "[0.962, 0.983]" ("[+0.012, +0.040]" signed), "[-]"
    for none."""
    if not interval:
        return "[-]"
    form = "+.3f" if signed else ".3f"
    return f"[{interval[0]:{form}}, {interval[1]:{form}}]"
