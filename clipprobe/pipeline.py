"""The pipeline as Python calls: data -> features (cached) -> probe -> result file."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .features import ExtractorConfig, FeatureCache, FeatureSet, extract_features
from .probe import DEFAULT_C_GRID, SELECTION_METRIC, fit_probe, score
from .results import DEFAULT_RESULTS_DIR, package_versions, write_result
from .tasks import DASHCAM, Task, get_task


def extract(
    task: str | Task | None = None,
    config: ExtractorConfig | None = None,
    cache: FeatureCache | None = None,
    refresh: bool = False,
) -> FeatureSet:
    """Cache features for every probe split of `task`'s data (default: the dashcam world all its tasks share)."""
    source = _task(task).source if task is not None else DASHCAM
    return extract_features(source, config, cache=cache, refresh=refresh)


def probe(
    task: str | Task,
    config: ExtractorConfig | None = None,
    results_dir: Path = DEFAULT_RESULTS_DIR,
    cache: FeatureCache | None = None,
    c_grid: tuple[float, ...] = DEFAULT_C_GRID,
) -> tuple[dict[str, Any], Path]:
    """Linear probe on frozen features (extracting first if the cache is cold); returns the record and its path."""
    task = _task(task)
    config = config or ExtractorConfig()
    started = time.perf_counter()
    features = extract_features(task.source, config, cache=cache)
    data = task.source.load()
    labels = {split: task.labels(data[split]) for split in features.arrays}
    fit = fit_probe(
        features.arrays["train"], labels["train"],
        features.arrays["validation"], labels["validation"],
        c_grid=c_grid, seed=config.seed,
    )
    metrics = score(fit.model, features.arrays["test"], labels["test"], task.classes)
    record = {
        "task": task.name,
        "method": "linear-probe",
        "row": features.meta["row"],
        "model": features.meta["model"],
        "pretrained": features.meta["pretrained"],
        "weights": features.meta["identity"]["weights"],
        "seed": config.seed,
        "classes": list(task.classes),
        "metrics": metrics,
        "selection": {
            "metric": SELECTION_METRIC,
            "split": "validation",
            "chosen_C": fit.chosen_c,
            "at_grid_edge": fit.at_grid_edge,
            "curve": fit.curve,
            "refit_on": ["train", "validation"],
        },
        "data": {
            "source": task.source.name,
            "fingerprint": task.source.fingerprint(),
            "label": task.label,
            "sizes": {split: int(len(y)) for split, y in labels.items()},
        },
        "features": {
            "dim": int(features.arrays["train"].shape[1]),
            "layer": config.layer,
            "precision": config.precision,
            "preprocess": features.meta.get("preprocess"),
            "cache_keys": features.meta["keys"],
        },
        "versions": package_versions(),
        "run": {
            "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "seconds": round(time.perf_counter() - started, 3),
            "extracted_splits": features.computed,
        },
    }
    return record, write_result(record, results_dir)


def _task(task: str | Task) -> Task:
    return get_task(task) if isinstance(task, str) else task
