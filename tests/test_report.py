"""`clipprobe report`: intervals beside every number, results.csv, and the CI gate (floors and regressions)."""

import csv
import dataclasses
import json
import re
import shutil
import zlib
from html import escape
from pathlib import Path

import numpy as np
import pytest
from conftest import stored_result
from typer.testing import CliRunner

from clipprobe.cli.app import app
from clipprobe.core.errors import RunError, UsageError
from clipprobe.core.kinds import RowKind
from clipprobe.probes.metrics import score_predictions
from clipprobe.report.build import build_report
from clipprobe.report.gate import check_floors, load_reference, parse_floor, regressions
from clipprobe.report.tables import (
    EDGE_NOTE,
    ROW_KINDS,
    aggregate,
    cell,
    chance_level,
    interval_text,
    order_tasks,
    selected,
    summarise,
    task_group,
)
from clipprobe.results import DataInfo, FeatureInfo, Result, Selection, SkippedFiles, Weights, distinct_precision

runner = CliRunner()
CLASSES = ("red", "amber", "green")


def invoke(*args):
    return runner.invoke(app, list(args), env={"COLUMNS": "250"})


def error_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, text  # one line, no traceback
    assert "Traceback" not in text
    return lines[0]


def add_result(
    task,
    row,
    accuracy,
    method="linear-probe",
    seed=0,
    n=300,
    intervals=True,
    results_dir=Path("results"),
    selection=None,
    precision=None,
):
    """A result record scored with score_predictions on simulated predictions right about `accuracy` of the time
    (its choice `selection`, by default C=1 inside the grid); with `precision`, of features in that precision."""
    rng = np.random.default_rng(zlib.crc32(f"{task}|{row}|{method}|{seed}".encode()))
    y = np.arange(n) % len(CLASSES)
    right = np.zeros(n, dtype=bool)
    right[rng.permutation(n)[: round(accuracy * n)]] = True
    predicted = np.where(right, y, (y + 1) % len(CLASSES))
    metrics = score_predictions(y, predicted, CLASSES)
    if not intervals:  # a result file without intervals: the report shows [-]
        metrics = dataclasses.replace(metrics, intervals={})
    selection = selection or Selection("balanced_accuracy", "validation", "C", 1.0)
    record = stored_result(task, row, method, seed, CLASSES, metrics, selection)
    if precision is not None:
        features = FeatureInfo(dim=16, layer="embedding", precision=precision, device="cpu", cache_keys={})
        record = dataclasses.replace(record, precision=distinct_precision(precision), features=features)
    return record.write(results_dir)


@pytest.fixture
def results():
    add_result("traffic-light", "mini-clip/dashcam-salient", 0.40)
    add_result("traffic-light", "mini-clip/random", 0.60)
    add_result("traffic-light", "orbit-cnn/translate:4+hflip", 0.90, method="orbit-cnn")
    add_result("pedestrian", "mini-clip/random", 0.70)
    return Path("results")


def test_intervals_beside_every_number_in_all_outputs(results):
    result = invoke("report")
    assert result.exit_code == 0, result.output
    row = next(
        r
        for r in json.loads(Path("reports/results.json").read_text())["entries"]
        if r["representation"] == "mini-clip/random" and r["task"] == "traffic-light"
    )
    low, high = row["intervals"]["balanced_accuracy"]
    assert low < row["balanced_accuracy"] < high
    cell = f"{row['balanced_accuracy']:.3f} [{low:.3f}, {high:.3f}]"
    # In the terminal the interval sits under its number (two lines per row keep the table within 160 columns).
    terminal = result.output.splitlines()
    line = [i for i, text in enumerate(terminal) if "│ mini-clip/random " in text][
        -1
    ]  # the second table: traffic-light
    below = terminal[line + 1]
    for metric in ("balanced_accuracy", "accuracy", "macro_f1"):
        assert f" {row[metric]:.3f} │" in terminal[line]
        assert f" [{row['intervals'][metric][0]:.3f}, {row['intervals'][metric][1]:.3f}] │" in below
    markdown = Path("reports/report.md").read_text()
    line = next(
        line
        for line in markdown.splitlines()
        if line.startswith("| mini-clip/random | linear-probe |") and cell in line
    )
    for metric in ("accuracy", "macro_f1"):
        assert f"{row[metric]:.3f} [{row['intervals'][metric][0]:.3f}, {row['intervals'][metric][1]:.3f}]" in line


def test_results_csv_has_one_row_per_task_row_method(results):
    assert invoke("report").exit_code == 0
    with open("reports/results.csv", newline="") as f:
        lines = list(csv.DictReader(f))
    assert list(lines[0]) == [
        "task",
        "representation",
        "kind",
        "method",
        "shots",
        "seed",
        "balanced_accuracy",
        "low",
        "high",
        "accuracy",
        "macro_f1",
        "n_test",
        "selected",
        "at_grid_edge",
        "incomplete",
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
        "resize",
    ]
    assert [(r["task"], r["representation"], r["method"]) for r in lines] == [
        ("pedestrian", "mini-clip/random", "linear-probe"),
        ("traffic-light", "orbit-cnn/translate:4+hflip", "orbit-cnn"),
        ("traffic-light", "mini-clip/random", "linear-probe"),
        ("traffic-light", "mini-clip/dashcam-salient", "linear-probe"),
    ]
    first = lines[0]
    assert float(first["low"]) < float(first["balanced_accuracy"]) < float(first["high"])
    assert first["seed"] == "0" and first["shots"] == "" and first["n_test"] == "300" and first["selected"] == "C=1"


