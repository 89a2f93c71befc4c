"""One probe on arrays: the hyperparameter chosen on validation, the model fitted on train (or on k examples per
class) predicts the test rows. A computation: no files, no features to extract, no test labels."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..results import Sample, Selection
from .registry import SELECTION_METRIC, Probe
from .shots import Shots, sample_per_class, shortfall


@dataclass
class ProbeRun:
    """What a probe made of its arrays: its test predictions and its choice, or why it could not run (`skipped`)."""

    predictions: np.ndarray | None
    selection: Selection | None
    sample: Sample | None
    skipped: str | None
    train_rows: int


def run_probe(
    probe: Probe,
    inputs: dict[str, np.ndarray],
    labels: dict[str, np.ndarray],
    classes: tuple[str, ...],
    grid: tuple[float, ...],
    seed: int = 0,
    shots: Shots | None = None,
) -> ProbeRun:
    """Fit `probe` on inputs["train"] (labels["train"]), choose its hyperparameter on the validation split, and
    predict inputs["test"]. `labels` holds train and validation only: the test labels are not this function's.

    With `shots` (k, or "all"), the probe sees only k training examples per class, drawn stratified with `seed`
    (sample_per_class); the hyperparameter is still chosen on the validation split. When a class has fewer than
    k training examples, the run is `skipped`, with the reason."""
    train = np.arange(len(labels["train"]))
    sample = None
    if shots is not None:
        if (reason := shortfall(labels["train"], classes, shots)) is not None:
            return ProbeRun(None, None, None, reason, 0)
        train = sample_per_class(labels["train"], len(classes), shots, seed)
        sample = Sample(per_class=shots, seed=seed, train_rows=len(train), of=len(labels["train"]))
    fit = probe.fit(
        inputs["train"][train], labels["train"][train], inputs["validation"], labels["validation"], grid, seed=seed
    )
    selection = Selection(
        metric=SELECTION_METRIC,
        split="validation",
        parameter=fit.parameter,
        chosen=fit.chosen,
        at_grid_edge=fit.at_grid_edge,
        curve=fit.curve,
        note=fit.note,
        grid=list(fit.grid) or None,
    )
    return ProbeRun(np.asarray(fit.model.predict(inputs["test"])), selection, sample, None, len(train))
