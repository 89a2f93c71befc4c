"""Linear probe: logistic regression with C chosen on validation only, refit, scored once on test."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix, f1_score, recall_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from .stats import BOOTSTRAP_SEED, CONFIDENCE, DEFAULT_RESAMPLES, bootstrap_intervals

# Half-decade steps over eight decades, as in the CLIP paper's sweep, but chosen on validation.
DEFAULT_C_GRID = tuple(float(c) for c in np.logspace(-4, 4, 17))
SELECTION_METRIC = "balanced_accuracy"
# A validation score that no other C can beat: the sweep stops at the first C that reaches it.
PERFECT = 1.0
# Bump when the probe's fitting changes, so that stored results are not reused for the new code.
PROBE_VERSION = 4


@dataclass
class ProbeFit:
    """The chosen C, the whole validation curve, and the model refit on train + validation."""

    chosen_c: float
    curve: list[dict[str, float]]
    model: object = field(repr=False)
    at_grid_edge: bool = False


def fit_probe(
    train_x: np.ndarray,
    train_y: np.ndarray,
    val_x: np.ndarray,
    val_y: np.ndarray,
    c_grid: tuple[float, ...] = DEFAULT_C_GRID,
    seed: int = 0,
    max_iter: int = 1000,
) -> ProbeFit:
    """Sweep C on (train -> validation), keep the best, refit on train + validation.

    Test data never enters this function, so nothing here can be selected on it. The sweep runs from the
    smallest C up, each fit starting from the previous solution (the path is smooth, so most fits need a few
    iterations), on float32 features standardised with the train split's statistics (one C grid then fits
    features of any scale: CLIP embeddings, raw pixels). A perfect validation score ends the sweep early: the
    curve then stops at that C, which is the one chosen."""
    scaler = StandardScaler().fit(train_x)
    train_z, val_z = (scaler.transform(x).astype(np.float32, copy=False) for x in (train_x, val_x))
    classifier = LogisticRegression(max_iter=max_iter, warm_start=True, random_state=seed)
    grid = sorted(float(c) for c in c_grid)
    curve, solutions = [], {}
    # One BLAS thread: on these small problems extra threads spin against torch's OpenMP pool
    # (a 17-point sweep on 2,000 x 128 features took 75 s with two threads, 7 s with one; benchmarks/probe_sweep.py).
    with warnings.catch_warnings(), threadpool_limits(limits=1):
        # At tiny C the solver may stop early; that C then simply scores what it scores.
        warnings.simplefilter("ignore", ConvergenceWarning)
        for c in grid:
            classifier.set_params(C=c).fit(train_z, train_y)
            solutions[c] = (classifier.coef_.copy(), classifier.intercept_.copy())
            score = balanced_accuracy_score(val_y, classifier.predict(val_z))
            curve.append({"C": c, SELECTION_METRIC: float(score)})
            if score >= PERFECT:
                # Ties go to the smaller C, so no larger C can be chosen: the rest of the sweep would change
                # nothing but the curve (and the large C are the slow fits).
                break
        # Ties go to the smallest C (the strongest regularisation): the simplest model that is as good.
        best = max(curve, key=lambda point: (point[SELECTION_METRIC], -point["C"]))
        classifier.set_params(C=best["C"])
        if set(np.unique(val_y)) <= set(classifier.classes_):  # same classes: start from the chosen solution
            classifier.coef_, classifier.intercept_ = solutions[best["C"]]
        else:
            classifier = clone(classifier)
        classifier.fit(np.concatenate([train_z, val_z]), np.concatenate([train_y, val_y]))
    return ProbeFit(
        chosen_c=best["C"], curve=curve, model=make_pipeline(scaler, classifier),
        at_grid_edge=len(grid) > 1 and best["C"] in (grid[0], grid[-1]),
    )


def score(model, x: np.ndarray, y: np.ndarray, classes: tuple[str, ...]) -> dict:
    """Every metric the report shows, computed once from the test predictions."""
    return score_predictions(y, model.predict(x), classes)


def score_predictions(
    y: np.ndarray,
    predicted: np.ndarray,
    classes: tuple[str, ...],
    resamples: int = DEFAULT_RESAMPLES,
    confidence: float = CONFIDENCE,
    seed: int = BOOTSTRAP_SEED,
) -> dict:
    """The same metrics for any classifier's predictions (probes, trained baselines, zero-shot alike).

    `intervals` holds a percentile bootstrap interval over test examples for accuracy, balanced accuracy and
    macro-F1 (clipprobe.stats); the bootstrap's seed is fixed, so the same predictions give the same file."""
    labels = list(range(len(classes)))
    recall = recall_score(y, predicted, labels=labels, average=None, zero_division=0)
    return {
        "accuracy": float(accuracy_score(y, predicted)),
        "balanced_accuracy": float(balanced_accuracy_score(y, predicted)),
        "macro_f1": float(f1_score(y, predicted, labels=labels, average="macro", zero_division=0)),
        "intervals": bootstrap_intervals(y, predicted, len(classes), resamples=resamples, confidence=confidence, seed=seed),
        "bootstrap": {"resamples": resamples, "confidence": confidence, "seed": seed},
        "per_class_recall": {name: float(r) for name, r in zip(classes, recall)},
        "confusion_matrix": confusion_matrix(y, predicted, labels=labels).tolist(),
        "n": int(len(y)),
    }