def test_result_files_without_intervals_still_render():
    add_result("traffic-light", "mini-clip/random", 0.60, intervals=False)
    result = invoke("report")
    assert result.exit_code == 0, result.output
    assert " [-] │" in result.output
    assert "| 0.600 [-] | 0.600 [-] |" in Path("reports/report.md").read_text()
    (line,) = list(csv.DictReader(open("reports/results.csv", newline="")))
    assert line["low"] == line["high"] == ""
    assert json.loads(Path("reports/results.json").read_text())["entries"][0]["intervals"] is None


def test_floor_passes(results):
    result = invoke(
        "report",
        "--fail-under",
        "traffic-light:mini-clip/random:balanced_accuracy=0.5",
        "--fail-under",
        "*:*:accuracy=0.3",
    )
    assert result.exit_code == 0, result.output


def test_floor_fails_after_writing_the_report(results):
    result = invoke("report", "--fail-under", "traffic-light:*:balanced_accuracy=0.5")
    assert result.exit_code == 1
    assert Path("reports/report.md").exists() and Path("reports/results.csv").exists()
    failures = [line for line in result.output.splitlines() if line.startswith("Below floor")]
    assert failures == [
        "Below floor: traffic-light | mini-clip/dashcam-salient | linear-probe | seed 0: balanced_accuracy 0.4000 < 0.5 "
        "(--fail-under traffic-light:*:balanced_accuracy=0.5)"
    ]


def test_floor_on_a_row_name_with_colons(results):
    assert invoke("report", "--fail-under", "traffic-light:orbit-cnn/translate:4+hflip:macro_f1=0.95").exit_code == 1
    assert invoke("report", "--fail-under", "*:orbit-cnn/translate:4+hflip:macro_f1=0.85").exit_code == 0


def test_floor_that_matches_no_row_is_a_usage_error(results):
    result = invoke("report", "--fail-under", "trafic-light:*:accuracy=0.5")
    assert result.exit_code == 2
    assert error_line(result.output) == (
        "Error: --fail-under 'trafic-light:*:accuracy=0.5' matches no entry. Available: pedestrian: mini-clip/random; "
        "traffic-light: orbit-cnn/translate:4+hflip, mini-clip/random, mini-clip/dashcam-salient"
    )
    assert not Path("reports").exists()  # decided before any file is written: a typo leaves no passing report


@pytest.mark.parametrize(
    "spec",
    [
        "traffic-light:balanced_accuracy=0.5",
        "traffic-light:*:recall=0.5",
        "traffic-light:*:accuracy=high",
        "traffic-light:*:accuracy",
    ],
)
def test_malformed_floor_is_a_usage_error(results, spec):
    result = invoke("report", "--fail-under", spec)
    assert result.exit_code == 2
    assert error_line(result.output) == (
        "Error: --fail-under expects TASK:REPRESENTATION:METRIC=VALUE (TASK and REPRESENTATION may hold * wildcards; "
        "REPRESENTATION may end in a precision, ' (bf16)'; METRIC one of accuracy, "
        f"balanced_accuracy, macro_f1), e.g. traffic-light:*:balanced_accuracy=0.3; got '{spec}'"
    )
    assert not Path("reports").exists()  # checked before any work


def make_reference(results, folder="reference"):
    assert invoke("report", "--out", folder).exit_code == 0
    return f"{folder}/results.json"


def test_compare_within_tolerance(results):
    reference = make_reference(results)
    add_result("traffic-light", "mini-clip/random", 0.58)  # 0.02 lower, well inside its own interval
    result = invoke("report", "--compare", reference, "--max-drop", "0.02")
    assert result.exit_code == 0, result.output


def test_compare_regression(results):
    reference = make_reference(results)
    add_result("traffic-light", "mini-clip/random", 0.45)
    add_result("traffic-light", "cnn/from-scratch", 0.95, method="cnn")
    shutil.rmtree("results/pedestrian")
    result = invoke("report", "--compare", reference, "--max-drop", "0.02")
    assert result.exit_code == 1
    failures = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(failures) == 3
    assert failures[0].startswith(
        "Regression: traffic-light | mini-clip/random | linear-probe | seed 0: "
        "balanced_accuracy 0.4500 (interval top 0."
    )
    assert failures[0].endswith(") < reference 0.6000 - max drop 0.02")
    # An entry of the reference that the run lacks fails the gate, named; one only in the run is a note.
    assert (
        failures[1]
        == "Missing (in the reference, not in this run): pedestrian | mini-clip/random | linear-probe | seed 0"
    )
    assert failures[2].startswith("CI gate: FAILED (2 problems) (--compare reference/results.json --max-drop 0.02: ")
    assert "Added (not in the reference): traffic-light | cnn/from-scratch | cnn | seed 0" in result.stdout


def test_a_reference_with_a_precision_tag_in_its_names_matches_the_row_by_name(results):
    """A reference whose row carries a precision tag ("[bf16]", as names did before they stopped depending on the
    machine) against a run in fp32: the row is matched by its name and compared, and a note says that the precision
    differs; never "1 added, 1 removed"."""
    reference = make_reference(results)
    data = json.loads(Path(reference).read_text())
    for entry in data["entries"]:
        if entry["representation"] == "mini-clip/random" and entry["task"] == "traffic-light":
            entry["representation"], entry["precision"] = "mini-clip/random [bf16]", "bf16"
    Path(reference).write_text(json.dumps(data))
    result = invoke("report", "--compare", reference)
    assert result.exit_code == 0, result.output
    assert (
        "Precision differs: traffic-light | mini-clip/random | linear-probe | seed 0: bf16 in the reference (named "
        "'mini-clip/random [bf16]'), fp32 in this run; compared by name" in result.stdout
    )
    gate = json.loads(Path("reports/results.json").read_text())["gate"]["comparison"]
    assert (gate["matched"], gate["other_precision"], gate["added"], gate["removed"]) == (4, 1, 0, 0)
    assert "4 matched (1 in another precision)" in Path("reports/report.md").read_text()
    # Compared, not waved through: a drop in the renamed row is a regression.
    add_result("traffic-light", "mini-clip/random", 0.40)
    result = invoke("report", "--compare", reference)
    assert result.exit_code == 1
    assert "Regression: traffic-light | mini-clip/random | linear-probe | seed 0" in result.stderr


