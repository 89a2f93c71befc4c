"""Probes on frozen features (linear, or one hidden layer): the hyperparameter chosen on validation only, scored once on test."""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from joblib import Parallel, delayed
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from ..core.errors import UsageError
from ..core.registry import Registry

# Half-decade steps over eight decades, as in the CLIP paper's sweep, but chosen on validation.
DEFAULT_C_GRID = tuple(float(c) for c in np.logspace(-4, 4, 17))
# The MLP's L2 penalty, one decade apart, strongest first (the MLP's fits cost more than the linear ones).
DEFAULT_ALPHA_GRID = tuple(float(a) for a in np.logspace(2, -4, 7))
MLP_HIDDEN = 256
SELECTION_METRIC = "balanced_accuracy"
# A validation score that no other C can beat: the sweep stops at the first C that reaches it.
PERFECT = 1.0
# Bump when the probe's fitting changes, so that stored results are not reused for the new code.
PROBE_VERSION = 5
# Grid points fitted side by side (threads); more rarely pays on probe-sized problems.
MAX_SWEEP_WORKERS = 4


@dataclass
class ProbeFit:
    """The chosen hyperparameter, the whole validation curve, and the model chosen: fitted on the train split
    (or the few-shot sample) at the chosen value. The validation split is only for choosing; nothing is refit."""

    parameter: str  # "C" for the linear probe, "alpha" for the MLP
    chosen: float
    curve: list[dict[str, float]]
    model: object = field(repr=False)
    at_grid_edge: bool = False


