"""Probes on frozen features (linear, or one hidden layer): the hyperparameter chosen on validation only, scored once on test."""

from __future__ import annotations

import os
import queue
import threading
import warnings
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field

import numpy as np
from joblib import Parallel, delayed
from scipy.special import expit
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
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
# 6: the linear probe's own preconditioned L-BFGS (float32), warm-started along the C path, each C converged to
# its optimum.
PROBE_VERSION = 6
# Grid points fitted side by side (threads); more rarely pays on probe-sized problems.
MAX_SWEEP_WORKERS = 4


def balanced_accuracy_score(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """scikit-learn's balanced accuracy, the mean recall over the classes present in `y_true` (a class only
    predicted does not count, as there), without its input checks: a sweep scores 17 fits on the same labels."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    classes, true = np.unique(y_true, return_inverse=True)
    hits = np.bincount(true, weights=y_true == y_pred, minlength=len(classes))
    return float(np.mean(hits / np.bincount(true, minlength=len(classes))))


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
    each on validation, keep the best (ties to the earlier, stronger one). The MLP probe's sweep (the linear
    probe has its own, `fit_probe`).

    Every value is fitted from a cold start, exactly as scikit-learn fits that value alone: scikit-learn's warm
    start stops where L-BFGS's gradient test is already met, which at weak regularisation is the previous
    solution, so every later value would return the same model. Values are fitted a few at a time on
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


# ---- The linear probe's sweep: L-BFGS warm-started along the C path, every C converged to its own optimum ----

# Grid points are split between this many chains, by position (0, 2, 4, ... and 1, 3, 5, ...): each chain fits its
# values in order, each from the previous one's optimum, and the chains run side by side on two threads. The
# split is fixed, so the models do not depend on how many cores there are.
SWEEP_CHAINS = 2
# A fit of one C stops when the quasi-Newton step to its optimum (L-BFGS's, started from the features' curvature:
# see _Logistic) is below RELATIVE_ERROR of the weights, or, certified, when ||gradient|| <= RELATIVE_ERROR *
# lambda * ||W|| (lambda = 1 / (C n), the penalty's strong convexity; the unpenalised intercepts' Newton step as
# small). On data the fit separates only the certificate counts. Neither test depends on where the fit started,
# so a warm start ends where a cold one would. tests/test_inputs_decide.py and tests/test_probe_sweep.py check
# every C against scikit-learn converged to tol 1e-10: within 1 %, closer than scikit-learn's own fit at its
# default tol gets in the worst case (digits: 0.15 % against 39 %).
RELATIVE_ERROR = 1e-3
# Strong Wolfe's curvature constant for the line search, and the most steps it tries.
_CURVATURE = 0.9
_LINE_STEPS = 40
# Correction pairs that L-BFGS keeps (scikit-learn's and SciPy's default).
_MEMORY = 10
# Every this many iterations the logits are recomputed from the weights (one more product with the features).
_REFRESH = 20
# Iterations without a shorter step to the optimum after which float32's rounding is taken to have stopped a fit.
_PATIENCE = 100
# exp(-30) is about 1e-13: below float32's resolution of a probability near 1, far above its subnormal numbers.
_LOGIT_LIMIT = 30.0
# Problems of at most this many feature values (rows x features) are solved in float64 (and those with no more
# rows than weights, see _linear_sweep).
_FLOAT64_SIZE = 1 << 18
# The features are also kept transposed (a faster product for the logits) up to this size.
_TRANSPOSED_BYTES = 256 << 20


class _Logistic:
    """scikit-learn's logistic objective (the same optimum as `LogisticRegression(C=C)`): mean log-loss +
    ||W||^2 / (2 C n), the intercept unpenalised; binomial with one column for two classes, multinomial otherwise.
    Products with the features run in the features' type (float32, or float64 for small problems; single-threaded
    BLAS); the rest in float64 where sums need it. Logits and residuals are kept class-major, (classes, n), the layout in which both
    products with the features run fastest; the logits are moved along each search direction without a product.

    The features' correlation matrix S = X'X / n is diagonalised once: L-BFGS starts each direction from
    (c S + lambda I)^-1, c the loss's current curvature, rather than from a multiple of the identity. That is
    the Hessian as far as the features decide it, so on correlated features (embeddings, whose directions are
    far from independent) L-BFGS converges in tens of iterations where it would need thousands."""

    def __init__(self, x: np.ndarray, codes: np.ndarray, classes: int):
        self.x, self.n = x, len(x)
        eigenvalues, self.vectors = np.linalg.eigh((x.T @ x).astype(np.float64) / self.n)
        # A transposed copy makes the logits' product about twice as fast; kept below _TRANSPOSED_BYTES, above
        # which the product runs on the features as they are.
        self.xt = np.ascontiguousarray(x.T) if x.nbytes <= _TRANSPOSED_BYTES else None
        self.eigenvalues = np.maximum(eigenvalues, 0.0)
        self.vectors32 = np.ascontiguousarray(self.vectors, dtype=np.float32)
        self.binary = classes == 2
        self.columns = 1 if self.binary else classes
        self.codes = codes
        self.rows = np.arange(self.n)
        self.dtype = x.dtype.type
        self.target = codes.astype(self.dtype)[None, :] if self.binary else None

    def logits(self, w: np.ndarray, b: np.ndarray) -> np.ndarray:
        w = np.ascontiguousarray(w, dtype=self.dtype)
        z = w.T @ self.xt if self.xt is not None else (self.x @ w).T
        z += b.astype(self.dtype)[:, None]
        return z

    def residual(self, z: np.ndarray) -> np.ndarray:
        """d(sum of losses)/dZ: predicted probabilities minus the one-hot labels (classes x n)."""
        # Logits are clipped where exp would give subnormal floats, which slow every later product tenfold; the
        # probabilities move by less than 1e-13.
        if self.binary:
            return expit(np.clip(z, -_LOGIT_LIMIT, _LOGIT_LIMIT)) - self.target
        r = z - z.max(axis=0)
        np.maximum(r, -_LOGIT_LIMIT, out=r)
        np.exp(r, out=r)
        r /= r.sum(axis=0)
        r[self.codes, self.rows] -= 1
        return r

    def gradient(self, r: np.ndarray, w: np.ndarray, lam: float) -> tuple[np.ndarray, np.ndarray]:
        gw = (r @ self.x).T.astype(np.float64) / self.n + lam * w
        gb = r.sum(axis=1, dtype=np.float64) / self.n
        if not self.binary:
            # Adding one vector to every class's weights changes no probability: only the penalty sees it, and
            # the optimum has none of it. Gradients are kept free of it (rounding would otherwise feed it, and
            # L-BFGS, learning its curvature is only lambda, would take ever larger steps along it).
            gw -= gw.mean(axis=1, keepdims=True)
            gb -= gb.mean()
        return gw, gb

    def separated(self, z: np.ndarray) -> bool:
        """Whether the logits classify every training row right."""
        if self.binary:
            return bool(np.all((z[0] > 0) == (self.codes == 1)))
        return bool(np.all(z.argmax(axis=0) == self.codes))

    def curvature(self, r: np.ndarray) -> float:
        """The loss's mean curvature per logit, p (1 - p) averaged over rows and classes (p from the residual)."""
        p = np.abs(r) if self.binary else r.copy()
        if not self.binary:
            p[self.codes, self.rows] += 1
        return max(float(np.mean(p * (1 - p), dtype=np.float64)), 1e-8)

    def preconditioner(self, lam: float, curvature: float):
        """q -> (curvature S + lam I)^-1 q for the weights, q / curvature for the intercepts; and the length of
        that step for the gradient g (in S's eigenvectors: one product instead of two)."""
        inverse = (1.0 / (curvature * self.eigenvalues + lam))[:, None]
        vectors, rows = self.vectors32, self.vectors32.T  # float32: a preconditioner needs no more

        def apply(qw: np.ndarray, qb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            rotated = inverse * (rows @ qw.astype(np.float32))
            return (vectors @ rotated.astype(np.float32)).astype(np.float64), qb / curvature

        def length(gw: np.ndarray, gb: np.ndarray) -> float:
            rotated = inverse * (rows @ gw.astype(np.float32))
            return float(np.sqrt(np.vdot(rotated, rotated) + np.vdot(gb, gb) / curvature**2))

        apply.length = length
        return apply


def _dot(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> float:
    return float(np.vdot(a[0], b[0]) + np.vdot(a[1], b[1]))


def _chain(problem: _Logistic, values: list[float], max_iter: int):
    """Yield (W, b, iterations) for each C of `values` in order, each fit starting from the previous optimum, with
    L-BFGS's correction pairs carried over (their gradient differences corrected exactly for the new penalty).

    A fit stops at the convergence tests (RELATIVE_ERROR), or when float32's rounding stops it: no shorter step
    to the optimum for _PATIENCE iterations, or no step that lowers the objective; it then returns the iterate
    nearest the optimum it found. `max_iter` caps the iterations of each C."""
    d, k = problem.x.shape[1], problem.columns
    w, b = np.zeros((d, k)), np.zeros(k)
    z = problem.logits(w, b)
    r = problem.residual(z)
    gw, gb = problem.gradient(r, w, 0.0)
    pairs: list[tuple[tuple, tuple]] = []
    previous = 0.0
    for c in values:
        lam = 1.0 / (c * problem.n)
        # Only the penalty changed: the loss's gradient at w is the same, and each pair's gradient difference
        # moves by exactly (lam - previous) * s. Nothing is recomputed from the features.
        gw = gw + (lam - previous) * w
        pairs = [(s, (y[0] + (lam - previous) * s[0], y[1])) for s, y in pairs]
        pairs = [(s, y) for s, y in pairs if _dot(s, y) > 0]
        previous = lam
        precondition = problem.preconditioner(lam, problem.curvature(r))
        best, since, iterations = None, 0, 0
        while iterations < max_iter:
            pw, pb = _direction((gw, gb), pairs, precondition, not problem.binary)
            slope = _dot((gw, gb), (pw, pb))
            if slope >= 0:  # not a descent direction (rounding): start the memory afresh
                pairs = []
                pw, pb = _direction((gw, gb), pairs, precondition, not problem.binary)
                slope = _dot((gw, gb), (pw, pb))
            # How far the optimum still is: the quasi-Newton step, from the features' curvature (the
            # preconditioner) corrected by the curvature L-BFGS has met along the way (flat directions included).
            distance = np.sqrt(_dot((pw, pb), (pw, pb)))
            if best is None or distance < best[0]:
                best, since = (distance, w, b), 0
            elif (since := since + 1) >= _PATIENCE:  # stalled in rounding: back to the nearest iterate it passed
                _, w, b = best
                z = problem.logits(w, b)
                r = problem.residual(z)
                gw, gb = problem.gradient(r, w, lam)
                pairs = []
                break
            # The certificate: the weights' gradient within the penalty's strong convexity, and the intercepts'
            # Newton step (they are not penalised: their curvature is the loss's, small on separable data) as small.
            certified = np.linalg.norm(gw) <= RELATIVE_ERROR * lam * np.linalg.norm(w) and np.linalg.norm(
                gb
            ) <= RELATIVE_ERROR * problem.curvature(r) * np.linalg.norm(w)
            # Where the training rows are all classified right (separable data: few-shot samples, few rows in many
            # dimensions) the loss flattens along the margin and no curvature estimate can be trusted there: only
            # the certificate ends such a fit.
            near = distance <= RELATIVE_ERROR * np.sqrt(_dot((w, b), (w, b))) and not problem.separated(z)
            if certified or near:
                break
            step = _line_search(problem, z, w, b, pw, pb, lam, slope)
            if step is None:  # no step lowers the objective measurably: the gradient is at float32's noise
                break
            alpha, z_new, r = step
            w_new, b_new = w + alpha * pw, b + alpha * pb
            if (iterations + 1) % _REFRESH == 0:  # the logits from the weights again: rounding drift is not carried
                z_new = problem.logits(w_new, b_new)
                r = problem.residual(z_new)
                precondition = problem.preconditioner(lam, problem.curvature(r))
            gw_new, gb_new = problem.gradient(r, w_new, lam)
            s, y = (w_new - w, b_new - b), (gw_new - gw, gb_new - gb)
            if _dot(s, y) > 0:
                pairs = [*pairs[-(_MEMORY - 1) :], (s, y)]
            w, b, z, gw, gb = w_new, b_new, z_new, gw_new, gb_new
            iterations += 1
        yield w.copy(), b.copy(), iterations


def _direction(g, pairs, precondition, centred: bool = False):
    """L-BFGS's two-loop recursion: -H g, H the inverse-Hessian estimate from the correction pairs, starting from
    the preconditioner (the features' own curvature) rather than from a multiple of the identity. `centred`
    (multinomial): the direction is kept free of a vector added to every class (see _Logistic.gradient), which
    rounding in the preconditioner would otherwise put there."""
    qw, qb = g[0].copy(), g[1].copy()
    alphas = []
    for s, y in reversed(pairs):
        rho = 1.0 / _dot(s, y)
        a = rho * _dot(s, (qw, qb))
        alphas.append((a, rho))
        qw -= a * y[0]
        qb -= a * y[1]
    qw, qb = precondition(qw, qb)
    for (s, y), (a, rho) in zip(pairs, reversed(alphas)):
        beta = rho * _dot(y, (qw, qb))
        qw += (a - beta) * s[0]
        qb += (a - beta) * s[1]
    if centred:
        qw -= qw.mean(axis=1, keepdims=True)
        qb -= qb.mean()
    return -qw, -qb


def _line_search(problem, z, w, b, pw, pb, lam, slope):
    """A step along (pw, pb) that satisfies the strong Wolfe conditions, found from derivatives alone.

    The objective is convex, so any step whose directional derivative is still <= 0 lowers it; the search looks
    for one where it has also risen to at least `_CURVATURE` times its start (sufficient progress, and the
    curvature L-BFGS needs). Only the logits move, Z + alpha * X p, so each trial costs no product with the
    features. Returns (alpha, logits, residual), or None when the slope is lost in rounding."""
    xp = problem.logits(pw, pb)
    wp, pp = float(np.vdot(w, pw)), float(np.vdot(pw, pw))

    def derivative(alpha):
        zt = z + problem.dtype(alpha) * xp  # a step of the logits' type: a float64 one would make float32 ones float64
        r = problem.residual(zt)
        return (r * xp).sum(axis=0).sum(dtype=np.float64) / problem.n + lam * (wp + alpha * pp), zt, r

    low, high, low_slope, high_slope = 0.0, None, slope, None
    alpha, kept = 1.0, None
    for _ in range(_LINE_STEPS):
        value, zt, r = derivative(alpha)
        if _CURVATURE * slope <= value <= 0:
            return alpha, zt, r
        if value < 0:
            low, low_slope, kept = alpha, value, (alpha, zt, r)
        else:
            high, high_slope = alpha, value
        if high is None:
            alpha *= 2
        else:  # the secant's zero of the derivative, kept inside the bracket
            guess = low - low_slope * (high - low) / (high_slope - low_slope)
            alpha = min(max(guess, low + 0.1 * (high - low)), high - 0.1 * (high - low))
    return kept  # a step that still lowers the objective, if the search found one


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
    smaller C); the model is scikit-learn's `LogisticRegression` at the chosen C, fitted on train.

    Every C is fitted to its own optimum (scikit-learn's objective, so the same model as `LogisticRegression(C=C)`
    converged), by L-BFGS started from the optimum of the previous C of its chain (`_chain`): the stopping test
    does not depend on the start, so the warm start saves iterations without changing where a fit ends.
    Features are standardised with the train split's statistics and cast to float32. A perfect validation score
    ends the sweep (nothing later could be chosen). `max_iter` caps each C's iterations.

    Test data never enters this function, so nothing here can be selected on it."""
    grid = sorted(float(c) for c in c_grid)
    scaler = StandardScaler().fit(train_x)
    train_z, val_z = (scaler.transform(x).astype(np.float32, copy=False) for x in (train_x, val_x))
    curve, fitted = [], []
    with closing(_linear_sweep(train_z, train_y, grid, seed, max_iter)) as sweep:
        for value, model in sweep:
            score = balanced_accuracy_score(val_y, _predict(model, val_z))
            curve.append({"C": value, SELECTION_METRIC: float(score)})
            fitted.append(model)
            if score >= PERFECT:
                break
    best = max(range(len(curve)), key=lambda i: (curve[i][SELECTION_METRIC], -i))
    return ProbeFit(
        parameter="C",
        chosen=curve[best]["C"],
        curve=curve,
        model=make_pipeline(scaler, fitted[best]),
        at_grid_edge=len(grid) > 1 and best in (0, len(grid) - 1),
    )


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
    return [model for _, model in _linear_sweep(train_z, train_y, grid, seed, max_iter)]


def _linear_sweep(train_z, train_y, grid, seed, max_iter):
    """Yield (C, model) for every C of `grid`, in grid order. The chains (positions 0, 2, 4, ... and 1, 3, 5, ...)
    run ahead on their own threads, one BLAS thread each (on probe-sized problems extra threads spin against
    torch's OpenMP pool, and the chains already fill two cores), so neither waits for the other's slower values;
    with one core they take turns in this thread. Each chain's fits depend only on its own values, so the models
    are the same either way. Closing the generator stops the chains after the fits in progress."""
    classes = np.unique(train_y)
    if len(classes) < 2:
        raise ValueError(f"A probe needs training samples of at least 2 classes; got only {classes.tolist()}")
    # float32 products for speed; a small problem, or one with no more rows than weights (few-shot runs: such data
    # are separable, and at large C their fit creeps along a flat valley), is solved in float64, where rounding
    # does not stop it short of its optimum.
    weights = train_z.shape[1] * (1 if len(classes) == 2 else len(classes))
    dtype = np.float64 if train_z.size <= _FLOAT64_SIZE or len(train_z) <= weights else np.float32
    problem = _Logistic(np.ascontiguousarray(train_z, dtype=dtype), np.searchsorted(classes, train_y), len(classes))
    chains = [_chain(problem, grid[i::SWEEP_CHAINS], max_iter) for i in range(SWEEP_CHAINS)]
    with threadpool_limits(limits=1):
        if sweep_workers() < SWEEP_CHAINS:
            for position, value in enumerate(grid):
                w, b, iterations = next(chains[position % SWEEP_CHAINS])
                yield value, _linear_model(classes, w, b, value, iterations, seed, max_iter)
            return
        stop = threading.Event()
        results = [queue.Queue() for _ in chains]

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
                fitted = results[position % SWEEP_CHAINS].get()
                if isinstance(fitted, BaseException):
                    raise fitted
                w, b, iterations = fitted
                yield value, _linear_model(classes, w, b, value, iterations, seed, max_iter)
        finally:
            stop.set()
            for thread in threads:
                thread.join()


def _predict(model: LogisticRegression, x: np.ndarray) -> np.ndarray:
    """`model.predict(x)`, the same arithmetic without scikit-learn's input checks (17 times per sweep)."""
    scores = x @ model.coef_.T + model.intercept_
    return model.classes_[(scores[:, 0] > 0).astype(int) if scores.shape[1] == 1 else scores.argmax(axis=1)]


def _linear_model(classes, w, b, c, iterations, seed, max_iter) -> LogisticRegression:
    """A fitted scikit-learn LogisticRegression holding the weights found for C = c (binary: one row), in float32
    like the features it reads (a float64 copy would make every prediction copy the features to float64)."""
    model = LogisticRegression(C=c, max_iter=max_iter, random_state=seed)
    model.classes_ = classes
    model.coef_ = np.ascontiguousarray(w.T, dtype=np.float32)
    # Softmax intercepts are defined up to a constant: centred.
    model.intercept_ = (b - b.mean() if len(b) > 1 else b).astype(np.float32)
    model.n_features_in_ = w.shape[0]
    model.n_iter_ = np.array([iterations], dtype=np.int32)
    return model


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