def test_a_reference_in_another_precision_matches_by_name_and_never_passes_with_the_row_removed(results):
    """A reference made where `--precision auto` chose bf16 (same names, precision bf16) against a run in fp32."""
    shutil.rmtree("results")
    add_result("traffic-light", "mini-clip/dashcam-salient", 0.40, precision="bf16")
    add_result("traffic-light", "mini-clip/random", 0.60, precision="bf16")
    add_result("traffic-light", "orbit-cnn/translate:4+hflip", 0.90, method="orbit-cnn")
    add_result("pedestrian", "mini-clip/random", 0.70, precision="bf16")
    reference = make_reference(results)
    shutil.rmtree("results")
    # This run, on a machine without native bf16: the same rows in fp32.
    add_result("traffic-light", "mini-clip/dashcam-salient", 0.40)
    add_result("traffic-light", "mini-clip/random", 0.45)  # 0.15 below the reference: a regression
    add_result("traffic-light", "orbit-cnn/translate:4+hflip", 0.90, method="orbit-cnn")
    add_result("pedestrian", "mini-clip/random", 0.70)
    result = invoke("report", "--compare", reference)
    assert result.exit_code == 1
    failures = [line for line in result.stderr.splitlines() if line.strip()]
    assert failures[0].startswith("Regression: traffic-light | mini-clip/random | linear-probe | seed 0:")
    assert not any(line.startswith(("Missing", "Added")) for line in result.output.splitlines())
    assert (
        "Precision differs: pedestrian | mini-clip/random | linear-probe | seed 0: bf16 in the reference, fp32 in "
        "this run; compared by name" in result.stdout
    )
    comparison = json.loads(Path("reports/results.json").read_text())["gate"]["comparison"]
    assert (comparison["matched"], comparison["other_precision"]) == (4, 3)
    assert (comparison["added"], comparison["removed"], comparison["regressed"]) == (0, 0, 1)


def test_the_same_name_in_two_precisions_is_two_rows_each_with_its_precision(results):
    add_result("traffic-light", "mini-clip/random", 0.50, precision="bf16")  # beside fp32's file, not over it
    names = sorted(path.name for path in Path("results/traffic-light").glob("mini-clip-random*"))
    assert names == ["mini-clip-random__linear-probe__bf16__seed0.json", "mini-clip-random__linear-probe__seed0.json"]
    result = invoke("report")
    assert result.exit_code == 0, result.output
    data = json.loads(Path("reports/results.json").read_text())
    rows = [(e["representation"], e["precision"]) for e in data["entries"] if e["task"] == "traffic-light"]
    assert rows == [
        ("orbit-cnn/translate:4+hflip", None),
        ("mini-clip/random", None),
        ("mini-clip/random", "bf16"),
        ("mini-clip/dashcam-salient", None),
    ]
    assert len([a for a in data["aggregates"] if a["representation"] == "mini-clip/random"]) == 3
    markdown = Path("reports/report.md").read_text()
    # A table with a row that is not fp32 shows a Precision column; a table of fp32 rows does not.
    assert "| Representation | Precision | Method | Balanced acc." in markdown
    assert re.search(r"\| mini-clip/random \| bf16 \| linear-probe \| 0\.500 ", markdown)
    assert re.search(r"\| mini-clip/random \| - \| linear-probe \| 0\.600 ", markdown)
    assert markdown.count("| Representation | Method | Balanced acc.") == 1  # pedestrian's
    assert "┃ Precision ┃" in result.output and "│ bf16 " in result.output
    html = Path("reports/report.html").read_text()
    assert "<th>Precision</th>" in html and "mini-clip/random (bf16) · linear-probe" in html
    with open("reports/results.csv", newline="") as f:
        precisions = [(r["representation"], r["precision"]) for r in csv.DictReader(f) if r["task"] == "traffic-light"]
    assert ("mini-clip/random", "bf16") in precisions and ("mini-clip/random", "") in precisions


def test_the_across_seeds_and_few_shot_tables_keep_two_precisions_apart():
    for seed in (0, 1):
        for precision, accuracy in (("fp32", 0.60), ("bf16", 0.50 + 0.05 * seed)):
            path = add_result("traffic-light", "mini-clip/random", accuracy, seed=seed, precision=precision)
            record = Result.from_json(json.loads(path.read_text()))
            dataclasses.replace(record, shots=4).write()
    # An 8-shot run that could not be made (no features section): its line is fp32's.
    dataclasses.replace(record, precision=None, shots=8, metrics=None, skipped="too few", features=None).write()
    assert invoke("report").exit_code == 0
    markdown = Path("reports/report.md").read_text()
    assert "| Representation | Precision | Method | Seeds | Balanced acc. | Accuracy | Macro-F1 |" in markdown
    assert "| --- | --- | --- | ---: | ---: | ---: | ---: |" in markdown
    assert "| mini-clip/random | fp32 | linear-probe | 2 | 0.600 ± 0.000 |" in markdown
    assert "| mini-clip/random | bf16 | linear-probe | 2 | 0.525 ± 0.035 |" in markdown
    assert "| Representation | Precision | Method | 4-shot | 8-shot |" in markdown
    assert "| mini-clip/random | fp32 | linear-probe | 0.600 ± 0.000 | skipped |" in markdown
    assert "| mini-clip/random | bf16 | linear-probe | 0.525 ± 0.035 | - |" in markdown
    html = Path("reports/report.html").read_text()
    assert "<td>mini-clip/random</td><td>bf16</td><td>linear-probe</td><td class=num>2</td>" in html


