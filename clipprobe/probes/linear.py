"""The linear probe: logistic regression on standardised features, class-balanced as scikit-learn's
`class_weight="balanced"`, C swept over its grid by the solver (clipprobe.probes.solver) warm-started along the C
path, C chosen on validation (clipprobe.probes.select), the grid extended beyond an edge that validation chose."""

from __future__ import annotations

import queue
import threading

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from . import solver
from .registry import PROBES, Probe
from .select import (
    PERFECT,
    SELECTION_METRIC,
    ProbeFit,
    balanced_sample_weights,
    best_point,
    beyond,
    pick,
    score,
    standardise,
    sweep_workers,
)

# Half-decade steps over eight decades, as in the CLIP paper's sweep, but chosen on validation.
DEFAULT_C_GRID = tuple(float(c) for c in np.logspace(-4, 4, 17))
# How far the grid is extended when validation chooses its edge: a decade at a time, in the grid's own step, while
# the choice stays at the (extended) edge, never beyond these values of C. A choice at C_LIMITS stays flagged.
C_LIMITS = (1e-6, 1e6)
# Grid points are split between this many chains, by position (0, 2, 4, ... and 1, 3, 5, ...): each chain fits its
# values in order, each from the previous one's optimum, and the chains run side by side on two threads. The
# split is fixed, so the models do not depend on how many cores there are.
SWEEP_CHAINS = 2


def fit_probe(
    train_x: np.ndarray,
    train_y: np.ndarray,
    val_x: np.ndarray,
    val_y: np.ndarray,
    c_grid: tuple[float, ...] = DEFAULT_C_GRID,
    seed: int = 0,
    max_iter: int = 1000,
) -> ProbeFit:
    """Logistic regression: sweep C on (train -> validation) from the smallest C up, keep the best (ties to the
    smaller C); the model is scikit-learn's `LogisticRegression(class_weight="balanced")` at the chosen C, fitted
    on train.

    Every C is fitted to its own optimum (scikit-learn's objective, class-balanced, so the same model as
    `LogisticRegression(C=C, class_weight="balanced")` converged), started from the optimum of the previous C of
    its chain (`solver.path`): a fit stops on a gradient certificate, which does not depend on the start, so the
    warm start saves iterations without changing where a fit ends. `max_iter` caps each C's iterations; each curve
    point says whether its fit `converged`. Features are standardised with the train split's statistics and cast
    to float32.

    When the choice is the grid's smallest or largest C (and not a perfect score, which nothing beyond could
    beat), the grid is extended one decade beyond that edge in its own step (`select.beyond`; half-decades: two
    more values), fitted from the edge's optimum outwards, and the choice made again over the whole curve; repeated
    while the choice stays at the edge, up to C_LIMITS. The result's `grid` is every value swept; `at_grid_edge`
    says whether the final choice is still at its edge.

    Test data never enters this function, so nothing here can be selected on it."""
    grid = sorted(float(c) for c in c_grid)
    scaler, train_z, val_z = standardise(train_x, val_x)
    classes, problem = _problem(train_z, train_y)
    solutions: dict[float, solver.Solution] = {}

    def fitted(pairs):
        for value, solution in pairs:
            solutions[value] = solution
            model = _linear_model(classes, solution, value, seed, max_iter)
            yield value, model, {"converged": solution.converged}

    def predict(model):
        return _predict(model, val_z)

    curve, models = score("C", fitted(_linear_sweep(problem, grid, max_iter)), predict, val_y)
    while len(grid) > 1:
        best = best_point(curve)
        chosen = curve[best]["C"]
        if chosen not in (grid[0], grid[-1]) or curve[best][SELECTION_METRIC] >= PERFECT:
            break
        side = -1 if chosen == grid[0] else 1
        values = beyond(grid, side, C_LIMITS)
        if not values:
            break
        with threadpool_limits(limits=1):  # as in the sweep: the same arithmetic whatever the cores
            extension = fitted(zip(values, solver.path(problem, values, max_iter, start=solutions[chosen])))
            # Below the grid, a perfect score at one value does not end the extension: a smaller C, further out,
            # would win the tie.
            more_curve, more_models = score("C", extension, predict, val_y, stop_at_perfect=side > 0)
        points = sorted(zip(curve + more_curve, models + more_models), key=lambda point: point[0]["C"])
        curve, models = [point for point, _ in points], [model for _, model in points]
        grid = sorted(grid + values)
    return pick("C", grid, curve, models, scaler)


