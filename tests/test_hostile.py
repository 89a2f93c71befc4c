"""Hostile input: no silent wrong result, no injection into the report's files, no hang; one-line errors that name
the problem, with exit code 2 for bad input and 130 for an interrupt."""

from __future__ import annotations

import csv
import io
import os
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import stored_result
from PIL import Image
from typer.testing import CliRunner

from clipprobe.cli.app import app
from clipprobe.core.errors import UsageError
from clipprobe.data.readers import parse_dataset
from clipprobe.data.safety import image_problem
from clipprobe.features.config import ExtractorConfig
from clipprobe.probes.metrics import score_predictions
from clipprobe.report.build import build_report
from clipprobe.results import Selection

runner = CliRunner()
CLASSES = ("red", "green")


def one_line_error(result) -> str:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0]


def _result(task: str, representation: str, accuracy: float = 0.7):
    rng = np.random.default_rng(zlib.crc32(representation.encode()))
    y = np.arange(40) % 2
    predicted = np.where(rng.random(40) < accuracy, y, 1 - y)
    metrics = score_predictions(y, predicted, CLASSES, resamples=50)
    return stored_result(
        task,
        representation,
        "linear-probe",
        0,
        CLASSES,
        metrics,
        Selection("balanced_accuracy", "validation", "C", 1.0),
    ).write(Path("results"))


# --- what a result file holds cannot inject into the report ----------------------------------------------------

HOSTILE_NAMES = [
    ("html", "evil/<img src=x onerror=alert(1)>"),
    ("pipe", "split|the|table"),
    ("formula", '=HYPERLINK("http://x","click")'),
    ("plus", "+1+cmd"),
    ("newline", "two\nlines"),
]


@pytest.mark.parametrize(("kind", "name"), HOSTILE_NAMES, ids=[k for k, _ in HOSTILE_NAMES])
def test_names_from_result_files_are_inert_in_every_format(kind, name):
    _result("t", name)
    _result("t", "plain/model", 0.6)
    report = build_report(Path("results"), Path("reports"))
    markdown = report.files["markdown"].read_text()
    table = [line for line in markdown.splitlines() if line.startswith("| ") and "linear-probe" in line]
    assert len(table) == 2 and all(line.count(" | ") == table[0].count(" | ") for line in table)  # no cell split
    assert "<img" not in markdown
    assert "<img src=x" not in report.files["html"].read_text()
    with open(report.files["csv"], newline="") as f:
        cells = [row["representation"] for row in csv.DictReader(f)]
    assert all(not cell.startswith(("=", "+", "-", "@")) for cell in cells)
    assert any(cell.lstrip("'") == name for cell in cells)  # the name itself is kept, quoted when it must be


# --- bad data is an error that names it, never a silently different task ---------------------------------------


def _images(root: Path, counts: dict[str, int]) -> list[tuple[str, str]]:
    rows = []
    for label, n in counts.items():
        for i in range(n):
            path = root / "images" / f"{label or 'none'}-{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (8, 8), (200, 10 * i, 30)).save(path)
            rows.append((str(path.relative_to(root)), label))
    return rows


@pytest.mark.parametrize("missing", ["", "nan", "NaN", "  "])
def test_an_empty_or_nan_label_is_an_error_naming_the_row(tmp_path, missing):
    rows = _images(tmp_path, {"red": 10, "green": 10})
    rows[3] = (rows[3][0], missing)
    (tmp_path / "labels.csv").write_text("path,label\n" + "".join(f"{p},{label}\n" for p, label in rows))
    with pytest.raises(UsageError, match=r"has no label in column 'label' \(got .*\); give every image a label"):
        parse_dataset(f"csv:{tmp_path / 'labels.csv'}", label="label").load()


def test_a_single_class_is_an_error_before_any_extraction(tmp_path):
    rows = _images(tmp_path, {"red": 12})
    (tmp_path / "labels.csv").write_text("path,label\n" + "".join(f"{p},{label}\n" for p, label in rows))
    with pytest.raises(UsageError, match=r"has only the class 'red' in column 'label'; a probe needs at least two"):
        parse_dataset(f"csv:{tmp_path / 'labels.csv'}", label="label").class_names() and parse_dataset(
            f"csv:{tmp_path / 'labels.csv'}", label="label"
        ).load()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_a_fifo_named_in_a_manifest_is_an_unreadable_image_not_a_hang(tmp_path):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    assert image_problem({"bytes": None, "path": str(fifo)}) == "not a regular file"


def test_a_decompression_bomb_is_refused_from_its_header(monkeypatch):
    buffer = io.BytesIO()
    Image.new("L", (3000, 3000)).save(buffer, format="PNG")  # a few KB that would decode to 9 megapixels
    monkeypatch.setenv("CLIPPROBE_MAX_IMAGE_PIXELS", "4000000")
    problem = image_problem({"bytes": buffer.getvalue(), "path": None})
    assert (
        problem
        == "too large: 3000x3000 pixels, over the limit of 4,000,000 (set CLIPPROBE_MAX_IMAGE_PIXELS to allow more)"
    )
    monkeypatch.setenv("CLIPPROBE_MAX_IMAGE_PIXELS", "lots")
    with pytest.raises(
        UsageError, match=r"^CLIPPROBE_MAX_IMAGE_PIXELS must be a positive number of pixels, got 'lots'$"
    ):
        image_problem({"bytes": buffer.getvalue(), "path": None})


# --- bad numbers fail before any work, in one line -------------------------------------------------------------


def test_a_negative_seed_is_a_usage_error():
    with pytest.raises(UsageError, match=r"^--seed must be a whole number 0 or more, got -1$"):
        ExtractorConfig(seed=-1)
    result = runner.invoke(app, ["probe", "--task", "traffic-light", "--seed", "-1", "--baselines", "none"])
    assert result.exit_code == 2
    assert one_line_error(result) == "Error: --seed must be a whole number 0 or more, got -1"


def test_ctrl_c_says_what_is_kept_and_exits_130(monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("clipprobe.report.build.build_report", interrupted)
    Path("results").mkdir()
    result = runner.invoke(app, ["report"])
    assert result.exit_code == 130
    assert one_line_error(result) == (
        "Interrupted: every finished chunk and result file is kept; run the same command again to resume"
    )


def test_a_class_whose_every_image_is_unreadable_is_an_error_not_a_dropped_class(tmp_path):
    for label, n in (("red", 8), ("green", 8), ("amber", 3)):
        folder = tmp_path / "photos" / label
        folder.mkdir(parents=True)
        for i in range(n):
            if label == "amber":
                (folder / f"{i}.png").write_bytes(b"not a png")
            else:
                Image.new("RGB", (8, 8), (10 * i, 100, 30)).save(folder / f"{i}.png")
    with pytest.raises(UsageError, match=r"all 3 images of class 'amber' are unreadable \(e\.g\. amber/\d\.png: "):
        parse_dataset(f"imagefolder:{tmp_path / 'photos'}").load()


@pytest.mark.parametrize("value", ['"0.5"', "NaN", "true"])
def test_a_reference_file_with_a_value_that_is_not_a_number_is_refused_up_front(value):
    entry = '{"task": "t", "representation": "r", "method": "m", "shots": null, "seed": 0, "balanced_accuracy": %s}'
    Path("reference.json").write_text('{"entries": [' + entry % value + "]}")
    Path("results").mkdir()
    result = runner.invoke(app, ["report", "--compare", "reference.json"])
    assert result.exit_code == 2
    assert one_line_error(result).startswith(
        "Error: Reference file reference.json is not a results.json written by `clipprobe report` (ValueError: "
        "balanced_accuracy "
    )
