"""The linear probe's solver (clipprobe.probes.solver) against scikit-learn converged far tighter than the solver's
own certificate, on well-conditioned features and on nearly collinear ones (as random-weights embeddings are), at
every C of the default grid and a decade beyond, unweighted and class-balanced (`class_weight="balanced"`, on
imbalanced classes); and the choice rule (clipprobe.probes.select) on its own."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from sklearn.utils.class_weight import compute_sample_weight

from clipprobe.probes import solver
from clipprobe.probes.linear import DEFAULT_C_GRID, fit_probe
from clipprobe.probes.select import balanced_sample_weights, choose

# The default grid and one decade beyond it, in half-decade steps.
GRID = [*DEFAULT_C_GRID, float(10**4.5), 1e5]


def _well_conditioned(classes: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(600, 20))
    y = (
        (x[:, :classes] + rng.normal(size=(600, classes))).argmax(axis=1)
        if classes > 2
        else (x[:, 0] > 0) ^ (rng.random(600) < 0.2)
    )
    return x, np.asarray(y, dtype=int)


def _nearly_collinear(seed: int = 0):
    """1000 x 128: one common direction times a scalar per row, plus noise 1e-3 its size; 3 classes."""
    rng = np.random.default_rng(seed)
    u, s = rng.normal(size=128), rng.normal(size=(1000, 1))
    noise = rng.normal(size=(1000, 128))
    x = s * u + 1e-3 * noise
    y = (noise[:, :3] + 0.5 * s + 0.7 * rng.normal(size=(1000, 3))).argmax(axis=1)
    return x, y


@pytest.mark.parametrize("shape", ["binary", "multinomial", "nearly-collinear"])
def test_every_c_reaches_scikit_learns_optimum(shape):
    x, y = _nearly_collinear() if shape == "nearly-collinear" else _well_conditioned(2 if shape == "binary" else 3)
    train, held = slice(0, 3 * len(x) // 4), slice(3 * len(x) // 4, None)
    scaler = StandardScaler().fit(x[train])
    z, held_z = scaler.transform(x[train]), scaler.transform(x[held])
    classes = int(y.max()) + 1
    problem = solver.problem(z, y[train], classes)
    assert problem.dtype is np.float64
    solutions = list(solver.path(problem, GRID, 5000))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for c, solution in zip(GRID, solutions):
            assert solution.converged, c
            ref = LogisticRegression(C=c, solver="newton-cg", tol=1e-10, max_iter=10_000).fit(z, y[train])
            ours, theirs = (
                problem.objective(solution.w, solution.b, c),
                problem.objective(ref.coef_.T, ref.intercept_, c),
            )
            assert ours - theirs <= 1e-6 * theirs, (c, ours, theirs)
            coef = solution.w.T
            assert np.linalg.norm(coef - ref.coef_) <= 1e-3 * np.linalg.norm(ref.coef_), c
            # Predictions on held-out rows: the same, except where scikit-learn's scores are within rounding of a tie.
            scores = held_z @ coef.T + solution.b
            theirs_scores = ref.decision_function(held_z).reshape(len(held_z), -1)
            if classes == 2:
                ours_pred, theirs_pred, margin = scores[:, 0] > 0, theirs_scores[:, 0] > 0, np.abs(theirs_scores[:, 0])
            else:
                ours_pred, theirs_pred = scores.argmax(axis=1), theirs_scores.argmax(axis=1)
                top2 = np.sort(theirs_scores, axis=1)[:, -2:]
                margin = top2[:, 1] - top2[:, 0]
            tie = margin <= 1e-3 * np.abs(theirs_scores).max(axis=1)
            assert np.array_equal(ours_pred[~tie], theirs_pred[~tie]), c


def _imbalanced(classes: int, seed: int = 0):
    """560 x 20, the classes 500:60 (binary) or 400:120:40, each shifted along its own coordinate."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(classes), [500, 60] if classes == 2 else [400, 120, 40])
    x = rng.normal(size=(len(y), 20)) + 0.8 * np.eye(classes, 20)[y]
    return x, y


def _assert_same_model(problem, c, w, b, ref):
    """Objective within 1e-6 of scikit-learn's (relatively), coefficients within 0.1 %."""
    ours, theirs = problem.objective(w, b, c), problem.objective(ref.coef_.T, ref.intercept_, c)
    assert ours - theirs <= 1e-6 * theirs, (c, ours, theirs)
    assert np.linalg.norm(w.T - ref.coef_) <= 1e-3 * np.linalg.norm(ref.coef_), c


@pytest.mark.parametrize("classes", [2, 3])
def test_class_balanced_fits_reach_scikit_learns_balanced_optimum(classes):
    """class_weight="balanced" as scikit-learn defines it: the weights are its own, and every C of the grid and a
    decade beyond reaches `LogisticRegression(class_weight="balanced")`'s optimum (far from the unweighted one)."""
    x, y = _imbalanced(classes)
    z = StandardScaler().fit_transform(x)
    weights = balanced_sample_weights(y)
    np.testing.assert_allclose(weights, compute_sample_weight("balanced", y), rtol=1e-15)
    problem = solver.problem(z, y, classes, weights)
    assert problem.dtype is np.float64
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for c, solution in zip(GRID, solver.path(problem, GRID, 5000)):
            assert solution.converged, c
            settings = dict(C=c, solver="newton-cg", tol=1e-10, max_iter=10_000)
            ref = LogisticRegression(class_weight="balanced", **settings).fit(z, y)
            _assert_same_model(problem, c, solution.w, solution.b, ref)
            unweighted = LogisticRegression(**settings).fit(z, y)
            assert np.linalg.norm(unweighted.coef_ - ref.coef_) > 0.05 * np.linalg.norm(ref.coef_), c


