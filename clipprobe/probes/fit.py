"""Probes on frozen features (linear, or one hidden layer): the hyperparameter chosen on validation only, scored once on test."""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
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
PROBE_VERSION = 4


@dataclass
class ProbeFit:
    """The chosen hyperparameter, the whole validation curve, and the final model (refit on train + validation,
    or the fit on train alone with refit=False)."""

    parameter: str  # "C" for the linear probe, "alpha" for the MLP
    chosen: float
    curve: list[dict[str, float]]
    model: object = field(repr=False)
    at_grid_edge: bool = False
    refit_on: tuple[str, ...] = ("train", "validation")


def _sweep(
    classifier,
    parameter: str,
    grid: list[float],
    train_x,
    train_y,
    val_x,
    val_y,
    *,
    warm: bool,
    refit: bool,
) -> ProbeFit:
    """Fit `classifier` at each value of `parameter` in `grid` (strongest regularisation first) on train, score
    each on validation, keep the best (ties to the earlier, stronger one), and refit it on train + validation.

    Features are standardised with the train split's statistics and cast to float32, so one grid fits features
    of any scale (CLIP embeddings, raw pixels). With `warm`, each fit starts from the previous solution (the
    linear path is smooth, so most fits need a few iterations). A perfect validation score ends the sweep: ties
    go to the earlier value, so nothing later could be chosen, and the later (weakest) fits are the slow ones."""
    scaler = StandardScaler().fit(train_x)
    train_z, val_z = (scaler.transform(x).astype(np.float32, copy=False) for x in (train_x, val_x))
    curve, fitted = [], []
    # One BLAS thread: on these small problems extra threads spin against torch's OpenMP pool
    # (a 17-point sweep on 2,000 x 128 features took 75 s with two threads, 7 s with one; benchmarks/probe_sweep.py).
    with warnings.catch_warnings(), threadpool_limits(limits=1):
        # At strong regularisation the solver may stop early; that value then simply scores what it scores.
        warnings.simplefilter("ignore", ConvergenceWarning)
        for value in grid:
            model = classifier if warm else clone(classifier)
            model.set_params(**{parameter: value}).fit(train_z, train_y)
            fitted.append(copy.deepcopy(model) if warm else model)
            score = balanced_accuracy_score(val_y, model.predict(val_z))
            curve.append({parameter: value, SELECTION_METRIC: float(score)})
            if score >= PERFECT:
                break
        best = max(range(len(curve)), key=lambda i: (curve[i][SELECTION_METRIC], -i))
        final = fitted[best]
        if refit:
            # Warm: start from the chosen solution when the classes are the same; otherwise from scratch.
            if not (warm and set(np.unique(val_y)) <= set(final.classes_)):
                final = clone(final)
            final.fit(np.concatenate([train_z, val_z]), np.concatenate([train_y, val_y]))
    return ProbeFit(
        parameter=parameter,
        chosen=curve[best][parameter],
        curve=curve,
        model=make_pipeline(scaler, final),
        at_grid_edge=len(grid) > 1 and best in (0, len(grid) - 1),
        refit_on=("train", "validation") if refit else ("train",),
    )


def fit_probe(
    train_x: np.ndarray,
    train_y: np.ndarray,
    val_x: np.ndarray,
    val_y: np.ndarray,
    c_grid: tuple[float, ...] = DEFAULT_C_GRID,
    seed: int = 0,
    max_iter: int = 1000,
    refit: bool = True,
) -> ProbeFit:
    """Logistic regression: sweep C on (train -> validation) from the smallest C up, warm-started along the path,
    keep the best, refit on train + validation (unless `refit` is False: few-shot runs keep the fit on their k
    examples per class, since the validation split would outnumber them).

    Test data never enters this function, so nothing here can be selected on it."""
    classifier = LogisticRegression(max_iter=max_iter, warm_start=True, random_state=seed)
    grid = sorted(float(c) for c in c_grid)
    return _sweep(classifier, "C", grid, train_x, train_y, val_x, val_y, warm=True, refit=refit)


def fit_mlp_probe(
    train_x: np.ndarray,
    train_y: np.ndarray,
    val_x: np.ndarray,
    val_y: np.ndarray,
    alpha_grid: tuple[float, ...] = DEFAULT_ALPHA_GRID,
    seed: int = 0,
    hidden: int = MLP_HIDDEN,
    max_iter: int = 200,
    refit: bool = True,
) -> ProbeFit:
    """One hidden layer (ReLU), its L2 penalty alpha chosen on validation from the largest down, as `fit_probe`.

    L-BFGS rather than Adam: on probe-sized data (thousands of examples) it converges in tens of iterations
    and needs no learning rate; the seed fixes the initial weights. Tells "absent from the features" (both
    probes at chance) from "present but not linearly decodable" (the MLP well above the linear probe)."""
    classifier = MLPClassifier(hidden_layer_sizes=(hidden,), solver="lbfgs", max_iter=max_iter, random_state=seed)
    grid = sorted((float(a) for a in alpha_grid), reverse=True)
    return _sweep(classifier, "alpha", grid, train_x, train_y, val_x, val_y, warm=False, refit=refit)


@dataclass(frozen=True)
class Probe:
    """A kind of probe: its method name in result files, the hyperparameter it sweeps and its default grid."""

    name: str
    method: str
    parameter: str
    grid: tuple[float, ...]
    description: str
    fit: Callable[..., ProbeFit]  # fit(train_x, train_y, val_x, val_y, grid, seed=..., refit=...)


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