def test_a_floor_matches_a_name_in_every_precision_or_the_one_it_pins(results):
    add_result("traffic-light", "mini-clip/random", 0.50, precision="bf16")
    rows = build_report(results, Path("reports")).entries
    # By name: both precisions, each failing on its own.
    below = check_floors(rows, ["traffic-light:mini-clip/random:balanced_accuracy=0.65"])
    assert [line.split(": balanced_accuracy")[0] for line in below] == [
        "Below floor: traffic-light | mini-clip/random | linear-probe | seed 0",
        "Below floor: traffic-light | mini-clip/random | linear-probe | bf16 | seed 0",
    ]
    pinned = parse_floor("traffic-light:mini-clip/random (bf16):balanced_accuracy=0.55")
    assert (pinned.target, pinned.precision) == ("traffic-light:mini-clip/random", "bf16")
    assert len(check_floors(rows, [pinned])) == 1  # the bf16 row (0.50) only; fp32's 0.60 is not gated
    assert check_floors(rows, ["*:* (bf16):balanced_accuracy=0.45"]) == []
    with pytest.raises(UsageError, match=r"matches no entry\. Available: .*mini-clip/random \(bf16\)"):
        check_floors(rows, ["pedestrian:mini-clip/random (bf16):accuracy=0.1"])
    result = invoke("report", "--fail-under", "traffic-light:mini-clip/random (bf16):balanced_accuracy=0.55")
    assert result.exit_code == 1
    assert "Below floor: traffic-light | mini-clip/random | linear-probe | bf16 | seed 0:" in result.stderr


@pytest.mark.parametrize("entries", [[], {}])
def test_a_reference_with_no_entries_is_a_run_error(results, entries):
    Path("reference.json").write_text(json.dumps({"entries": entries}))
    result = invoke("report", "--compare", "reference.json")
    assert result.exit_code == 1
    assert error_line(result.output) == (
        "Error: Reference file reference.json has no entries: a gate against it would compare nothing"
    )


def test_a_reference_of_another_task_set_matches_nothing_and_fails(results):
    reference = make_reference(results)
    data = json.loads(Path(reference).read_text())
    for entry in data["entries"]:
        entry["task"] = "other-" + entry["task"]
    Path(reference).write_text(json.dumps(data))
    result = invoke("report", "--compare", reference)
    assert result.exit_code == 1
    assert "The reference matched no entry of this run (another task set, or renamed rows): nothing was compared" in (
        result.stderr
    )


def test_a_wildcard_floor_gates_the_model_rows_and_a_named_control_is_gated_too(results):
    """`*` in REPRESENTATION matches the rows of kind probe only; a control is gated when the floor names it."""
    from clipprobe.report.gate import parse_floor

    probe = {"task": "traffic-light", "representation": "mini-clip/dashcam-salient [tokens]", "kind": "probe"}
    control = {"task": "traffic-light", "representation": "mini-clip/random", "kind": "control"}
    assert parse_floor("traffic-light:*:accuracy=0.1").matches(probe)
    assert parse_floor("*:mini-clip/dashcam-*:accuracy=0.1").matches(probe)
    assert not parse_floor("traffic-light:*:accuracy=0.1").matches(control)
    assert parse_floor("traffic-light:mini-clip/random:accuracy=0.1").matches(control)
    assert parse_floor("*:mini-clip/dashcam-salient [tokens]:accuracy=0.1").matches(probe)  # brackets are literal
    assert not parse_floor("*:mini-clip/dashcam-salient [t]:accuracy=0.1").matches(probe)


def test_missing_reference_file(results):
    result = invoke("report", "--compare", "reference/results.json")
    assert result.exit_code == 2
    assert error_line(result.output) == "Error: Reference file not found: reference/results.json"


def test_invalid_reference_file(results):
    Path("reference.json").write_text(json.dumps({"records": []}))
    result = invoke("report", "--compare", "reference.json")
    assert result.exit_code == 2
    assert error_line(result.output).startswith(
        "Error: Reference file reference.json is not a results.json written by `clipprobe report`"
    )


def test_max_drop_needs_compare(results):
    result = invoke("report", "--max-drop", "0.05")
    assert result.exit_code == 2
    assert error_line(result.output) == "Error: --max-drop needs --compare REFERENCE.json"


def test_the_gate_from_python(results, tmp_path):
    rows = build_report(results, tmp_path / "reports").entries
    assert check_floors(rows, ["pedestrian:*:accuracy=0.6"]) == []
    assert len(check_floors(rows, ["*:*:balanced_accuracy=0.65"])) == 2
    with pytest.raises(UsageError, match="matches no entry"):
        check_floors(rows, ["pedestrian:cnn/from-scratch:accuracy=0.6"])
    reference = load_reference(tmp_path / "reports" / "results.json")
    same = regressions(rows, reference, max_drop=0.0)
    assert (same.matched, same.regressed, same.added, same.removed) == (4, [], [], [])
    # The rule: regressed when current_high < reference - max_drop.
    worse = [
        {**row, "intervals": {"balanced_accuracy": [0.1, 0.35]}} if row["representation"] == "mini-clip/random" else row
        for row in rows
    ]
    assert [r["entry"]["task"] for r in regressions(worse, reference, max_drop=0.2).regressed] == [
        "pedestrian",
        "traffic-light",
    ]
    assert [r["entry"]["task"] for r in regressions(worse, reference, max_drop=0.3).regressed] == [
        "pedestrian"
    ]  # 0.35 < 0.70 - 0.3
    assert regressions(worse, reference, max_drop=0.36).regressed == []
    with pytest.raises(UsageError):
        regressions(rows, reference, max_drop=-0.1)


