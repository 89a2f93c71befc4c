"""`clipprobe report` writes report.html: self-contained, one section per task, plots as PNG data URIs, escaped, stable."""

import base64
import dataclasses
import html
import io
import json
import re
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import stored_result
from typer.testing import CliRunner

from clipprobe.cli.app import app
from clipprobe.core.kinds import RowKind
from clipprobe.probes.metrics import score_predictions
from clipprobe.report.build import build_report
from clipprobe.results import Selection, Training, Weights

runner = CliRunner()
CLASSES = ("red", "amber", "green")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def add_result(task, row, accuracy, method="linear-probe", seed=0, n=120, intervals=True, selection=None):
    """A result record scored on simulated predictions right about `accuracy` of the time."""
    rng = np.random.default_rng(zlib.crc32(f"{task}|{row}|{method}|{seed}".encode()))
    y = np.arange(n) % len(CLASSES)
    right = np.zeros(n, dtype=bool)
    right[rng.permutation(n)[: round(accuracy * n)]] = True
    predicted = np.where(right, y, (y + 1) % len(CLASSES))
    metrics = score_predictions(y, predicted, CLASSES, resamples=200)
    if not intervals:  # a result file without intervals: the report shows [-]
        metrics = dataclasses.replace(metrics, intervals={})
    if selection is None:
        curve = [{"C": c, "balanced_accuracy": accuracy - abs(np.log10(c)) / 20} for c in (0.01, 0.1, 1.0, 10.0, 100.0)]
        selection = Selection("balanced_accuracy", "validation", "C", 1.0, curve=curve)
    # The record declares its kind of row (and so its colour), as the job that made it does.
    if method == "cnn":
        record = stored_result(task, row, method, seed, CLASSES, metrics, selection, kind=RowKind.TRAINED)
        record = dataclasses.replace(record, weights=Weights(kind="trained-on-task"), training=SQUASHED_CNN)
    elif method == "zero-shot":
        record = stored_result(task, row, method, seed, CLASSES, metrics, selection, kind=RowKind.ZERO_SHOT)
    elif row.endswith("/random"):
        record = stored_result(task, row, method, seed, CLASSES, metrics, selection, kind=RowKind.CONTROL)
        record = dataclasses.replace(record, weights=Weights(kind="random"))
    else:
        record = stored_result(task, row, method, seed, CLASSES, metrics, selection)
    return record.write(Path("results"))


SQUASHED_CNN = Training(
    baseline="cnn",
    architecture="cnn",
    parameters=1000,
    budget={},
    augment="translate+hflip",
    optimiser="AdamW",
    loss="cross-entropy",
    geometry="squash",
    input="squashed to 32x32 px",
    epochs_run=5,
)


EPOCHS = Selection(
    "balanced_accuracy",
    "validation",
    "epoch",
    3,
    curve=[{"epoch": e, "balanced_accuracy": 0.5 + 0.1 * min(e, 3), "train_loss": 1.0 / e} for e in range(1, 6)],
)
ZERO_SHOT = Selection(None, None, None, None, note="nothing is chosen: the prompts are fixed before any data is seen")


@pytest.fixture
def results():
    add_result("traffic-light", "mini-clip/dashcam-salient", 0.40)
    add_result("traffic-light", "mini-clip/random", 0.60)
    add_result("traffic-light", "cnn/from-scratch", 0.90, method="cnn", selection=EPOCHS)
    add_result("traffic-light", "mini-clip/zero-shot", 0.50, method="zero-shot", selection=ZERO_SHOT)
    add_result("pedestrian", "mini-clip/random", 0.70)
    return Path("results")


def sections(page: str) -> dict[str, str]:
    """Task name -> the HTML of its <section>."""
    found = re.findall(
        r'<section id="task-[^"]+">\n<h2>(.*?)<a class="top" href="#contents">&uarr; contents</a></h2>\n(.*?)</section>',
        page,
        flags=re.DOTALL,
    )
    return {name: body for name, body in found}


def images(page: str) -> list[bytes]:
    return [base64.b64decode(data, validate=True) for data in re.findall(r'src="data:image/png;base64,([^"]+)"', page)]


