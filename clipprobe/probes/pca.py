"""The PCA-matched linear probe, `linear-pca:K`: the train split's features standardised, projected on their first
K principal components (fitted on train alone), then the linear probe (clipprobe.probes.linear) on those K
numbers. Layers of different widths (a 512-wide token layer, a 128-wide embedding) are then compared at the same
dimension: a difference between them is not only a difference of width."""

from __future__ import annotations

from typing import cast

import numpy as np
from sklearn.decomposition import PCA
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from ..core.errors import UsageError
from .linear import DEFAULT_C_GRID, fit_probe
from .registry import PROBE_FAMILIES, Probe, ProbeFamily
from .select import ProbeFit

FAMILY = "linear-pca"


def fit_pca_probe(
    train_x: np.ndarray,
    train_y: np.ndarray,
    val_x: np.ndarray,
    val_y: np.ndarray,
    c_grid: tuple[float, ...] = DEFAULT_C_GRID,
    seed: int = 0,
    components: int = 128,
    max_iter: int = 1000,
) -> ProbeFit:
    """Standardise with the train split's statistics, fit PCA to `components` on the train split alone (the full
    SVD: deterministic, signs fixed by scikit-learn's `svd_flip`), and fit the linear probe (`fit_probe`, which
    standardises its inputs again: every component at unit variance, C chosen on validation) on the projections.
    The model is the whole chain (scaler, PCA, the probe's scaler and logistic regression): it reads raw features.

    With `components` >= the features' width, the features are used as they are (the plain linear probe's fit);
    with fewer training rows than `components` (few-shot), PCA keeps as many components as there are rows. The
    result's `note` says either. Test data never enters this function."""
    width = train_x.shape[1]
    if components >= width:
        fit = fit_probe(train_x, train_y, val_x, val_y, c_grid, seed=seed, max_iter=max_iter)
        fit.note = (
            f"PCA-{components} not applied: the features have {width} dimensions, no more than {components}; "
            "the linear probe read them as they are"
        )
        return fit
    kept = min(components, len(train_x))
    reduce = make_pipeline(StandardScaler(), PCA(n_components=kept, svd_solver="full"))
    train_p = reduce.fit_transform(train_x)
    fit = fit_probe(train_p, train_y, reduce.transform(val_x), val_y, c_grid, seed=seed, max_iter=max_iter)
    explained = float(np.sum(reduce[-1].explained_variance_ratio_))
    fit.note = (
        f"PCA-{components} on the train split's standardised features: {width} dimensions to {kept}"
        + (f" (only {len(train_x)} training rows)" if kept < components else "")
        + f", {explained:.1%} of their variance"
    )
    probe = cast(Pipeline, fit.model)  # the probe's scaler and logistic regression
    fit.model = make_pipeline(*(step for _, step in [*reduce.steps, *probe.steps]))
    return fit


def pca_probe(argument: str) -> Probe:
    """`linear-pca:K`: the linear probe on the first K principal components of the train split's features."""
    try:
        components = int(argument)
    except ValueError:
        components = 0
    if components < 1:
        raise UsageError(
            f"Probe '{FAMILY}:K' needs a number of principal components K, a whole number of at least 1 "
            f"(e.g. {FAMILY}:128); got '{FAMILY}{':' if argument else ''}{argument}'"
        )
    name = f"{FAMILY}:{components}"

    def fit(train_x, train_y, val_x, val_y, grid=DEFAULT_C_GRID, seed=0, **options):
        return fit_pca_probe(train_x, train_y, val_x, val_y, grid, seed=seed, components=components, **options)

    return Probe(
        name=name,
        method=f"linear-probe-pca{components}",
        description=f"Linear probe on PCA-{components}: the linear probe on the first {components} principal "
        "components of the train split's standardised features (the features as they are when they have no "
        f"more than {components} dimensions)",
        parameter="C",
        grid=DEFAULT_C_GRID,
        fit=fit,
    )


PROBE_FAMILIES.register(
    FAMILY,
    ProbeFamily(
        name=FAMILY,
        usage=f"{FAMILY}:K",
        description="The linear probe on the first K principal components of the train split's standardised "
        "features (PCA fitted on train alone), to compare layers of different widths at the same dimension: "
        "linear-pca:128 puts a 512-wide token layer beside a 128-wide embedding",
        make=pca_probe,
    ),
)