# --- pure logic, without rendering a report ----------------------------------------------------------------


def test_parse_floor_keeps_colons_in_representation_names():
    floor = parse_floor("traffic-light:orbit-cnn/translate:4+hflip:macro_f1=0.85")
    assert (floor.target, floor.metric, floor.value) == ("traffic-light:orbit-cnn/translate:4+hflip", "macro_f1", 0.85)
    entry = {"task": "traffic-light", "representation": "orbit-cnn/translate:4+hflip"}
    assert floor.matches(entry) and parse_floor("*:*:accuracy=0").matches(entry)
    assert not parse_floor("pedestrian:*:accuracy=0").matches(entry)


@pytest.mark.parametrize(
    ("selection", "cell"),
    [
        (Selection("balanced_accuracy", "validation", "C", 0.01), "C=0.01"),
        (Selection("balanced_accuracy", "validation", "alpha", 100.0, at_grid_edge=True), "alpha=100"),
        (Selection("balanced_accuracy", "validation", "epoch", 7), "epoch 7"),
        (Selection(None, None, None, None, note="nothing is chosen"), None),
        (None, None),
    ],
)
def test_the_chosen_hyperparameter_as_a_cell(selection, cell):
    assert selected(selection) == cell


def test_a_choice_at_the_edge_of_what_was_swept_is_marked_in_every_format():
    """A probe's C at the end of its (extended) grid, a network's epoch the last of its budget (a record written
    before networks set the flag: the budget says so), each marked † with the footnote; a choice inside is not."""
    grid = [float(c) for c in np.logspace(-4, 6, 21)]
    add_result(
        "traffic-light",
        "mini-clip/dashcam-salient",
        0.4,
        selection=Selection("balanced_accuracy", "validation", "C", 1e6, at_grid_edge=True, grid=grid),
    )
    add_result("traffic-light", "mini-clip/random", 0.6)
    path = add_result(
        "traffic-light",
        "cnn/from-scratch",
        0.9,
        method="supervised-cnn",
        selection=Selection("balanced_accuracy", "validation", "epoch", 24),
    )
    record = json.loads(path.read_text())
    record.update(kind="trained", training={**TRAINED_SQUASHED, "budget": {"epochs": 24}, "epochs_run": 24})
    path.write_text(json.dumps(record))
    add_result("pedestrian", "mini-clip/random", 0.7)  # nothing at an edge: no footnote
    result = invoke("report")
    assert result.exit_code == 0, result.output
    assert "C=1e+06 †" in result.output and "epoch 24 †" in result.output and "C=1 †" not in result.output
    assert result.output.count("† Chosen at the edge of what was swept") == 1
    markdown = Path("reports/report.md").read_text()
    assert "| C=1e+06 † |" in markdown and "| epoch 24 † |" in markdown and "| C=1 |" in markdown
    assert markdown.count(EDGE_NOTE) == 1
    assert markdown.index("### pedestrian") < markdown.index("### traffic-light") < markdown.index(EDGE_NOTE)
    html = Path("reports/report.html").read_text()
    assert "<td>C=1e+06 †</td>" in html and "<td>epoch 24 †</td>" in html and html.count(escape(EDGE_NOTE)) == 1
    with open("reports/results.csv", newline="") as f:
        edges = {(r["task"], r["representation"]): (r["selected"], r["at_grid_edge"]) for r in csv.DictReader(f)}
    assert edges == {
        ("traffic-light", "mini-clip/dashcam-salient"): ("C=1e+06", "True"),
        ("traffic-light", "mini-clip/random"): ("C=1", "False"),
        ("traffic-light", "cnn/from-scratch"): ("epoch 24", "True"),
        ("pedestrian", "mini-clip/random"): ("C=1", "False"),
    }
    entries = json.loads(Path("reports/results.json").read_text())["entries"]
    assert sorted(e["at_grid_edge"] for e in entries) == [False, False, True, True]


def test_a_number_with_its_interval_or_a_dash():
    entry = {"balanced_accuracy": 0.9734, "intervals": {"balanced_accuracy": [0.9621, 0.9833]}, "accuracy": 0.5}
    assert cell("balanced_accuracy", entry) == "0.973 [0.962, 0.983]"
    assert cell("balanced_accuracy", entry, separator="\n") == "0.973\n[0.962, 0.983]"
    assert cell("accuracy", entry) == "0.500 [-]"


def test_means_across_seeds_use_the_sample_standard_deviation():
    entries = [
        {
            "task": "t",
            "representation": "r",
            "method": "m",
            "shots": None,
            "seed": seed,
            "balanced_accuracy": value,
            "accuracy": value,
            "macro_f1": value,
        }
        for seed, value in ((0, 0.5), (1, 0.7))
    ]
    (summary,) = aggregate(entries)
    assert summary["seeds"] == [0, 1] and summary["balanced_accuracy"]["mean"] == pytest.approx(0.6)
    assert summary["balanced_accuracy"]["std"] == pytest.approx(np.std([0.5, 0.7], ddof=1))
    assert aggregate(entries[:1])[0]["balanced_accuracy"]["std"] is None


# --- provenance: separate fields for where each row comes from (JSON, CSV) -------------------------------------


def add_described(task, row, accuracy, **fields):
    """add_result, with the sections a real record has: the model, its weights, the data and the features."""
    path = add_result(task, row, accuracy, method=fields.pop("method", "linear-probe"))
    record = json.loads(path.read_text())
    record.update(fields)
    path.write_text(json.dumps(record))
    return path


