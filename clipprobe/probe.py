"""Linear probe: logistic regression with C chosen on validation only, refit, scored once on test."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix, f1_score, recall_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

# Half-decade steps over eight decades, as in the CLIP paper's sweep, but chosen on validation.
DEFAULT_C_GRID = tuple(float(c) for c in np.logspace(-4, 4, 17))
SELECTION_METRIC = "balanced_accuracy"


@dataclass
class ProbeFit:
    """The chosen C, the whole validation curve, and the model refit on train + validation."""

    chosen_c: float
    curve: list[dict[str, float]]
    model: object = field(repr=False)
    at_grid_edge: bool = False


def _make_model(c: float, seed: int, max_iter: int):
    # Standardising makes one C grid fit features of any scale (CLIP embeddings, pixels).
    return make_pipeline(
        StandardScaler(),
        LogisticRegression(C=c, max_iter=max_iter, random_state=seed),
    )


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

    Test data never enters this function, so nothing here can be selected on it."""
    curve = []
    with warnings.catch_warnings():
        # At tiny C the solver may stop early; that C then simply scores what it scores.
        warnings.simplefilter("ignore", ConvergenceWarning)
        for c in sorted(c_grid):
            model = _make_model(c, seed, max_iter).fit(train_x, train_y)
            score = balanced_accuracy_score(val_y, model.predict(val_x))
            curve.append({"C": c, SELECTION_METRIC: float(score)})
        # Ties go to the smallest C (the strongest regularisation): the simplest model that is as good.
        best = max(curve, key=lambda point: (point[SELECTION_METRIC], -point["C"]))
        final = _make_model(best["C"], seed, max_iter).fit(
            np.concatenate([train_x, val_x]), np.concatenate([train_y, val_y])
        )
    grid = sorted(c_grid)
    return ProbeFit(
        chosen_c=best["C"], curve=curve, model=final, at_grid_edge=len(grid) > 1 and best["C"] in (grid[0], grid[-1])
    )


def score(model, x: np.ndarray, y: np.ndarray, classes: tuple[str, ...]) -> dict:
    """Every metric the report shows, computed once from the test predictions."""
    return score_predictions(y, model.predict(x), classes)


def score_predictions(y: np.ndarray, predicted: np.ndarray, classes: tuple[str, ...]) -> dict:
    """The same metrics for any classifier's predictions (probes and trained baselines alike)."""
    labels = list(range(len(classes)))
    recall = recall_score(y, predicted, labels=labels, average=None, zero_division=0)
    return {
        "accuracy": float(accuracy_score(y, predicted)),
        "balanced_accuracy": float(balanced_accuracy_score(y, predicted)),
        "macro_f1": float(f1_score(y, predicted, labels=labels, average="macro", zero_division=0)),
        "per_class_recall": {name: float(r) for name, r in zip(classes, recall)},
        "confusion_matrix": confusion_matrix(y, predicted, labels=labels).tolist(),
        "n": int(len(y)),
    }
