"""Bootstrap intervals on the test metrics: sklearn's definitions, determinism, coverage and speed."""

import time
import warnings

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score

from clipprobe.probes.intervals import bootstrap_intervals, confusion_counts, metrics_from_counts
from clipprobe.probes.metrics import score_predictions
from clipprobe.results import Bootstrap

CLASSES = ("red", "amber", "green")


def noisy_classifier(n, accuracy=0.8, classes=3, seed=0):
    """Labels drawn uniformly; the prediction is right with probability `accuracy`, else another class at random."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, size=n)
    wrong = (y + rng.integers(1, classes, size=n)) % classes
    return y, np.where(rng.random(n) < accuracy, y, wrong)


@pytest.mark.parametrize("seed", range(5))
def test_metrics_from_counts_equal_sklearn_on_the_full_sample(seed):
    rng = np.random.default_rng(seed)
    y = rng.choice(4, size=97, p=[0.5, 0.3, 0.15, 0.05])
    predicted = np.where(rng.random(97) < 0.6, y, rng.integers(0, 4, size=97))
    if seed == 0:
        y[y == 3] = 0  # a class that never occurs in the true labels (sklearn leaves it out, and warns)
    ours = metrics_from_counts(confusion_counts(y, predicted, 4))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "y_pred contains classes not in y_true"
        balanced = balanced_accuracy_score(y, predicted)
    assert ours["balanced_accuracy"] == balanced
    assert ours["accuracy"] == pytest.approx(accuracy_score(y, predicted), abs=1e-15)
    assert ours["macro_f1"] == pytest.approx(
        f1_score(y, predicted, labels=[0, 1, 2, 3], average="macro", zero_division=0), abs=1e-15
    )


def test_vectorised_resamples_equal_sklearn_one_by_one():
    """Many confusion matrices at once give sklearn's numbers for each, classes missing from a resample included."""
    y, predicted = noisy_classifier(12, accuracy=0.5, seed=3)
    rng = np.random.default_rng(0)
    draws = rng.integers(0, len(y), size=(50, len(y)))
    counts = np.stack([confusion_counts(y[i], predicted[i], 3) for i in draws])
    ours = metrics_from_counts(counts)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = [balanced_accuracy_score(y[i], predicted[i]) for i in draws]
    np.testing.assert_allclose(ours["balanced_accuracy"], expected, rtol=0, atol=1e-12)


def test_intervals_are_in_the_record_and_contain_the_point_estimate():
    y, predicted = noisy_classifier(400, accuracy=0.75, seed=1)
    metrics = score_predictions(y, predicted, CLASSES)
    assert metrics.bootstrap == Bootstrap(resamples=1000, confidence=0.95, seed=0)
    assert set(metrics.intervals) == {"accuracy", "balanced_accuracy", "macro_f1"}
    for name, (low, high) in metrics.intervals.items():
        assert low < getattr(metrics, name) < high, name
        assert 0.02 < high - low < 0.2  # about 2 x 1.96 x sqrt(0.75 x 0.25 / 400) = 0.085 for accuracy


def test_intervals_are_deterministic_and_follow_the_seed():
    y, predicted = noisy_classifier(300, seed=2)
    first, again = score_predictions(y, predicted, CLASSES), score_predictions(y, predicted, CLASSES)
    assert first == again
    assert bootstrap_intervals(y, predicted, 3, seed=1) != first.intervals


def test_perfect_predictions_have_a_degenerate_interval():
    y = np.arange(30) % 3
    assert bootstrap_intervals(y, y, 3) == {name: [1.0, 1.0] for name in ("accuracy", "balanced_accuracy", "macro_f1")}


def test_interval_covers_the_true_accuracy_about_95_percent_of_the_time():
    """300 simulated test sets from a classifier whose true accuracy (and balanced accuracy) is 0.8."""
    covered = {"accuracy": 0, "balanced_accuracy": 0}
    trials = 300
    for trial in range(trials):
        y, predicted = noisy_classifier(200, accuracy=0.8, seed=1000 + trial)
        intervals = bootstrap_intervals(y, predicted, 3, seed=trial)
        for name in covered:
            low, high = intervals[name]
            covered[name] += low <= 0.8 <= high
    for name, count in covered.items():
        assert 0.90 <= count / trials <= 0.99, (name, count / trials)


def test_a_thousand_resamples_of_a_thousand_examples_take_well_under_a_second():
    y, predicted = noisy_classifier(1000, classes=5, seed=4)
    bootstrap_intervals(y, predicted, 5)
    start = time.perf_counter()
    bootstrap_intervals(y, predicted, 5, resamples=1000)
    assert time.perf_counter() - start < 0.25