TRAINED_SQUASHED = {
    "baseline": "cnn",
    "architecture": "resnet10-w16",
    "parameters": 1000,
    "budget": {},
    "augment": "translate+hflip",
    "optimiser": "AdamW",
    "loss": "cross-entropy",
    "geometry": "squash",
    "input": "squashed to 64x64 px",
    "epochs_run": 5,
}
PHOTOS = {
    "source": "photos",
    "location": "imagefolder:/data/photos",
    "fingerprint": "imagefolder-98926cc7886f11b2",
    "label": "label",
    "where": [],
    "sizes": {},
    "skipped": {"count": 0, "files": []},
}


def test_results_csv_and_json_give_each_part_of_a_rows_provenance_its_own_field():
    add_described(
        "photos",
        "RN50/rn50_finetuned-1a2b3c4d [tokens]",
        0.8,
        precision="bf16",
        model="RN50",
        pretrained="rn50_finetuned-1a2b3c4d",
        weights={"kind": "file", "sha256": "1a2b3c4d" + "0" * 56},
        data=PHOTOS,
        features={
            "dim": 16,
            "layer": "tokens",
            "precision": "bf16",
            "device": "cpu",
            "cache_keys": {},
            "geometry": "squash",
            "preprocess": {"resize_mode": "squash"},
        },
    )
    add_described(
        "photos",
        "cnn/from-scratch",
        0.9,
        method="supervised-cnn",
        kind="trained",
        model="resnet10-w16",
        weights={"kind": "trained-on-task"},
        data=PHOTOS,
        training=TRAINED_SQUASHED,
    )
    assert invoke("report").exit_code == 0
    with open("reports/results.csv", newline="") as f:
        probed, trained = list(csv.DictReader(f))  # the row under test first
    assert {k: probed[k] for k in ("representation", "kind", "model", "pretrained", "weights_kind")} == {
        "representation": "RN50/rn50_finetuned-1a2b3c4d [tokens]",
        "kind": "probe",
        "model": "RN50",
        "pretrained": "rn50_finetuned-1a2b3c4d",
        "weights_kind": "file",
    }
    assert probed["weights_sha256"] == "1a2b3c4d" + "0" * 56
    assert (probed["source"], probed["source_scheme"], probed["source_path"]) == (
        "photos",
        "imagefolder",
        "/data/photos",
    )
    assert probed["source_fingerprint"] == "imagefolder-98926cc7886f11b2"
    assert (probed["layer"], probed["precision"], probed["resize"]) == ("tokens", "bf16", "squash")
    # A CNN trained on the labels: no layer, precision or pretrained weights, and the cells say so by being empty.
    assert (trained["kind"], trained["model"], trained["weights_kind"]) == (
        "trained",
        "resnet10-w16",
        "trained-on-task",
    )
    assert trained["layer"] == trained["precision"] == trained["pretrained"] == trained["weights_sha256"] == ""
    entry = next(e for e in json.loads(Path("reports/results.json").read_text())["entries"] if e["kind"] == "probe")
    assert (entry["model"], entry["weights_sha256"][:8], entry["source_path"]) == ("RN50", "1a2b3c4d", "/data/photos")
    markdown = Path("reports/report.md").read_text()
    assert (
        "Data: photos (imagefolder:/data/photos), fingerprint imagefolder-98926cc7886f11b2. "
        "Chance: 0.333 (1/3 classes)." in markdown
    )


@pytest.mark.parametrize(
    ("method", "weights", "kind"),
    [
        ("linear-probe", Weights(kind="open_clip-tag"), RowKind.PROBE),
        ("mlp-probe", Weights(kind="file", tag="dashcam-salient"), RowKind.PROBE),
        ("linear-probe", Weights(kind="random"), RowKind.CONTROL),
        ("linear-probe", Weights(kind="none"), RowKind.CONTROL),
        ("supervised-cnn", Weights(kind="trained-on-task"), RowKind.TRAINED),
        ("orbit-cnn", Weights(kind="trained-on-task"), RowKind.TRAINED),
        ("zero-shot", Weights(kind="file"), RowKind.ZERO_SHOT),
        # Declared, not guessed: a probe of random weights that its job calls a probe is a probe.
        ("linear-probe", Weights(kind="random"), RowKind.PROBE),
    ],
)
def test_each_row_has_the_kind_its_record_declares(method, weights, kind):
    metrics = score_predictions(np.arange(30) % 3, np.arange(30) % 3, CLASSES, resamples=10)
    record = stored_result("t", "r", method, 0, CLASSES, metrics, None, kind=kind)
    record = dataclasses.replace(record, weights=weights)
    assert summarise(record)["kind"] == kind.value and kind.value in ROW_KINDS
    # Written and read back, the kind is the record's own.
    assert Result.from_json(record.to_json()).kind is kind


def test_a_record_without_its_kind_is_refused_naming_the_field():
    metrics = score_predictions(np.arange(30) % 3, np.arange(30) % 3, CLASSES, resamples=10)
    data = stored_result("t", "r", "linear-probe", 0, CLASSES, metrics, None).to_json()
    del data["kind"]
    with pytest.raises(RunError, match=r"^result\.json field 'kind' is missing"):
        Result.from_json(data, "result.json")
    data["kind"] = "guess"
    with pytest.raises(RunError, match=r"^result\.json field 'kind' is 'guess', expected one of 'probe', 'control'"):
        Result.from_json(data, "result.json")


