"""The metrics every row is scored with, from test predictions: accuracy, balanced accuracy, macro-F1, per-class
recall, the confusion matrix, and bootstrap intervals."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix, f1_score, recall_score

from ..results import Bootstrap, Metrics
from .intervals import BOOTSTRAP_SEED, CONFIDENCE, DEFAULT_RESAMPLES, bootstrap_intervals


def score(model, x: np.ndarray, y: np.ndarray, classes: tuple[str, ...]) -> Metrics:
    """Every metric the report shows, computed once from the test predictions."""
    return score_predictions(y, model.predict(x), classes)


def score_predictions(
    y: np.ndarray,
    predicted: np.ndarray,
    classes: tuple[str, ...],
    resamples: int = DEFAULT_RESAMPLES,
    confidence: float = CONFIDENCE,
    seed: int = BOOTSTRAP_SEED,
) -> Metrics:
    """The same metrics for any classifier's predictions (probes, trained baselines, zero-shot alike).

    `intervals` holds a percentile bootstrap interval over test examples for accuracy, balanced accuracy and
    macro-F1 (clipprobe.probes.intervals); the bootstrap's seed is fixed, so the same predictions give the same file."""
    labels = list(range(len(classes)))
    recall = recall_score(y, predicted, labels=labels, average=None, zero_division=0)
    return Metrics(
        accuracy=float(accuracy_score(y, predicted)),
        balanced_accuracy=float(balanced_accuracy_score(y, predicted)),
        macro_f1=float(f1_score(y, predicted, labels=labels, average="macro", zero_division=0)),
        intervals=bootstrap_intervals(
            y, predicted, len(classes), resamples=resamples, confidence=confidence, seed=seed
        ),
        bootstrap=Bootstrap(resamples=resamples, confidence=confidence, seed=seed),
        per_class_recall={name: float(r) for name, r in zip(classes, recall)},
        confusion_matrix=confusion_matrix(y, predicted, labels=labels).tolist(),
        n=int(len(y)),
    )