def test_report_writes_a_self_contained_html_file(results):
    result = runner.invoke(app, ["report"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert "Wrote reports/report.md, reports/report.html, reports/results.json and reports/results.csv" in result.output
    page = Path("reports/report.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    for external in ('src="http', "src='http", "<link", "<script", "url(", "@import"):
        assert external not in page
    assert re.findall(r'\bsrc="([^"]{0,22})', page) == ["data:image/png;base64,"] * len(images(page))


def test_one_section_per_task_with_its_table_and_plots(results):
    page = build_report(results, Path("reports")).files["html"].read_text(encoding="utf-8")
    by_task = sections(page)
    assert list(by_task) == ["pedestrian", "traffic-light"]  # the report's order
    traffic = by_task["traffic-light"]
    table = traffic[: traffic.index("<figure>")]
    rows = re.findall(r'<tr class="kind-([a-z-]+)"><td>(.*?)</td><td>(.*?)</td>', table)
    assert rows == [  # the rows under test first, then what they are compared with
        ("probe", "mini-clip/dashcam-salient", "linear-probe"),
        ("zero-shot", "mini-clip/zero-shot", "zero-shot"),
        ("trained", "cnn/from-scratch", "cnn"),
        ("control", "mini-clip/random", "linear-probe"),
    ]
    # The same columns as report.md, numbers with their intervals.
    assert "<th>Representation</th><th>Method</th><th>Balanced acc.</th>" in traffic
    assert re.search(r'<td class="num">0\.900 \[0\.\d{3}, 0\.\d{3}\]</td>', traffic)
    assert "<td>epoch 3</td>" in traffic and "<td>C=1</td>" in traffic
    assert "dashed line: chance, 1/3 = 0.333" in traffic and "Chance: 0.333 (1/3 classes)." in traffic
    # One bar chart, then per row a confusion matrix and (except zero-shot) a validation curve.
    assert len(images(traffic)) == 1 + 4 + 3
    assert len(images(by_task["pedestrian"])) == 1 + 1 + 1
    assert "nothing is chosen: the prompts are fixed before any data is seen" in traffic
    for png in images(page):
        assert png.startswith(PNG_SIGNATURE)
        assert b"Software" not in png and b"tIME" not in png


def test_text_from_records_is_escaped():
    add_result("traffic-light", "evil/<script>alert(1)</script> & $x$", 0.6)
    page = build_report(Path("results"), Path("reports")).files["html"].read_text(encoding="utf-8")
    assert "<script>" not in page
    assert "evil/&lt;script&gt;alert(1)&lt;/script&gt; &amp; $x$" in page


def test_result_files_without_intervals_curves_or_confusion_matrix():
    add_result(
        "traffic-light",
        "mini-clip/random",
        0.60,
        intervals=False,
        selection=Selection("balanced_accuracy", "validation", "C", 1.0),
    )
    path = add_result(
        "traffic-light", "mini-clip/old", 0.50, intervals=False, selection=Selection(None, None, None, None)
    )
    record = json.loads(path.read_text())
    record["metrics"]["confusion_matrix"] = []  # a record that kept no matrix
    path.write_text(json.dumps(record))
    page = build_report(Path("results"), Path("reports")).files["html"].read_text(encoding="utf-8")
    traffic = sections(page)["traffic-light"]
    assert '<td class="num">0.600 [-]</td>' in traffic
    assert "No confusion matrix in the result file." in traffic
    assert traffic.count("No validation curve in the result file.") == 1  # chose C, but kept no curve
    assert traffic.count("No validation curve: nothing was chosen on validation.") == 1
    assert len(images(traffic)) == 1 + 1  # the bar chart (no error bars) and one confusion matrix


def test_same_results_give_the_same_bytes(results):
    first = build_report(results, Path("first")).files["html"].read_bytes()
    second = build_report(results, Path("second")).files["html"].read_bytes()
    assert first == second


@pytest.mark.parametrize("point", [{"C": 1e-4, "balanced_accuracy": 1.0}, {"epoch": 3, "balanced_accuracy": 0.9}])
def test_a_one_point_curve_draws_without_warnings(point):
    """A sweep that was perfect at its first C has one point; matplotlib would warn of an empty axis range."""
    import warnings

    from clipprobe.report.plots import curve_png

    axis = next(iter(point))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        selection = Selection("balanced_accuracy", "validation", axis, point[axis], curve=[point])
        png = curve_png([point], selection, f"{axis} = {point[axis]}")
    assert png.startswith(b"\x89PNG")


# --- navigation, kinds of row, fixed axes, the gate ------------------------------------------------------------


def test_contents_group_the_tasks_and_every_task_links_back(results):
    add_result("my-photos", "mini-clip/dashcam-salient", 0.8)
    page = build_report(results, Path("reports")).files["html"].read_text(encoding="utf-8")
    nav = page[page.index('<nav id="contents">') : page.index("</nav>")]
    groups = re.findall(r"<h3>(.*?)</h3>\n<ul>(.*?)</ul>", nav)
    assert [(title, re.findall(r">([^<]+)</a>", links)) for title, links in groups] == [
        ("Built-in tasks", ["pedestrian", "traffic-light"]),
        ("Your data", ["my-photos"]),
    ]
    assert list(sections(page)) == ["pedestrian", "traffic-light", "my-photos"]  # the contents' order
    for anchor in re.findall(r'href="#(task-[^"]+)"', nav):
        assert f'<section id="{anchor}">' in page
    assert page.count('<a class="top" href="#contents">&uarr; contents</a>') == 3
    assert '<h1 id="top">' in page and '<a class="to-top" href="#top">' in page  # always one click from the top


def test_a_legend_says_what_each_kind_of_row_is(results):
    from clipprobe.report.plots import KIND_COLOURS
    from clipprobe.report.tables import ROW_KINDS

    page = build_report(results, Path("reports")).files["html"].read_text(encoding="utf-8")
    legend = page[page.index('<div class="legend">') :]
    legend = legend[: legend.index("</div>")]
    for kind, (name, what) in ROW_KINDS.items():
        assert f'background: {KIND_COLOURS[kind]}"></span><b>{name}</b>: {html.escape(what)}' in legend
    assert "<b>chance</b>" in legend
    # Each card carries its kind (its colour), as each table row does.
    assert re.findall(r'<div class="card kind-([a-z-]+)">', sections(page)["traffic-light"]) == [
        "probe",
        "zero-shot",
        "trained",
        "control",
    ]


def test_bars_are_coloured_by_kind_of_row():
    from PIL import Image

    from clipprobe.report.plots import KIND_COLOURS, bar_chart_png

    rows = [
        {"balanced_accuracy": 0.9, "kind": "trained"},
        {"balanced_accuracy": 0.7, "kind": "probe"},
        {"balanced_accuracy": 0.5, "kind": "control"},
    ]
    image = Image.open(io.BytesIO(bar_chart_png(["a", "b", "c"], rows, 1 / 3))).convert("RGB")
    pixels = {tuple(int(v) for v in pixel) for pixel in np.asarray(image).reshape(-1, 3)}

    def rgb(colour: str) -> tuple[int, ...]:
        return tuple(int(colour[i : i + 2], 16) for i in (1, 3, 5))

    assert {rgb(KIND_COLOURS[k]) for k in ("trained", "probe", "control")} <= pixels
    assert rgb(KIND_COLOURS["zero-shot"]) not in pixels


@pytest.mark.parametrize("values", [(0.35, 0.40), (0.90, 0.99)])
def test_validation_curves_share_one_fixed_axis_with_chance_drawn(values):
    from clipprobe.report.plots import curve_figure

    curve = [{"C": c, "balanced_accuracy": v} for c, v in zip((0.1, 1.0), values)]
    figure = curve_figure(
        curve, Selection("balanced_accuracy", "validation", "C", 1.0, curve=curve), "C=1", chance=1 / 3
    )
    (axes,) = figure.axes
    assert axes.get_ylim() == (0, 1.02)  # never autoscaled to the curve's own range
    assert any(list(line.get_ydata()) == [1 / 3, 1 / 3] for line in axes.get_lines())


def test_the_gate_and_each_rows_provenance_are_on_the_page(results):
    from clipprobe.report.gate import Gate

    gate = Gate.from_options(["traffic-light:*:balanced_accuracy=0.5"])
    report = build_report(results, Path("reports"), gate=gate)
    assert not report.gate.passed
    page = report.files["html"].read_text(encoding="utf-8")
    section = page[page.index('<section id="gate"') : page.index("</section>")]
    assert '<section id="gate" class="gate failed">' in section and "<h2>CI gate: FAILED (1 problem)</h2>" in section
    assert (
        "<tr><td>--fail-under traffic-light:*:balanced_accuracy=0.5</td><td class=num>1</td>"
        "<td>1 below the floor</td></tr>"
    ) in section
    assert "<li>Below floor: traffic-light | mini-clip/dashcam-salient | linear-probe | seed 0:" in section
    assert page.index('<section id="gate"') < page.index('<nav id="contents">')  # the first thing on the page
    traffic = sections(page)["traffic-light"]
    provenance = traffic[traffic.index("<details>") : traffic.index("</details>")]
    assert "<th>Model</th><th>Pretrained</th><th>Weights</th><th>Weights sha256</th><th>Layer</th>" in provenance
    assert '<tr class="kind-trained"><td>cnn/from-scratch</td><td>trained</td><td>cnn</td>' in provenance