def sweep_workers() -> int:
    """Threads that fit grid points side by side: the cores this process may use, at most MAX_SWEEP_WORKERS.
    Each fit runs single-threaded BLAS on the same inputs, so the results do not depend on this number."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(cores, MAX_SWEEP_WORKERS))


def _fit_one(classifier, parameter: str, value: float, train_z, train_y):
    return clone(classifier).set_params(**{parameter: value}).fit(train_z, train_y)


def _sweep(classifier, parameter: str, grid: list[float], train_x, train_y, val_x, val_y) -> ProbeFit:
    """Fit `classifier` at each value of `parameter` in `grid` (strongest regularisation first) on train, score
    each on validation, keep the best (ties to the earlier, stronger one).

    Every value is fitted from a cold start, exactly as scikit-learn fits that value alone: a warm start along
    the path stops where L-BFGS's gradient test is already met, which at weak regularisation is the previous
    solution, so every larger C would return the same model. Values are fitted a few at a time on
    `sweep_workers()` threads (one BLAS thread each); a perfect validation score ends the sweep (ties go to the
    earlier value, so nothing later could be chosen), and the curve stops there whatever the number of threads.
    Features are standardised with the train split's statistics and cast to float32, so one grid fits features
    of any scale (CLIP embeddings, raw pixels)."""
    scaler = StandardScaler().fit(train_x)
    train_z, val_z = (scaler.transform(x).astype(np.float32, copy=False) for x in (train_x, val_x))
    curve, fitted = [], []
    workers = sweep_workers()
    # One BLAS thread per fit: on these small problems extra threads spin against torch's OpenMP pool
    # (a 17-point sweep on 2,000 x 128 features took 75 s with two threads, 7 s with one; benchmarks/probe_sweep.py).
    # Warning filters are process-wide: set once here for every thread (a `catch_warnings` per thread would race).
    # At strong regularisation the solver may stop at max_iter; that value then simply scores what it scores.
    with (
        warnings.catch_warnings(),
        threadpool_limits(limits=1),
        Parallel(n_jobs=workers, prefer="threads") as parallel,
    ):
        warnings.simplefilter("ignore", ConvergenceWarning)
        for start in range(0, len(grid), workers):
            values = grid[start : start + workers]
            models = parallel(delayed(_fit_one)(classifier, parameter, v, train_z, train_y) for v in values)
            for value, model in zip(values, models):
                score = balanced_accuracy_score(val_y, model.predict(val_z))
                curve.append({parameter: value, SELECTION_METRIC: float(score)})
                fitted.append(model)
                if score >= PERFECT:
                    break
            if curve[-1][SELECTION_METRIC] >= PERFECT:
                break
    best = max(range(len(curve)), key=lambda i: (curve[i][SELECTION_METRIC], -i))
    return ProbeFit(
        parameter=parameter,
        chosen=curve[best][parameter],
        curve=curve,
        model=make_pipeline(scaler, fitted[best]),
        at_grid_edge=len(grid) > 1 and best in (0, len(grid) - 1),
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
    """Logistic regression (L-BFGS): sweep C on (train -> validation) from the smallest C up, keep the best.

    Test data never enters this function, so nothing here can be selected on it."""
    classifier = LogisticRegression(max_iter=max_iter, random_state=seed)
    grid = sorted(float(c) for c in c_grid)
    return _sweep(classifier, "C", grid, train_x, train_y, val_x, val_y)


def fit_mlp_probe(
    train_x: np.ndarray,
    train_y: np.ndarray,
    val_x: np.ndarray,
    val_y: np.ndarray,
    alpha_grid: tuple[float, ...] = DEFAULT_ALPHA_GRID,
    seed: int = 0,
    hidden: int = MLP_HIDDEN,
    max_iter: int = 200,
) -> ProbeFit:
    """One hidden layer (ReLU), its L2 penalty alpha chosen on validation from the largest down, as `fit_probe`.

    L-BFGS rather than Adam: on probe-sized data (thousands of examples) it converges in tens of iterations
    and needs no learning rate; the seed fixes the initial weights. Tells "absent from the features" (both
    probes at chance) from "present but not linearly decodable" (the MLP well above the linear probe)."""
    classifier = MLPClassifier(hidden_layer_sizes=(hidden,), solver="lbfgs", max_iter=max_iter, random_state=seed)
    grid = sorted((float(a) for a in alpha_grid), reverse=True)
    return _sweep(classifier, "alpha", grid, train_x, train_y, val_x, val_y)


@dataclass(frozen=True)
class Probe:
    """A kind of probe: its method name in result files, the hyperparameter it sweeps and its default grid."""

    name: str
    method: str
    parameter: str
    grid: tuple[float, ...]
    description: str
    fit: Callable[..., ProbeFit]  # fit(train_x, train_y, val_x, val_y, grid, seed=...)


PROBES: Registry[Probe] = Registry("probe")
PROBES.register(
    "linear",
    Probe(
        "linear",
        "linear-probe",
        "C",
        DEFAULT_C_GRID,
        "Logistic regression on standardised features, C from 1e-4 to 1e4 chosen on validation (the CLIP paper's probe)",
        fit_probe,
    ),
)
PROBES.register(
    "mlp",
    Probe(
        "mlp",
        "mlp-probe",
        "alpha",
        DEFAULT_ALPHA_GRID,
        f"One hidden layer of {MLP_HIDDEN} ReLU units (scikit-learn, L-BFGS), L2 penalty alpha chosen on validation: "
        "is what the linear probe misses present but not linearly decodable?",
        fit_mlp_probe,
    ),
)
DEFAULT_PROBES = ("linear",)


def list_probes() -> list[str]:
    return PROBES.names()


def get_probe(name: str) -> Probe:
    return PROBES.get(name)


def parse_probes(spec: str | list[str] | tuple[str, ...] = DEFAULT_PROBES) -> list[Probe]:
    """ "linear,mlp" or a list of names -> the probes, each checked (an unknown one lists what exists)."""
    names = [n.strip() for n in spec.split(",")] if isinstance(spec, str) else list(spec)
    if not names or any(not n for n in names):
        raise UsageError(f"--probe expects probe names separated by commas ({', '.join(list_probes())}); got '{spec}'")
    return [get_probe(name) for name in dict.fromkeys(names)]