def sweep_models(
    train_x: np.ndarray,
    train_y: np.ndarray,
    c_grid: tuple[float, ...] = DEFAULT_C_GRID,
    seed: int = 0,
    max_iter: int = 1000,
) -> list[LogisticRegression]:
    """The linear probe's model at every C of `c_grid` (ascending), fitted exactly as `fit_probe` fits them, for
    features standardised with the train split's statistics (as the sweep standardises them); no choice is made."""
    grid = sorted(float(c) for c in c_grid)
    train_z = StandardScaler().fit_transform(train_x).astype(np.float32, copy=False)
    classes, problem = _problem(train_z, train_y)
    return [
        _linear_model(classes, solution, c, seed, max_iter) for c, solution in _linear_sweep(problem, grid, max_iter)
    ]


def _problem(train_z: np.ndarray, train_y: np.ndarray) -> tuple[np.ndarray, solver.Logistic]:
    """The classes and the class-balanced objective (select.balanced_sample_weights) for standardised features."""
    classes = np.unique(train_y)
    if len(classes) < 2:
        raise ValueError(f"A probe needs training samples of at least 2 classes; got only {classes.tolist()}")
    codes = np.searchsorted(classes, train_y)
    return classes, solver.problem(train_z, codes, len(classes), balanced_sample_weights(codes))


def _linear_sweep(problem: solver.Logistic, grid: list[float], max_iter: int):
    """Yield (C, solution) for every C of `grid`, in grid order. The chains (positions 0, 2, 4, ... and
    1, 3, 5, ...) run ahead on their own threads, one BLAS thread each (on probe-sized problems extra threads spin
    against torch's OpenMP pool, and the chains already fill two cores), so neither waits for the other's slower
    values; with one core they take turns in this thread. Each chain's fits depend only on its own values, so the
    models are the same either way. Closing the generator stops the chains after the fits in progress."""
    chains = [solver.path(problem, grid[i::SWEEP_CHAINS], max_iter) for i in range(SWEEP_CHAINS)]
    with threadpool_limits(limits=1):
        if sweep_workers() < SWEEP_CHAINS:
            for position, value in enumerate(grid):
                yield value, next(chains[position % SWEEP_CHAINS])
            return
        stop = threading.Event()
        results: list[queue.Queue] = [queue.Queue() for _ in chains]

        def run(chain, out: queue.Queue) -> None:
            try:
                for fitted in chain:
                    out.put(fitted)
                    if stop.is_set():
                        return
            except BaseException as exc:  # handed to the caller, raised there
                out.put(exc)

        threads = [threading.Thread(target=run, args=pair, daemon=True) for pair in zip(chains, results)]
        for thread in threads:
            thread.start()
        try:
            for position, value in enumerate(grid):
                solution = results[position % SWEEP_CHAINS].get()
                if isinstance(solution, BaseException):
                    raise solution
                yield value, solution
        finally:
            stop.set()
            for thread in threads:
                thread.join()


def _predict(model: LogisticRegression, x: np.ndarray) -> np.ndarray:
    """`model.predict(x)`, the same arithmetic without scikit-learn's input checks (17 times per sweep)."""
    scores = x @ model.coef_.T + model.intercept_
    return model.classes_[(scores[:, 0] > 0).astype(int) if scores.shape[1] == 1 else scores.argmax(axis=1)]


def _linear_model(classes, solution: solver.Solution, c, seed, max_iter) -> LogisticRegression:
    """A fitted scikit-learn LogisticRegression holding the weights found for C = c (binary: one row), in float32
    like the features it reads (a float64 copy would make every prediction copy the features to float64); its
    parameters say what it is, class-balanced."""
    w, b = solution.w, solution.b
    model = LogisticRegression(C=c, class_weight="balanced", max_iter=max_iter, random_state=seed)
    model.classes_ = classes
    model.coef_ = np.ascontiguousarray(w.T, dtype=np.float32)
    # Softmax intercepts are defined up to a constant: centred.
    model.intercept_ = (b - b.mean() if len(b) > 1 else b).astype(np.float32)
    model.n_features_in_ = w.shape[0]
    model.n_iter_ = np.array([solution.iterations], dtype=np.int32)
    return model


PROBES.register(
    "linear",
    Probe(
        name="linear",
        method="linear-probe",
        description="Logistic regression on standardised features, class-balanced, C from 1e-4 to 1e4 chosen on "
        "validation, the grid extended a decade at a time beyond an edge it chooses, up to 1e-6 and 1e6 "
        "(the CLIP paper's probe)",
        parameter="C",
        grid=DEFAULT_C_GRID,
        fit=fit_probe,
    ),
)
