"""The one rule that chooses a probe's hyperparameter: fits in grid order (strongest regularisation first), each
scored on the validation split by balanced accuracy, the best kept with ties to the earlier (stronger) value, a
perfect score ending the sweep; the whole curve recorded, and whether the choice lies at the grid's edge (the
linear probe then extends its grid, `beyond`). Used by every probe (clipprobe.probes.linear,
clipprobe.probes.mlp). The one class-weighting rule of every trained row, `balanced_sample_weights`, is here too.
Test data never enters here."""

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
    `converged`: whether every fit of the curve converged (each point says so where the probe reports it).
    `grid`: the values the choice was made over, ascending (the probe's grid, extended where the probe extends it;
    the curve may stop short of its end at a perfect score); `at_grid_edge` says whether the choice is its first
    or last value. `note`: anything else the record should say about the fit (e.g. a PCA that was not applied)."""

    parameter: str  # "C" for the linear probe, "alpha" for the MLP
    chosen: float
    curve: list[dict[str, float]]
    model: Predictor = field(repr=False)
    at_grid_edge: bool = False
    converged: bool = True
    grid: list[float] = field(default_factory=list)
    note: str | None = None


def balanced_accuracy_score(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """scikit-learn's balanced accuracy, the mean recall over the classes present in `y_true` (a class only
    predicted does not count, as there), without its input checks: a sweep scores 17 fits on the same labels."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    classes, true = np.unique(y_true, return_inverse=True)
    hits = np.bincount(true, weights=y_true == y_pred, minlength=len(classes))
    return float(np.mean(hits / np.bincount(true, minlength=len(classes))))


def balanced_sample_weights(y: np.ndarray) -> np.ndarray | None:
    """The class-weighting rule of every trained row (probes, MLP, CNN, orbit CNN), scikit-learn's
    `class_weight="balanced"`: each sample weighs n_samples / (n_classes * count of its class), n_classes the
    classes present in `y`. None when every class present has as many samples (every weight is then exactly 1)."""
    _, codes, counts = np.unique(np.asarray(y), return_inverse=True, return_counts=True)
    if np.all(counts == counts[0]):
        return None
    return (len(codes) / (len(counts) * counts.astype(np.float64)))[codes.reshape(-1)]


def beyond(grid: list[float], side: int, limits: tuple[float, float]) -> list[float]:
    """The values one decade beyond an edge of `grid` (ascending, log-spaced, at least 2 values) in the grid's own
    step there: below its first value (`side` -1) or above its last (+1), ordered away from the edge, those within
    `limits` (low, high) only. Half-decade steps give two values, a decade's step one; none past a limit."""
    inner, edge = (grid[1], grid[0]) if side < 0 else (grid[-2], grid[-1])
    step = abs(np.log10(edge) - np.log10(inner))
    if not step > 0:
        return []
    count = max(1, round(1 / step))
    values = [float(10 ** (np.log10(edge) + side * k * step)) for k in range(1, count + 1)]
    low, high = limits
    slack = 1e-9  # a limit that the grid's own arithmetic misses by rounding still counts as reached
    return [v for v in values if low * (1 - slack) <= v <= high * (1 + slack)]


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
    curve, models = score(parameter, fits, predict, val_y)
    return pick(parameter, grid, curve, models, scaler)


def score(
    parameter: str,
    fits: Generator[tuple[float, M, dict[str, Any]], None, None],
    predict: Callable[[M], np.ndarray],
    val_y: np.ndarray,
    stop_at_perfect: bool = True,
) -> tuple[list[dict[str, Any]], list[M]]:
    """The validation curve of `fits` and their models, in the order fitted; the first perfect score ends it
    (`fits` is closed) unless `stop_at_perfect` is False."""
    curve: list[dict[str, Any]] = []
    models: list[M] = []
    with closing(fits):
        for value, model, details in fits:
            result = balanced_accuracy_score(val_y, predict(model))
            curve.append({parameter: value, SELECTION_METRIC: float(result), **details})
            models.append(model)
            if stop_at_perfect and result >= PERFECT:
                break
    return curve, models


def best_point(curve: list[dict[str, Any]]) -> int:
    """The position of the best validation score of `curve`, ties to the earlier point."""
    return max(range(len(curve)), key=lambda i: (curve[i][SELECTION_METRIC], -i))


def pick(
    parameter: str,
    grid: list[float],
    curve: list[dict[str, Any]],
    models: list[Any],
    scaler: StandardScaler | None,
) -> ProbeFit:
    """The choice from a validation curve in `grid`'s order (its models beside it): the best, ties to the earlier
    value; at the grid's edge when it is `grid`'s first or last value. The model is `scaler` then the chosen fit; without a
    `scaler` (a model that prepares its own input: k-NN, the attentive probe) the chosen fit alone."""
    best = best_point(curve)
    chosen = curve[best][parameter]
    return ProbeFit(
        parameter=parameter,
        chosen=chosen,
        curve=curve,
        model=make_pipeline(scaler, models[best]) if scaler is not None else models[best],
        at_grid_edge=len(grid) > 1 and chosen in (grid[0], grid[-1]),
        converged=all(point.get("converged", True) for point in curve),
        grid=sorted(grid),
    )
