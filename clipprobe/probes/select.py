"""The one rule that chooses a probe's hyperparameter: fits in grid order (strongest regularisation first), each
scored on the validation split by balanced accuracy, the best kept with ties to the earlier (stronger) value, a
perfect score ending the sweep; the whole curve recorded, and whether the choice lies at the grid's edge. Used by
every probe (clipprobe.probes.linear, clipprobe.probes.mlp). Test data never enters here."""

from __future__ import annotations

import os
from collections.abc import Callable, Generator
from contextlib import closing
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import numpy as np
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from .registry import SELECTION_METRIC

# A validation score that no other value can beat: the sweep stops at the first value that reaches it.
PERFECT = 1.0
# Grid points fitted side by side (threads); more rarely pays on probe-sized problems.
MAX_SWEEP_WORKERS = 4


class Predictor(Protocol):
    """What a fitted probe is to its callers: something that predicts a class per row."""

    def predict(self, x: np.ndarray) -> np.ndarray: ...


M = TypeVar("M")


@dataclass
class ProbeFit:
    """The chosen hyperparameter, the whole validation curve, and the model chosen: fitted on the train split
    (or the few-shot sample) at the chosen value. The validation split is only for choosing; nothing is refit.
    `converged`: whether every fit of the curve converged (each point says so where the probe reports it)."""

    parameter: str  # "C" for the linear probe, "alpha" for the MLP
    chosen: float
    curve: list[dict[str, float]]
    model: Predictor = field(repr=False)
    at_grid_edge: bool = False
    converged: bool = True


def balanced_accuracy_score(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """scikit-learn's balanced accuracy, the mean recall over the classes present in `y_true` (a class only
    predicted does not count, as there), without its input checks: a sweep scores 17 fits on the same labels."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    classes, true = np.unique(y_true, return_inverse=True)
    hits = np.bincount(true, weights=y_true == y_pred, minlength=len(classes))
    return float(np.mean(hits / np.bincount(true, minlength=len(classes))))


def sweep_workers() -> int:
    """Threads that fit grid points side by side: the cores this process may use, at most MAX_SWEEP_WORKERS.
    Each fit runs single-threaded BLAS on the same inputs, so the results do not depend on this number."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(cores, MAX_SWEEP_WORKERS))


def standardise(train_x: np.ndarray, val_x: np.ndarray) -> tuple[StandardScaler, np.ndarray, np.ndarray]:
    """Features standardised with the train split's statistics and cast to float32, so one grid fits features of
    any scale (CLIP embeddings, raw pixels): the scaler, train and validation."""
    scaler = StandardScaler().fit(train_x)
    train_z, val_z = (scaler.transform(x).astype(np.float32, copy=False) for x in (train_x, val_x))
    return scaler, train_z, val_z


def choose(
    parameter: str,
    grid: list[float],
    fits: Generator[tuple[float, M, dict[str, Any]], None, None],
    predict: Callable[[M], np.ndarray],
    val_y: np.ndarray,
    scaler: StandardScaler,
) -> ProbeFit:
    """Score each fit of `fits` ((value, model, details) in `grid`'s order) on validation (`predict(model)` gives
    its validation predictions), and keep the best: ties to the earlier value, the stronger regularisation. The
    first perfect score ends the sweep (nothing later could be chosen; `fits` is closed). Each curve point is
    {parameter: value, SELECTION_METRIC: score, **details}; the model is `scaler` then the chosen fit."""
    curve, models = [], []
    with closing(fits):
        for value, model, details in fits:
            score = balanced_accuracy_score(val_y, predict(model))
            curve.append({parameter: value, SELECTION_METRIC: float(score), **details})
            models.append(model)
            if score >= PERFECT:
                break
    best = max(range(len(curve)), key=lambda i: (curve[i][SELECTION_METRIC], -i))
    return ProbeFit(
        parameter=parameter,
        chosen=curve[best][parameter],
        curve=curve,
        model=make_pipeline(scaler, models[best]),
        at_grid_edge=len(grid) > 1 and best in (0, len(grid) - 1),
        converged=all(point.get("converged", True) for point in curve),
    )
