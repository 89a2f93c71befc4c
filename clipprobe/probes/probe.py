"""One probe on one task: frozen features (extracted if the cache is cold) -> the hyperparameter chosen on validation
-> scored once on test -> one result record."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..data.task import Task
from ..data.taskfile import resolve_task
from ..features.cache import FeatureCache
from ..features.config import ExtractorConfig
from ..features.extract import extract_features
from ..results import DEFAULT_RESULTS_DIR, Identity, Result, Selection, claim, data_section, package_versions
from .metrics import score_predictions
from .registry import PROBE_VERSION, SELECTION_METRIC, Probe, get_probe
from .shots import Shots, sample_per_class, shortfall

Outcome = tuple[Result, Path]


def probe(
    task: str | Task,
    config: ExtractorConfig | None = None,
    results_dir: Path = DEFAULT_RESULTS_DIR,
    cache: FeatureCache | None = None,
    grid: tuple[float, ...] | None = None,
    refresh: bool = False,
    kind: str | Probe = "linear",
    shots: Shots | None = None,
) -> Outcome:
    """Probe frozen features (extracting first if the cache is cold); returns the record and its path.

    `task` is a registered name, a task file (.toml) or a Task; `kind` a probe (`clipprobe.list_probes()`:
    linear, mlp), `grid` its hyperparameter grid (default: the probe's own). The hyperparameter is chosen on
    the validation split; the model fitted on train at that value is scored once on test (nothing is refit on
    validation, as for the trained baselines: every row's final model has seen the same images).

    With `shots` (k, or "all"), the probe sees only k training examples per class, drawn stratified with
    `config.seed` (sample_per_class); the hyperparameter is still chosen on the validation split, and the fit
    on the k examples is scored. When a class
    has fewer than k training examples, the record says why under `skipped` and has no metrics.

    A result file from the same features, task, probe, grid, shots, seed and code is returned as it is
    (`run.reused`) unless `refresh`."""
    chosen = get_probe(kind) if isinstance(kind, str) else kind
    grid = tuple(sorted(float(value) for value in (grid or chosen.grid)))
    task = resolve_task(task)
    config = config or ExtractorConfig()
    started = time.perf_counter()
    features = extract_features(task.source, config, cache=cache)
    identity = Identity(task.name, features.meta["representation"], chosen.method, config.seed, shots)
    key = identity.key(
        {
            "probe": [chosen.name, PROBE_VERSION],
            "scikit-learn": package_versions()["scikit-learn"],
            "features": features.meta["keys"],
            "task": [task.label, list(task.classes), [list(c) for c in task.where]],
            "grid": list(grid),
        }
    )
    # Another process running the same thing: wait for it, then reuse what it wrote.
    with claim(identity, key, results_dir, refresh) as stored:
        if stored is not None:
            return stored
        data = task.source.load()
        # Features cover every row of the source; the task keeps its own rows (e.g. scenes with a light).
        inputs = {split: np.asarray(array)[task.rows(data[split])] for split, array in features.arrays.items()}
        labels = {split: task.labels(data[split]) for split in features.arrays}
        described = dict(
            model=features.meta["model"],
            pretrained=features.meta["pretrained"],
            weights=features.meta["identity"].get("weights", {"kind": "none"}),
            classes=list(task.classes),
        )
        run = {"extracted_splits": features.computed}
        sizes = {split: len(y) for split, y in labels.items()}
        train = np.arange(len(labels["train"]))
        sample = None
        if shots is not None:
            if (reason := shortfall(labels["train"], task.classes, shots)) is not None:
                # Recorded, not silently dropped: the report lists it under the task's few-shot table.
                record = Result.build(
                    identity, key, started, run, skipped=reason, data=data_section(task, sizes), **described
                )
                return record, record.write(results_dir)
            train = sample_per_class(labels["train"], len(task.classes), shots, config.seed)
            sample = {
                "per_class": shots,
                "seed": config.seed,
                "train_rows": len(train),
                "of": len(labels["train"]),
                "stratified": True,
            }
            sizes["train"] = len(train)
        fit = chosen.fit(
            inputs["train"][train],
            labels["train"][train],
            inputs["validation"],
            labels["validation"],
            grid,
            seed=config.seed,
        )
        predicted = fit.model.predict(inputs["test"])
        record = Result.build(
            identity,
            key,
            started,
            run,
            **described,
            metrics=score_predictions(labels["test"], predicted, task.classes),
            predictions=[int(p) for p in predicted],
            selection=Selection(
                metric=SELECTION_METRIC,
                split="validation",
                parameter=fit.parameter,
                chosen=fit.chosen,
                at_grid_edge=fit.at_grid_edge,
                curve=fit.curve,
            ),
            data=data_section(task, sizes),
            features={
                "dim": int(features.arrays["train"].shape[1]),
                "layer": config.layer,
                # The precision the features were computed in (`auto` resolved), and why it was chosen.
                "precision": features.meta["identity"].get("precision", config.precision),
                "precision_reason": features.meta.get("precision_reason"),
                "device": config.device,
                "preprocess": features.meta.get("preprocess"),
                "cache_keys": features.meta["keys"],
            },
            sample=sample,
        )
        return record, record.write(results_dir)
