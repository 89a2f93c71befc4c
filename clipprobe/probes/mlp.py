"""The MLP probe: one hidden layer (ReLU, scikit-learn's MLPClassifier with L-BFGS), its L2 penalty alpha chosen
on validation (clipprobe.probes.select), its loss class-balanced by sample weights (the rule of every trained
row, select.balanced_sample_weights). Tells "absent from the features" (both probes at chance) from "present
but not linearly decodable" (the MLP well above the linear probe)."""

from __future__ import annotations

import warnings

import numpy as np
from joblib import Parallel, delayed
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier
from threadpoolctl import threadpool_limits

from .registry import PROBES, Probe
from .select import ProbeFit, balanced_sample_weights, choose, standardise, sweep_workers

# The MLP's L2 penalty, one decade apart, strongest first (the MLP's fits cost more than the linear ones).
DEFAULT_ALPHA_GRID = tuple(float(a) for a in np.logspace(2, -4, 7))
MLP_HIDDEN = 256


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
    """One hidden layer (ReLU), its L2 penalty alpha chosen on validation from the largest down.

    L-BFGS rather than Adam: on probe-sized data (thousands of examples) it converges in tens of iterations
    and needs no learning rate; the seed fixes the initial weights. Every value is fitted from a cold start,
    exactly as scikit-learn fits that value alone (scikit-learn's warm start stops where L-BFGS's gradient test
    is already met, which at weak regularisation is the previous solution). A fit that reaches `max_iter` scores
    what it scores, and its curve point says `converged: False`. Features are standardised with the train
    split's statistics and cast to float32.

    Class-balanced: each training sample weighs n_samples / (n_classes * count of its class), scikit-learn's
    `class_weight="balanced"` (which MLPClassifier does not take), passed to `fit` as `sample_weight`
    (scikit-learn >= 1.7; with equal class counts no weights are passed, as every weight is 1). The weights sum to
    n_samples, so alpha's penalty, alpha ||W||^2 / (2 sum of weights), is what it is unweighted."""
    classifier = MLPClassifier(hidden_layer_sizes=(hidden,), solver="lbfgs", max_iter=max_iter, random_state=seed)
    grid = sorted((float(a) for a in alpha_grid), reverse=True)
    scaler, train_z, val_z = standardise(train_x, val_x)
    weights = balanced_sample_weights(train_y)
    fits = _fits(classifier, grid, train_z, train_y, weights, max_iter)
    return choose("alpha", grid, fits, lambda model: model.predict(val_z), val_y, scaler)


def _fit_one(classifier, value: float, train_z, train_y, weights):
    model = clone(classifier).set_params(alpha=value)
    return model.fit(train_z, train_y) if weights is None else model.fit(train_z, train_y, sample_weight=weights)


def _fits(classifier, grid, train_z, train_y, weights, max_iter):
    """Yield (alpha, model, {"converged": ...}) in grid order, fitted a few at a time on `sweep_workers()`
    threads (one BLAS thread each: on these small problems extra threads spin against torch's OpenMP pool; a
    17-point sweep on 2,000 x 128 features took 75 s with two threads, 7 s with one). Closing the generator stops
    it after the batch in progress, so the curve does not depend on the number of threads."""
    workers = sweep_workers()
    # Warning filters are process-wide: set once here for every thread (a `catch_warnings` per thread would race).
    with (
        warnings.catch_warnings(),
        threadpool_limits(limits=1),
        Parallel(n_jobs=workers, prefer="threads") as parallel,
    ):
        warnings.simplefilter("ignore", ConvergenceWarning)
        for start in range(0, len(grid), workers):
            values = grid[start : start + workers]
            models = parallel(delayed(_fit_one)(classifier, v, train_z, train_y, weights) for v in values)
            for value, model in zip(values, models):
                yield value, model, {"converged": bool(model.n_iter_ < max_iter)}


PROBES.register(
    "mlp",
    Probe(
        name="mlp",
        method="mlp-probe",
        description=f"One hidden layer of {MLP_HIDDEN} ReLU units (scikit-learn, L-BFGS), L2 penalty alpha chosen "
        "on validation: is what the linear probe misses present but not linearly decodable?",
        parameter="alpha",
        grid=DEFAULT_ALPHA_GRID,
        fit=fit_mlp_probe,
    ),
)
