"""Bootstrap confidence intervals for the test metrics, computed from confusion counts.

A resample draws n test examples with replacement from the n scored ones. Every headline metric (accuracy,
balanced accuracy, macro-F1) depends on the examples only through the confusion matrix, and the confusion
counts of such a resample are exactly Multinomial(n, observed cell frequencies). So the resamples are drawn
as confusion matrices, all at once, from one seeded numpy Generator: the same distribution as resampling
indices, in time and memory independent of n (1,000 resamples of 1,000 examples take a few milliseconds).
The interval is the percentile interval of the resampled metric.

Balanced accuracy follows scikit-learn's definition: the mean recall over the classes that occur in the
true labels (of the resample). A class that a resample happens to miss is left out of that resample's mean,
as `sklearn.metrics.balanced_accuracy_score` leaves it out (it warns); on the full sample the two agree exactly
(tested). Macro-F1 is averaged over every class of the task, with F1 = 0 for a class that has no true and no
predicted examples, as `score_predictions` computes it (`zero_division=0`).
"""

from __future__ import annotations

import numpy as np

DEFAULT_RESAMPLES = 1000
CONFIDENCE = 0.95
BOOTSTRAP_SEED = 0
INTERVAL_METRICS = ("accuracy", "balanced_accuracy", "macro_f1")


def confusion_counts(y: np.ndarray, predicted: np.ndarray, n_classes: int) -> np.ndarray:
    """K x K counts, rows the true class and columns the predicted one (labels 0..K-1)."""
    y, predicted = np.asarray(y, dtype=np.int64), np.asarray(predicted, dtype=np.int64)
    return np.bincount(y * n_classes + predicted, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def metrics_from_counts(counts: np.ndarray) -> dict[str, np.ndarray]:
    """Accuracy, balanced accuracy and macro-F1 of one (K, K) or many (..., K, K) confusion matrices."""
    counts = np.asarray(counts, dtype=np.float64)
    tp = np.diagonal(counts, axis1=-2, axis2=-1)
    support = counts.sum(axis=-1)  # true examples per class
    predicted = counts.sum(axis=-2)  # predicted examples per class
    n = support.sum(axis=-1)
    present = support > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        accuracy = tp.sum(axis=-1) / n
        recall = np.where(present, tp / np.where(present, support, 1), 0.0)
        balanced = recall.sum(axis=-1) / present.sum(axis=-1)
        denominator = support + predicted  # 2 tp + fp + fn
        f1 = np.where(denominator > 0, 2 * tp / np.where(denominator > 0, denominator, 1), 0.0)
    return {"accuracy": accuracy, "balanced_accuracy": balanced, "macro_f1": f1.mean(axis=-1)}


def bootstrap_intervals(
    y: np.ndarray,
    predicted: np.ndarray,
    n_classes: int,
    resamples: int = DEFAULT_RESAMPLES,
    confidence: float = CONFIDENCE,
    seed: int = BOOTSTRAP_SEED,
) -> dict[str, list[float]]:
    """Percentile bootstrap intervals, {metric: [low, high]}, for INTERVAL_METRICS.

    The same inputs and seed always give the same numbers, so result files stay byte-identical."""
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    counts = confusion_counts(y, predicted, n_classes)
    n = int(counts.sum())
    if n == 0:
        return {}
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(n, counts.ravel() / n, size=resamples).reshape(resamples, n_classes, n_classes)
    tail = 100 * (1 - confidence) / 2
    intervals = {}
    for name, values in metrics_from_counts(draws).items():
        low, high = np.percentile(values, [tail, 100 - tail])
        intervals[name] = [float(low), float(high)]
    return intervals


def _resampled_balanced_accuracy(y: np.ndarray, predicted: np.ndarray, draws: np.ndarray, n_classes: int) -> np.ndarray:
    """Balanced accuracy on each resample of test examples (`draws`: (R, n) indices into y and predicted)."""
    cells = np.asarray(y, dtype=np.int64)[draws] * n_classes + np.asarray(predicted, dtype=np.int64)[draws]
    offsets = np.arange(len(draws))[:, None] * n_classes * n_classes
    counts = np.bincount((cells + offsets).ravel(), minlength=len(draws) * n_classes * n_classes)
    return metrics_from_counts(counts.reshape(len(draws), n_classes, n_classes))["balanced_accuracy"]


def image_variance(
    y: np.ndarray,
    predictions: list[np.ndarray],
    n_classes: int,
    against: list[np.ndarray] | None = None,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> float:
    """The share of the test images in the uncertainty of a seed-averaged balanced accuracy (with `against`, of the
    difference of two rows' seed averages) that the seeds do not already show: the part every seed shares.

    The test images are resampled once per draw for every seed of both rows (a paired bootstrap: what the two rows
    find hard together cancels). The variance of the seed-averaged statistic over the draws has two parts: what
    each seed's score does alone when the images change (independent between seeds, so it is already in the
    spread between seeds that the seed-level interval uses) and what all seeds do together (the covariance between
    seeds across draws, which that spread cannot show). This returns the second: the variance of the average
    minus each seed's own variance over n^2 (for each row of several seeds), never below 0. A row of one seed has
    no spread between seeds to show its own part, so that part is kept: for one seed per row this is the paired
    bootstrap variance of the difference itself (of the score, without `against`)."""
    if not predictions or (against is not None and not against):
        raise ValueError("image_variance needs one prediction array per seed for each row")
    row = resampled_scores(y, predictions, n_classes, resamples, seed)
    return shared_variance(row, resampled_scores(y, against, n_classes, resamples, seed) if against else None)


def resampled_scores(
    y: np.ndarray,
    predictions: list[np.ndarray],
    n_classes: int,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> np.ndarray:
    """(seeds, resamples): each seed's balanced accuracy on the same test-image resamples (drawn from `seed`), so
    that rows computed apart pair draw by draw (`shared_variance`)."""
    y = np.asarray(y)
    draws = np.random.default_rng(seed).integers(0, len(y), size=(resamples, len(y)))
    return np.array([_resampled_balanced_accuracy(y, p, draws, n_classes) for p in predictions])


def shared_variance(row: np.ndarray, against: np.ndarray | None = None) -> float:
    """`image_variance` from `resampled_scores` of a row (and of the row it is compared with)."""
    rows = [row] if against is None else [row, against]
    average = rows[0].mean(axis=0) - (rows[1].mean(axis=0) if len(rows) > 1 else 0.0)
    own = sum(float(r.var(axis=1, ddof=1).sum()) / len(r) ** 2 for r in rows if len(r) > 1)
    return max(0.0, float(average.var(ddof=1)) - own)