def test_the_linear_probe_is_class_balanced():
    """The probe's chosen model is scikit-learn's balanced logistic regression at the chosen C, on the train split
    standardised; equal class counts give every sample weight 1 (no weights at all)."""
    x, y = _imbalanced(3)
    order = np.random.default_rng(1).permutation(len(y))
    train, val = order[:400], order[400:]
    fit = fit_probe(x[train], y[train], x[val], y[val])
    scaler, model = fit.model[0], fit.model[-1]
    assert model.get_params()["class_weight"] == "balanced"
    z = scaler.transform(x[train])
    ref = LogisticRegression(C=fit.chosen, class_weight="balanced", solver="newton-cg", tol=1e-10, max_iter=10_000).fit(
        z, y[train]
    )
    problem = solver.problem(z, y[train], 3, balanced_sample_weights(y[train]))
    _assert_same_model(problem, fit.chosen, model.coef_.T.astype(np.float64), model.intercept_, ref)
    assert balanced_sample_weights(np.arange(12) % 3) is None
    assert balanced_sample_weights(np.array([5, 5, 9])).tolist() == [0.75, 0.75, 1.5]


def test_a_cold_start_at_large_c_reaches_the_optimum():
    """A single C far beyond the grid, from zero (the start the old step-length test stopped short from)."""
    x, y = _nearly_collinear()
    z = StandardScaler().fit_transform(x)
    problem = solver.problem(z, y, 3)
    (solution,) = solver.path(problem, [1e5], 5000)
    ref = LogisticRegression(C=1e5, solver="newton-cg", tol=1e-10, max_iter=10_000).fit(z, y)
    assert solution.converged
    assert problem.objective(solution.w, solution.b, 1e5) <= (1 + 1e-6) * problem.objective(
        ref.coef_.T, ref.intercept_, 1e5
    )


def test_a_fit_stopped_by_max_iter_says_so():
    x, y = _nearly_collinear()
    problem = solver.problem(StandardScaler().fit_transform(x), y, 3)
    (solution,) = solver.path(problem, [1e4], 2)
    assert solution.iterations == 2 and not solution.converged
    fit = fit_probe(x[:700], y[:700], x[700:], y[700:], c_grid=(1e3, 1e4), max_iter=2)
    # The choice may lie at the grid's edge, and the grid be extended: every fit stopped at its 2 iterations.
    assert {1e3, 1e4} <= {point["C"] for point in fit.curve}
    assert not any(point["converged"] for point in fit.curve) and not fit.converged
    fit = fit_probe(x[:700], y[:700], x[700:], y[700:], c_grid=(1e-2, 1.0))
    assert all(point["converged"] for point in fit.curve) and fit.converged


def _scripted(scores, details=None):
    """Fits whose validation predictions score `scores` in turn: model i predicts i correct labels of 10."""
    closed = []

    def fits():
        try:
            for i, score in enumerate(scores):
                yield float(i), score, (details[i] if details else {})
        finally:
            closed.append(True)

    labels = np.arange(10) % 2

    def predict(score):
        right = int(round(score * 10))
        return np.where(np.arange(10) < right, labels, 1 - labels)

    # Balanced accuracy of `predict(score)` on these labels, for what the rule sees.
    return fits(), predict, labels, closed


def test_choose_keeps_the_first_of_tied_best_and_flags_the_grid_edge():
    fits, predict, labels, closed = _scripted([0.6, 0.8, 0.8, 0.4])
    fit = choose("C", [0.0, 1.0, 2.0, 3.0], fits, predict, labels, StandardScaler())
    assert [p["C"] for p in fit.curve] == [0.0, 1.0, 2.0, 3.0] and fit.chosen == 1.0 and not fit.at_grid_edge
    assert fit.model[-1] == 0.8 and closed == [True]
    fits, predict, labels, _ = _scripted([0.6, 0.6, 0.4])
    assert choose("C", [0.0, 1.0, 2.0], fits, predict, labels, StandardScaler()).at_grid_edge  # first value
    fits, predict, labels, _ = _scripted([0.2, 0.4, 0.6])
    assert choose("alpha", [0.0, 1.0, 2.0], fits, predict, labels, StandardScaler()).at_grid_edge  # last value
    fits, predict, labels, _ = _scripted([0.6])
    assert not choose("C", [0.0], fits, predict, labels, StandardScaler()).at_grid_edge  # a grid of one


def test_choose_stops_at_a_perfect_score_and_reports_convergence():
    details = [{"converged": True}, {"converged": False}, {"converged": True}, {"converged": True}]
    fits, predict, labels, closed = _scripted([0.6, 0.8, 1.0, 0.9], details)
    fit = choose("C", [0.0, 1.0, 2.0, 3.0], fits, predict, labels, StandardScaler())
    assert [p["C"] for p in fit.curve] == [0.0, 1.0, 2.0] and fit.chosen == 2.0 and closed == [True]
    assert [p["converged"] for p in fit.curve] == [True, False, True] and not fit.converged
    assert [p["balanced_accuracy"] for p in fit.curve] == [0.6, 0.8, 1.0]
