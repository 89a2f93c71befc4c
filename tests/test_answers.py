"""The one-line answers: what a task's table means, from paired comparisons with the seed as the unit where seeds
vary (clipprobe.report.answers)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import stored_result
from scipy import stats
from typer.testing import CliRunner

from clipprobe.cli import app
from clipprobe.core.kinds import RowKind
from clipprobe.probes.intervals import image_variance
from clipprobe.probes.metrics import score_predictions
from clipprobe.report.answers import ALPHA, footnote, task_answers
from clipprobe.results import FeatureInfo, Selection
from clipprobe.stats.seeds import single_seed_difference

CLASSES = ("red", "amber", "green")
SELECTION = Selection("balanced_accuracy", "validation", "C", 1.0)


def _record(name, kind, seed, y, predicted, method="linear-probe", keep_labels=True):
    record = stored_result("t", name, method, seed, CLASSES, score_predictions(y, predicted, CLASSES), SELECTION, kind)
    record.predictions = [int(p) for p in predicted]
    record.labels = [int(v) for v in y] if keep_labels else None
    return record


def _noisy(rng, y, accuracy):
    """Predictions right with probability `accuracy`, else a uniformly drawn class."""
    return np.where(rng.random(len(y)) < accuracy, y, rng.integers(0, 3, len(y)))


def test_the_answer_compares_the_row_under_test_with_every_reference_and_chance():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 400)
    records = [
        _record("model", RowKind.PROBE, 0, y, _noisy(rng, y, 0.5)),
        *(_record("cnn/from-scratch", RowKind.TRAINED, s, y, _noisy(rng, y, 0.9), "cnn") for s in range(3)),
        _record("random", RowKind.CONTROL, 0, y, _noisy(rng, y, 0.5)),
        _record("pixels/32px", RowKind.CONTROL, 0, y, _noisy(rng, y, 0.1)),
        # A control read by another probe, or at another layer, is not this row's reference.
        _record("random", RowKind.CONTROL, 0, y, _noisy(rng, y, 0.5), method="mlp-probe"),
        _record("random [tokens]", RowKind.CONTROL, 0, y, _noisy(rng, y, 0.5)),
    ]
    records[-1].features = FeatureInfo(dim=16, layer="tokens", precision="fp32", device="cpu", cache_keys={})
    records[0].precision = "bf16"  # a row of its own, named with its precision beside the method
    (answer,) = task_answers(records, "t")
    # The networks trained on the labels, then the controls, each by name; chance last.
    assert [(c.reference, c.kind) for c in answer.comparisons] == [
        ("cnn/from-scratch", "trained"),
        ("pixels/32px", "control"),
        ("random", "control"),
        ("chance", "chance"),
    ]
    verdicts = {c.reference: c.verdict for c in answer.comparisons}
    assert verdicts == {
        "cnn/from-scratch": "below",
        "random": "not resolved",
        "pixels/32px": "above",
        "chance": "above",
    }
    # The Holm adjustment over the task's four comparisons, from the raw p-values.
    raw = sorted(c.p for c in answer.comparisons)
    assert min(c.p_holm for c in answer.comparisons) == pytest.approx(min(1.0, 4 * raw[0]))
    sentence = answer.sentence()
    assert re.fullmatch(
        r"model \(linear-probe, bf16\): 0\.\d{3}; below cnn/from-scratch by 0\.\d{3} \[0\.\d{3}, 0\.\d{3}\]; "
        r"above pixels/32px by 0\.\d{3} \[0\.\d{3}, 0\.\d{3}\]; "
        r"not resolved from random \([+-]0\.\d{3} \[[+-]0\.\d{3}, [+-]0\.\d{3}\]\); above chance \(0\.333\) by 0\.\d{3} \[0\.\d{3}, 0\.\d{3}\]\.",
        sentence,
    ), sentence
    assert "Holm over the task's 4 comparisons" in footnote([answer])
    assert "a row of one seed adds no spread between seeds" in footnote([answer])


def test_a_row_of_one_seed_against_a_row_of_several_is_a_one_sample_t_test():
    """With no test-image part, the fixed row against the other's seeds is scipy's one-sample t-test."""
    reference = [0.71, 0.75, 0.69, 0.74]
    estimate = single_seed_difference([0.62], reference, 0.0)
    expected = stats.ttest_1samp(reference, popmean=0.62)
    assert estimate.estimate == pytest.approx(0.62 - np.mean(reference))
    assert estimate.p == pytest.approx(expected.pvalue)
    assert estimate.df == 3
    low, high = expected.confidence_interval(0.95)
    assert estimate.interval == pytest.approx((0.62 - high, 0.62 - low))
    # Both rows of one seed: the test images alone, a normal interval.
    both = single_seed_difference([0.62], [0.70], 0.0004)
    assert both.df == float("inf") and both.se == pytest.approx(0.02)
    assert both.p == pytest.approx(2 * stats.norm.sf(0.08 / 0.02))
    with pytest.raises(ValueError, match="use unpaired_difference"):
        single_seed_difference([0.6, 0.61], reference, 0.0)


@pytest.mark.parametrize("reference_seeds", [1, 3])
def test_null_differences_are_called_at_most_alpha_of_the_time(reference_seeds):
    """A simulation of the claim: a fixed row (one seed) and a reference of equal expected balanced accuracy
    (one seed, or three seeds of their own spread), on test sets drawn afresh: the verdict "above" or "below" comes
    in about ALPHA of draws, not more."""
    rng = np.random.default_rng(11)
    draws, n, called = 300, 150, 0
    for _ in range(draws):
        y = rng.integers(0, 3, n)
        row = [_noisy(rng, y, 0.6)]
        reference = [_noisy(rng, y, 0.6 + rng.normal(0, 0.03)) for _ in range(reference_seeds)]
        scores = [
            [float(score_predictions(y, p, CLASSES).balanced_accuracy) for p in side] for side in (row, reference)
        ]
        variance = image_variance(y, row, 3, reference, resamples=300, seed=int(rng.integers(1 << 30)))
        called += single_seed_difference(*scores, variance).p < ALPHA
    # The rate's Monte-Carlo standard error at 300 draws is 1.3 %: three of them above ALPHA would be a real excess.
    assert called / draws < ALPHA + 3 * np.sqrt(ALPHA * (1 - ALPHA) / draws)


def test_rows_without_test_labels_get_an_answer_that_says_why():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 50)
    records = [
        _record("model", RowKind.PROBE, 0, y, _noisy(rng, y, 0.5), keep_labels=False),
        _record("cnn/from-scratch", RowKind.TRAINED, 0, y, _noisy(rng, y, 0.9), "cnn", keep_labels=False),
    ]
    records[0].predictions = None
    (answer,) = task_answers(records, "t")
    assert answer.comparisons == []
    assert answer.sentence().endswith(
        "no comparison: its records hold no test labels (made by an earlier clipprobe; --refresh)"
    )


def test_probe_and_report_open_each_task_with_its_answer(tiny_model, tiny_tasks):
    runner = CliRunner()
    args = ["--model", tiny_model, "--pretrained", "random", "--baselines", "cnn,pixels"]
    budget = ["--budget", "epochs=1,image_size=16,batch_size=16"]
    for task in ("tiny-light", "tiny-pedestrian"):
        result = runner.invoke(app, ["probe", "--task", task, *args, *budget])
        assert result.exit_code == 0, result.output
        # After the rows, the task's answer: the row under test against the CNN, pixels and chance.
        answer = result.output.split(f"\n{task}:\n", 1)[1].splitlines()[0]
        assert answer.startswith("tiny-clip/random (linear-probe): 0.")
        assert "cnn/from-scratch[epochs=1,batch_size=16,image_size=16]" in answer and "chance (0." in answer
    result = runner.invoke(app, ["report"], terminal_width=200)
    assert result.exit_code == 0, result.output
    # Two tasks: the terminal opens with a summary of both answers; each task's table follows its answer.
    assert result.output.startswith("Summary\ntiny-light\n  tiny-clip/random (linear-probe): ")
    markdown = Path("reports/report.md").read_text().splitlines()
    heading = markdown.index("### tiny-light")
    assert markdown[heading + 1] == "" and markdown[heading + 2].startswith("**tiny-clip/random (linear-probe): 0.")
    assert "Image geometry differs" not in "\n".join(markdown)  # every row of a default run crops
    page = Path("reports/report.html").read_text()
    assert page.count('<p class="answer">tiny-clip/random (linear-probe): 0.') == 2
    merged = json.loads(Path("reports/results.json").read_text())
    (stored,) = merged["answers"]["tiny-light"]
    assert stored["representation"] == "tiny-clip/random" and len(stored["comparisons"]) == 3
