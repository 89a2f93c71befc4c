"""The pipeline as Python calls: data -> features (cached) -> probe -> result file."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from .features import ExtractorConfig, FeatureCache, FeatureSet, extract_features
from .probe import DEFAULT_C_GRID, SELECTION_METRIC, fit_probe, score
from .results import DEFAULT_RESULTS_DIR, package_versions, write_result
from .sources import load_task_file, skipped_files, with_strict
from .tasks import DASHCAM, DashcamWorld, Task, get_task, with_world
from .world import WorldConfig


def extract(
    task: str | Task | None = None,
    config: ExtractorConfig | None = None,
    cache: FeatureCache | None = None,
    refresh: bool = False,
    world: WorldConfig | None = None,
    strict: bool = False,
) -> FeatureSet:
    """Cache features for every probe split of `task`'s data (default: the dashcam world all its tasks share)."""
    if task is None:
        source = DashcamWorld(world) if world is not None else DASHCAM
    else:
        source = with_world(resolve_task(task, strict), world).source
    features = extract_features(source, config, cache=cache, refresh=refresh)
    skipped_files(source)  # even when every split was cached: unreadable images are reported, or fail with strict
    return features


def probe(
    task: str | Task,
    config: ExtractorConfig | None = None,
    results_dir: Path = DEFAULT_RESULTS_DIR,
    cache: FeatureCache | None = None,
    c_grid: tuple[float, ...] = DEFAULT_C_GRID,
    world: WorldConfig | None = None,
    strict: bool = False,
) -> tuple[dict[str, Any], Path]:
    """Linear probe on frozen features (extracting first if the cache is cold); returns the record and its path.

    `task` is a registered name, a task file (.toml) or a Task. Unreadable images are skipped and counted
    in the record's data section; with `strict` the first one is an error."""
    task = with_world(resolve_task(task, strict), world)
    config = config or ExtractorConfig()
    started = time.perf_counter()
    features = extract_features(task.source, config, cache=cache)
    data = task.source.load()
    # Features cover every row of the source; the task keeps its own rows (e.g. scenes with a light).
    inputs = {split: np.asarray(array)[task.rows(data[split])] for split, array in features.arrays.items()}
    labels = {split: task.labels(data[split]) for split in features.arrays}
    fit = fit_probe(
        inputs["train"], labels["train"],
        inputs["validation"], labels["validation"],
        c_grid=c_grid, seed=config.seed,
    )
    metrics = score(fit.model, inputs["test"], labels["test"], task.classes)
    record = {
        "task": task.name,
        "method": "linear-probe",
        "row": features.meta["row"],
        "model": features.meta["model"],
        "pretrained": features.meta["pretrained"],
        "weights": features.meta["identity"].get("weights", {"kind": "none"}),
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
            "where": [list(condition) for condition in task.where],
            "sizes": {split: int(len(y)) for split, y in labels.items()},
            "skipped": skipped_files(task.source),
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


def resolve_task(task: str | Task, strict: bool = False) -> Task:
    """A task object from a registered name, a task file (.toml), or a Task."""
    if isinstance(task, str):
        task = load_task_file(task) if task.endswith(".toml") else get_task(task)
    return with_strict(task) if strict else task