@pytest.mark.parametrize(
    ("data", "scheme_path"),
    [
        ({"location": "imagefolder:/data/photos", "fingerprint": "imagefolder-1"}, ("imagefolder", "/data/photos")),
        ({"location": "hf:/cache/lights:default", "fingerprint": "hf-1"}, ("hf", "/cache/lights:default")),
        ({"source": "dashcam", "location": "dashcam", "fingerprint": "dashcam-0647c51e"}, ("dashcam", None)),
        ({}, (None, None)),
    ],
)
def test_a_data_source_splits_into_scheme_and_path(data, scheme_path):
    described = {"source": "", "location": "", "fingerprint": "", **data}
    info = DataInfo(label="label", where=[], sizes={}, skipped=SkippedFiles(count=0), **described)
    assert info.scheme_path == scheme_path


# --- task order, chance levels and the gate in report.md ------------------------------------------------------


def test_tasks_in_order_the_experiments_then_the_other_built_in_ones_then_the_users_data():
    tasks = ["clouds", "my-photos", "car-colour", "traffic-light", "a-survey", "pedestrian", "traffic-light-crops"]
    assert order_tasks(tasks) == [
        "car-colour",
        "clouds",
        "pedestrian",
        "traffic-light",
        "traffic-light-crops",
        "a-survey",
        "my-photos",
    ]
    named = ["traffic-light", "pedestrian", "pedestrian-side", "car-colour", "clouds"]  # an experiment's tasks
    assert order_tasks(tasks, named) == [
        "traffic-light",
        "pedestrian",
        "car-colour",
        "clouds",
        "traffic-light-crops",
        "a-survey",
        "my-photos",
    ]
    assert task_group("traffic-light[seed=1]") == "Built-in tasks" and task_group("my-photos") == "Your data"


def test_report_md_orders_tasks_and_states_each_chance_level():
    add_result("my-photos", "mini-clip/random", 0.5)
    add_result("traffic-light", "mini-clip/random", 0.6)
    add_result("car-colour", "mini-clip/random", 0.6)
    assert invoke("report").exit_code == 0
    markdown = Path("reports/report.md").read_text()
    assert [line for line in markdown.splitlines() if line.startswith("### ")] == [
        "### car-colour",
        "### traffic-light",
        "### my-photos",
    ]
    assert markdown.count("Chance: 0.333 (1/3 classes).") == 3
    assert chance_level([{"task": "t", "per_class_recall": {"a": 1.0, "b": 0.0}}], "t") == (0.5, 2)
    assert chance_level([{"task": "t", "per_class_recall": {}}], "t") is None


def test_report_md_shows_the_gates_outcome(results):
    result = invoke(
        "report", "--fail-under", "traffic-light:*:balanced_accuracy=0.5", "--fail-under", "*:*:accuracy=0.3"
    )
    assert result.exit_code == 1
    markdown = Path("reports/report.md").read_text()
    gate = markdown[markdown.index("### CI gate") : markdown.index("### pedestrian")]
    assert gate.splitlines() == [
        "### CI gate: FAILED (1 problem)",
        "",
        "| Check | Entries | Outcome |",
        "| --- | ---: | --- |",
        "| `--fail-under traffic-light:*:balanced_accuracy=0.5` | 3 | 1 below the floor |",
        "| `--fail-under *:*:accuracy=0.3` | 4 | held |",
        "",
        "- `Below floor: traffic-light | mini-clip/dashcam-salient | linear-probe | seed 0: balanced_accuracy 0.4000 "
        "< 0.5 (--fail-under traffic-light:*:balanced_accuracy=0.5)`",
        "",
        "Test split; every choice (probe C, training epoch) made on the validation split.",
        "",
    ]
    gate_json = json.loads(Path("reports/results.json").read_text())["gate"]
    assert gate_json["passed"] is False and gate_json["floors"][0] == {
        "spec": "traffic-light:*:balanced_accuracy=0.5",
        "matched": 3,
        "failed": 1,
    }

    reference = make_reference(results)
    assert invoke("report", "--compare", reference, "--fail-under", "*:*:accuracy=0.3").exit_code == 0
    markdown = Path("reports/report.md").read_text()
    assert "### CI gate: passed" in markdown
    assert f"| `--compare {reference} --max-drop 0.02` | 4 matched | no regression; 0 added, 0 removed |" in markdown
    # Without a gate there is no gate section.
    assert invoke("report").exit_code == 0
    assert "CI gate" not in Path("reports/report.md").read_text()
    assert json.loads(Path("reports/results.json").read_text())["gate"] is None


def test_a_negative_max_drop_stops_before_anything_is_read(results):
    result = invoke("report", "--compare", make_reference(results), "--max-drop", "-0.1")
    assert result.exit_code == 2
    assert error_line(result.output) == "Error: --max-drop must be a number >= 0, got -0.1"
    assert not Path("reports").exists()


def test_intervals_are_written_one_way():
    assert interval_text([0.9621, 0.9833]) == "[0.962, 0.983]"
    assert interval_text((-0.0974, -0.0483), signed=True) == "[-0.097, -0.048]"
    assert interval_text((0.012, 0.04), signed=True) == "[+0.012, +0.040]"
    assert interval_text(None) == "[-]"


# --- row labels: from the model and the weights' identity, never from the path typed ----------------------------


SHA = "1a2b3c4d" + "e" * 56


