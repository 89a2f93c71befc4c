"""The linear probe's sweep (clipprobe.probes.linear): every C at its own optimum (class-balanced, as
scikit-learn's `class_weight="balanced"`) on the shapes probes meet (two classes, many, few-shot and separable,
correlated features; the random labels are not quite balanced), whatever the start, and scored as scikit-learn
scores."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score as sklearn_balanced_accuracy
from sklearn.preprocessing import StandardScaler

from clipprobe.probes.linear import DEFAULT_C_GRID, fit_probe, sweep_models
from clipprobe.probes.select import balanced_accuracy_score


def _data(shape: str, seed: int = 1):
    rng = np.random.default_rng(seed)
    if shape == "binary":
        y = rng.integers(0, 2, 300)
        x = rng.normal(size=(300, 32))
        x[:, 5] += y
    elif shape == "few-shot":  # 4 per class, 64 features: separable, as few-shot runs are
        y = np.repeat(np.arange(3), 4)
        x = rng.normal(size=(12, 64))
        x[:, 5] += 2 * y
    else:  # correlated features, as embeddings are: 5 latent directions seen through 48 noisy mixtures
        y = rng.integers(0, 4, 600)
        latent = rng.normal(size=(600, 5))
        latent[:, :4] += 1.5 * np.eye(4)[y]
        x = latent @ rng.normal(size=(5, 48)) + 0.05 * rng.normal(size=(600, 48))
    return x.astype(np.float32), y


@pytest.mark.parametrize("shape", ["binary", "few-shot", "correlated"])
def test_every_c_ends_within_a_percent_of_its_optimum(shape):
    x, y = _data(shape)
    z = StandardScaler().fit_transform(x).astype(np.float64)
    errors = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for c, model in zip(DEFAULT_C_GRID, sweep_models(x, y)):
            optimum = LogisticRegression(C=c, class_weight="balanced", tol=1e-10, max_iter=50_000).fit(z, y)
            errors.append(np.linalg.norm(model.coef_ - optimum.coef_) / np.linalg.norm(optimum.coef_))
            probabilities = model.predict_proba(z.astype(np.float32))
            assert np.abs(probabilities - optimum.predict_proba(z)).max() < 0.05, (shape, c)
    assert max(errors) < 1e-2, (shape, errors)


def test_the_models_are_scikit_learns_and_predict_as_it_does():
    x, y = _data("correlated")
    (model,) = sweep_models(x, y, (1.0,))
    assert isinstance(model, LogisticRegression) and model.C == 1.0
    assert model.coef_.shape == (4, 48) and list(model.classes_) == [0, 1, 2, 3]
    z = StandardScaler().fit_transform(x).astype(np.float32)
    np.testing.assert_array_equal(model.predict(z), np.argmax(model.decision_function(z), axis=1))
    binary = sweep_models(*_data("binary"), (1.0,))[0]
    assert binary.coef_.shape == (1, 32) and binary.intercept_.shape == (1,)


def test_labels_need_not_be_0_to_k():
    x, y = _data("binary")
    fit = fit_probe(x[:200], np.where(y[:200] == 1, 7, 3), x[200:], np.where(y[200:] == 1, 7, 3))
    assert set(fit.model.predict(x[200:])) <= {3, 7}


def test_balanced_accuracy_is_scikit_learns():
    rng = np.random.default_rng(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scikit-learn warns when a predicted class is absent from the labels
        for _ in range(100):
            classes = int(rng.integers(2, 6))
            y, predicted = rng.integers(0, classes, 40), rng.integers(0, classes + 1, 40)
            assert balanced_accuracy_score(y, predicted) == sklearn_balanced_accuracy(y, predicted)


def test_a_single_class_is_refused():
    x, _ = _data("binary")
    with pytest.raises(ValueError, match="at least 2 classes"):
        fit_probe(x[:50], np.zeros(50, dtype=int), x[50:], np.zeros(len(x) - 50, dtype=int))
