"""Multinomial (or binomial) logistic regression, L2-penalised, solved by a preconditioned L-BFGS along a path of C
values: scikit-learn's objective, so the same optimum as `LogisticRegression(C=C)`, or with per-row weights as
`LogisticRegression(C=C).fit(x, y, sample_weight=...)` (`class_weight="balanced"`: see `problem`). Pure numpy
numerics; the probe that sweeps C over it is clipprobe.probes.linear.

Each C stops on a gradient certificate, never on an estimate of the step still to take (see `converged`)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from scipy.special import expit

# A fit of one C is certified when the gradient of the objective (mean log-loss + ||W||^2 / (2 C n)) satisfies
# ||grad_W|| <= GRADIENT_TOLERANCE * lambda * ||W|| (lambda = 1 / (C n), the penalty's strong convexity: the weights
# are then within GRADIENT_TOLERANCE * ||W|| of the optimum, and the objective within GRADIENT_TOLERANCE^2 of it,
# relatively), with the intercepts' gradient as small against the loss's curvature; or when the gradient is no
# larger than the rounding error of its own computation (float32 products at large C: nothing can certify more).
GRADIENT_TOLERANCE = 1e-4
# The rounding error of a gradient, as a multiple of its estimate (see Logistic.rounding). Measured against a
# float64 gradient at the same weights, float32 sweeps (8,000 x 512 features, 10 classes) are off by about 12 times
# the raw estimate (the logits drift between refreshes, and the products' sums round too): 32 covers that.
_ROUNDING_MARGIN = 32.0
# Strong Wolfe's curvature constant for the line search, and the most steps it tries.
_CURVATURE = 0.9
_LINE_STEPS = 40
# Correction pairs that L-BFGS keeps (scikit-learn's and SciPy's default).
_MEMORY = 10
# Every this many iterations the logits are recomputed from the weights (one more product with the features).
_REFRESH = 20
# Iterations without a smaller gradient (against its certificate) after which a fit is taken to have stalled.
_PATIENCE = 100
# exp(-30) is about 1e-13: below float32's resolution of a probability near 1, far above its subnormal numbers.
_LOGIT_LIMIT = 30.0
# Problems of at most this many feature values (rows x features) are solved in float64 (and those with no more
# rows than weights, see `problem`).
_FLOAT64_SIZE = 1 << 18
# The features are also kept transposed (a faster product for the logits) up to this size.
_TRANSPOSED_BYTES = 256 << 20


@dataclass
class Solution:
    """The optimum found for one C: weights (features x columns), intercepts, the iterations it took, and whether
    the gradient certified it (False: `max_iter` reached, or a fit stalled above its rounding error)."""

    w: np.ndarray
    b: np.ndarray
    iterations: int
    converged: bool


class Logistic:
    """scikit-learn's logistic objective (the same optimum as `LogisticRegression(C=C)`): mean log-loss +
    ||W||^2 / (2 C n), the intercept unpenalised; binomial with one column for two classes, multinomial otherwise.
    With row `weights` s (None: all 1), the loss is sum(s_i loss_i) / n: proportional to scikit-learn's
    weighted objective (its mean over sum(s) and penalty ||W||^2 / (2 C sum(s))), so the same optimum.
    Products with the features run in the features' type (float32, or float64 for small problems; single-threaded
    BLAS); the rest in float64 where sums need it. Logits and residuals are kept class-major, (classes, n), the
    layout in which both products with the features run fastest; the logits are moved along each search direction
    without a product.

    The features' correlation matrix S = X'X / n is diagonalised once: L-BFGS starts each direction from
    (c S + lambda I)^-1, c the loss's current curvature, rather than from a multiple of the identity. That is
    the Hessian as far as the features decide it, so on correlated features (embeddings, whose directions are
    far from independent) L-BFGS converges in tens of iterations where it would need thousands."""

    def __init__(self, x: np.ndarray, codes: np.ndarray, classes: int, weights: np.ndarray | None = None):
        self.x, self.n = x, len(x)
        # Row weights (float64, one per row), or None for the unweighted objective (the same arithmetic as before
        # weights existed: a balanced train split costs nothing more).
        self.weights = None if weights is None else np.asarray(weights, dtype=np.float64)
        # The loss's curvature in the features' directions: X' diag(s) X / n, weighted as the loss is.
        weighted = x if self.weights is None else x * self.weights.astype(x.dtype)[:, None]
        eigenvalues, self.vectors = np.linalg.eigh((x.T @ weighted).astype(np.float64) / self.n)
        del weighted
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
        self.eps = float(np.finfo(self.dtype).eps)
        # The features' mean squared norm per row: the scale of a product's rounding (see `rounding`).
        self.row_scale = float(np.einsum("ij,ij->", x, x, dtype=np.float64)) / self.n
        self.target = codes.astype(self.dtype)[None, :] if self.binary else None
        self.row_weights = self.weights.astype(self.dtype) if self.weights is not None else None

    def logits(self, w: np.ndarray, b: np.ndarray) -> np.ndarray:
        w = np.ascontiguousarray(w, dtype=self.dtype)
        z = w.T @ self.xt if self.xt is not None else (self.x @ w).T
        z += b.astype(self.dtype)[:, None]
        return z

    def residual(self, z: np.ndarray) -> np.ndarray:
        """d(sum of weighted losses)/dZ: predicted probabilities minus the one-hot labels (classes x n), each row
        times its weight."""
        # Logits are clipped where exp would give subnormal floats, which slow every later product tenfold; the
        # probabilities move by less than 1e-13.
        if self.binary:
            r = expit(np.clip(z, -_LOGIT_LIMIT, _LOGIT_LIMIT)) - self.target
        else:
            r = z - z.max(axis=0)
            np.maximum(r, -_LOGIT_LIMIT, out=r)
            np.exp(r, out=r)
            r /= r.sum(axis=0)
            r[self.codes, self.rows] -= 1
        if self.row_weights is not None:
            r *= self.row_weights
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

    def rounding(self, z: np.ndarray, r: np.ndarray) -> tuple[float, float]:
        """Estimates of the rounding error in the gradient (the norms of the weights' part and of the intercepts'):
        each residual is off by the rounding of its logit (|z| eps, times the loss's curvature, at most 1/4) and of
        its own (|r| eps), at random signs; the weights' product adds each row's error times the row's norm. So
        eps sqrt(sum over rows and classes of (|r| + |z| / 4)^2) / n, times the rows' rms norm for the weights,
        and _ROUNDING_MARGIN times that. Negligible in float64."""
        spread = np.abs(r) + 0.25 * (np.abs(z) if self.weights is None else np.abs(z) * self.weights)
        error = _ROUNDING_MARGIN * self.eps * np.sqrt(np.einsum("ij,ij->", spread, spread, dtype=np.float64)) / self.n
        return float(error * np.sqrt(self.row_scale)), float(error)

    def curvature(self, r: np.ndarray) -> float:
        """The loss's mean curvature per logit, p (1 - p) averaged over rows and classes (p from the residual;
        each row's curvature times its weight, with weights)."""
        if self.weights is not None:
            r = r / self.weights
        p = np.abs(r) if self.binary else r.copy()
        if not self.binary:
            p[self.codes, self.rows] += 1
        q = p * (1 - p)
        if self.weights is not None:
            q *= self.weights
        return max(float(np.mean(q, dtype=np.float64)), 1e-8)

    def preconditioner(self, lam: float, curvature: float):
        """q -> (curvature S + lam I)^-1 q for the weights, q / curvature for the intercepts."""
        inverse = (1.0 / (curvature * self.eigenvalues + lam))[:, None]
        vectors, rows = self.vectors32, self.vectors32.T  # float32: a preconditioner needs no more

        def apply(qw: np.ndarray, qb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            rotated = inverse * (rows @ qw.astype(np.float32))
            return (vectors @ rotated.astype(np.float32)).astype(np.float64), qb / curvature

        return apply

    def objective(self, w: np.ndarray, b: np.ndarray, c: float) -> float:
        """Mean log-loss + ||W||^2 / (2 C n), in float64 (for tests and diagnostics: the solver needs only gradients)."""
        z = np.asarray(self.logits(w, b), dtype=np.float64)
        if self.binary:
            z = np.vstack([np.zeros_like(z), z])
        top = z.max(axis=0)
        losses = top + np.log(np.exp(z - top).sum(axis=0)) - z[self.codes, self.rows]
        loss = np.mean(losses if self.weights is None else losses * self.weights)
        return float(loss + np.vdot(w, w) / (2 * c * self.n))


def balanced_weights(codes: np.ndarray, classes: int) -> np.ndarray | None:
    """scikit-learn's `class_weight="balanced"` as row weights: n_samples / (n_classes * count of the row's class),
    n_classes the classes present in `codes` (as `compute_class_weight` counts them). None when every class has
    as many rows as every other (every weight is then exactly 1: the unweighted objective)."""
    counts = np.bincount(codes, minlength=classes)
    present = counts[counts > 0]
    if np.all(present == present[0]):
        return None
    return (len(codes) / (len(present) * counts.astype(np.float64)))[codes]


def problem(x: np.ndarray, codes: np.ndarray, classes: int, weights: np.ndarray | None = None) -> Logistic:
    """The objective for features `x` (rows x features, standardised), class codes 0..classes-1 and optional row
    `weights` (e.g. `balanced_weights(codes, classes)`). float32 products for speed; a small problem, or one with
    no more rows than weights (few-shot runs: such data are separable, and at large C their fit creeps along a
    flat valley), in float64, where rounding does not stop it short of its optimum."""
    size = x.shape[1] * (1 if classes == 2 else classes)
    dtype = np.float64 if x.size <= _FLOAT64_SIZE or len(x) <= size else np.float32
    return Logistic(np.ascontiguousarray(x, dtype=dtype), codes, classes, weights)


def _dot(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> float:
    return float(np.vdot(a[0], b[0]) + np.vdot(a[1], b[1]))


def _excess(problem: Logistic, z, r, w, gw, gb, lam: float) -> float:
    """How far the gradient is from certifying the iterate: <= 1 when certified (see GRADIENT_TOLERANCE)."""
    size = np.linalg.norm(w)
    floor_w, floor_b = problem.rounding(z, r)
    bound_w = max(GRADIENT_TOLERANCE * lam * size, floor_w)
    bound_b = max(GRADIENT_TOLERANCE * problem.curvature(r) * size, floor_b)
    return max(
        np.linalg.norm(gw) / bound_w if bound_w > 0 else np.inf,
        np.linalg.norm(gb) / bound_b if bound_b > 0 else np.inf,
    )


def path(problem: Logistic, values: list[float], max_iter: int, start: Solution | None = None) -> Iterator[Solution]:
    """Yield the solution for each C of `values` in order, each fit starting from the previous optimum, with
    L-BFGS's correction pairs carried over (their gradient differences corrected exactly for the new penalty).
    The first starts from zero, or from `start` (the solution of another C, e.g. a grid's edge being extended).

    A fit stops when its gradient certifies it (`_excess` <= 1): a test that does not depend on where the fit
    started, so a warm start ends where a cold one would. It also stops, uncertified (`converged` False), at
    `max_iter` iterations, or when no step lowers the objective or the gradient has not come nearer its
    certificate for _PATIENCE iterations; it then returns the iterate nearest its certificate."""
    d, k = problem.x.shape[1], problem.columns
    w, b = (np.zeros((d, k)), np.zeros(k)) if start is None else (start.w.copy(), start.b.copy())
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
        while True:
            excess = _excess(problem, z, r, w, gw, gb, lam)
            if excess <= 1:
                converged = True
                break
            if best is None or excess < best[0]:
                best, since = (excess, w, b), 0
            elif (since := since + 1) >= _PATIENCE:
                converged = False
                break
            if iterations >= max_iter:
                converged = False
                break
            pw, pb = _direction((gw, gb), pairs, precondition, not problem.binary)
            slope = _dot((gw, gb), (pw, pb))
            if slope >= 0:  # not a descent direction (rounding): start the memory afresh
                pairs = []
                pw, pb = _direction((gw, gb), pairs, precondition, not problem.binary)
                slope = _dot((gw, gb), (pw, pb))
            step = _line_search(problem, z, w, b, pw, pb, lam, slope)
            if step is None:  # no step lowers the objective measurably
                converged = False
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
        if not converged and best is not None and best[0] < excess:  # back to the iterate nearest its certificate
            _, w, b = best
            z = problem.logits(w, b)
            r = problem.residual(z)
            gw, gb = problem.gradient(r, w, lam)
            pairs = []
        yield Solution(w.copy(), b.copy(), iterations, converged)


def _direction(g, pairs, precondition, centred: bool = False):
    """L-BFGS's two-loop recursion: -H g, H the inverse-Hessian estimate from the correction pairs, starting from
    the preconditioner (the features' own curvature) rather than from a multiple of the identity. `centred`
    (multinomial): the direction is kept free of a vector added to every class (see Logistic.gradient), which
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