@pytest.mark.parametrize(
    ("model", "pretrained", "load_arg", "identity", "names"),
    [
        ("ViT-B-32", "openai", "openai", {"kind": "open_clip-tag", "tag": "openai"}, ("ViT-B-32", "openai")),
        ("mini-clip", "random", None, {"kind": "random"}, ("mini-clip", "random")),
        (
            "mini-clip",
            "dashcam-salient@702186d3",
            "/home/u/.cache/clipprobe/weights/x/open_clip_model.safetensors",
            {"kind": "file", "tag": "dashcam-salient@702186d3", "sha256": SHA},
            ("mini-clip", "dashcam-salient@702186d3"),
        ),
        (
            "RN50",
            "models/rn50_random.pt",
            "models/rn50_random.pt",
            {"kind": "file", "sha256": SHA},
            ("RN50", "rn50_random-1a2b3c4d"),
        ),
        (
            "RN50",
            "./models/../models/rn50_random.pt",
            "./models/../models/rn50_random.pt",
            {"kind": "file", "sha256": SHA},
            ("RN50", "rn50_random-1a2b3c4d"),
        ),
        (
            "ViT-B-32",
            "/models/vit-b-32-laion/open_clip_pytorch_model.bin",
            "/models/vit-b-32-laion/open_clip_pytorch_model.bin",
            {"kind": "file", "sha256": SHA},
            ("ViT-B-32", "vit-b-32-laion-1a2b3c4d"),
        ),
        (
            "hf-hub:laion/CLIP-ViT-B-32",
            None,
            None,
            {"kind": "hf-hub", "repo": "laion/CLIP-ViT-B-32"},
            ("hf-hub:laion/CLIP-ViT-B-32",) * 2,
        ),
        (
            "local-dir:models/tiny-vit",
            None,
            None,
            {"kind": "local-dir", "config": "c", "sha256": SHA},
            ("local-dir:tiny-vit", "1a2b3c4d"),
        ),
        (
            "local-dir:./models/tiny-vit/",
            None,
            None,
            {"kind": "local-dir", "config": "c", "sha256": SHA},
            ("local-dir:tiny-vit", "1a2b3c4d"),
        ),
    ],
)
def test_row_labels_name_the_model_and_the_weights_identity_not_the_path(model, pretrained, load_arg, identity, names):
    from clipprobe.features.naming import weights_names
    from clipprobe.features.weights import WeightsSpec

    assert weights_names(model, WeightsSpec(model, pretrained, load_arg, identity)) == names


def test_a_checkpoint_through_two_paths_is_one_row(tiny_model, tmp_path, monkeypatch):
    """The same weights typed as a relative and as an absolute path (or copied elsewhere under the same name)
    are one row: model name, file name and content hash."""
    import torch

    from clipprobe.features.config import ExtractorConfig
    from clipprobe.features.extractors import make_extractor

    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    (tmp_path / "copy").mkdir()
    torch.save({"w": torch.zeros(2)}, tmp_path / "models" / "tiny_ft.pt")
    (tmp_path / "copy" / "tiny_ft.pt").write_bytes((tmp_path / "models" / "tiny_ft.pt").read_bytes())
    names = {
        make_extractor(ExtractorConfig(model=tiny_model, pretrained=path)).describe()["representation"]
        for path in ("models/tiny_ft.pt", str(tmp_path / "models" / "tiny_ft.pt"), "copy/tiny_ft.pt")
    }
    (name,) = names
    assert re.fullmatch(rf"{tiny_model}/tiny_ft-[0-9a-f]{{8}}", name)


@pytest.mark.parametrize("width", [80, 120])
def test_the_terminal_table_fits_the_terminal_without_cutting_a_cell(width):
    """The experiment's own entries (docs/results.json): at 80 and 120 columns every line fits, no cell is cut to
    "…", every row keeps its name and balanced accuracy, and the columns left out are named."""
    import io
    import json

    from rich.console import Console

    from clipprobe.report.terminal import task_table

    entries = json.loads((Path(__file__).parent.parent / "docs" / "results.json").read_text())["entries"]
    task = "traffic-light"
    console = Console(width=width, file=io.StringIO(), record=True)
    console.print(task_table(entries, task, width=width), crop=False)
    text = console.export_text()
    assert "\u2026" not in text
    assert max(len(line) for line in text.splitlines()) <= width
    shown = [e for e in entries if e["task"] == task and e.get("shots") is None]
    assert text.count(f"{shown[0]['balanced_accuracy']:.3f}") >= 1
    assert "Left out at" in text and "Recall per class" in text  # named in the note, not a column


@pytest.mark.parametrize("width", [80, 160])
def test_the_experiment_tables_name_every_row_in_full_at_any_width(width):
    """The experiment's record (docs/results.json) in a terminal or a CI log: no cell cut to "…", no line wider
    than the terminal, every row named in full (at 160 columns each name on one line; a table too wide is split
    into parts that repeat the names)."""
    import io
    import json

    from rich.console import Console

    from clipprobe.core.records import from_json
    from clipprobe.dashcam.records import ExperimentRecord
    from clipprobe.dashcam.report import experiment_label, experiment_tables

    documents = json.loads((Path(__file__).parent.parent / "docs" / "results.json").read_text())["experiments"]
    (document,) = [d for d in documents if d["kind"] == "curation-experiment"]
    record = from_json(ExperimentRecord, {k: v for k, v in document.items() if k != "schema_version"}, "docs")
    console = Console(width=width, file=io.StringIO(), record=True)
    for table in experiment_tables(record, width):
        console.print(table, crop=False)
    text = console.export_text()
    assert "\u2026" not in text
    assert max(len(line) for line in text.splitlines()) <= width
    labels = {experiment_label(row) for row in record.rows}
    if width == 160:  # every row's name on one line (with ten tasks, a table may still be split into parts)
        assert all(label in text for label in labels)
    # Folded where they must be (a contrast's name is longer than two fifths of the width), never lost: the first
    # column's lines, joined, hold every name and every contrast whole.
    first = "".join("".join(line.split("\u2502")[1].split()) for line in text.splitlines() if line.startswith("\u2502"))
    assert all("".join(name.split()) in first for name in [*labels, *(c.name for c in record.primary)])
