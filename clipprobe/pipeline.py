"""The pipeline as Python calls: data -> features (cached) -> probe -> result file."""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .baselines import DEFAULT_BASELINES, parse_baselines
from .features import ExtractorConfig, FeatureCache, FeatureSet, extract_features
from .probe import DEFAULT_C_GRID, PROBE_VERSION, SELECTION_METRIC, fit_probe, score
from .results import DEFAULT_RESULTS_DIR, data_section, package_versions, reusable, run_section, write_result
from .storage import stable_hash
from .sources import resolve_task, skipped_files
from .tasks import DASHCAM, DashcamWorld, Task, with_world
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
    refresh: bool = False,
) -> tuple[dict[str, Any], Path]:
    """Linear probe on frozen features (extracting first if the cache is cold); returns the record and its path.

    `task` is a registered name, a task file (.toml) or a Task. Unreadable images are skipped and counted
    in the record's data section; with `strict` the first one is an error. A result file from the same
    features, task, grid, seed and probe code is returned as it is (`run.reused`) unless `refresh`."""
    task = with_world(resolve_task(task, strict), world)
    config = config or ExtractorConfig()
    started = time.perf_counter()
    features = extract_features(task.source, config, cache=cache)
    key = stable_hash({
        "probe": PROBE_VERSION, "scikit-learn": package_versions()["scikit-learn"], "features": features.meta["keys"],
        "task": [task.name, task.label, list(task.classes), [list(c) for c in task.where]],
        "c_grid": sorted(float(c) for c in c_grid), "seed": config.seed,
    })
    identity = {"task": task.name, "method": "linear-probe", "row": features.meta["row"], "seed": config.seed, "key": key}
    if not refresh and (stored := reusable(identity, results_dir)) is not None:
        return stored
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
        **identity,
        "model": features.meta["model"],
        "pretrained": features.meta["pretrained"],
        "weights": features.meta["identity"].get("weights", {"kind": "none"}),
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
        "data": data_section(task, {split: len(y) for split, y in labels.items()}),
        "features": {
            "dim": int(features.arrays["train"].shape[1]),
            "layer": config.layer,
            "precision": config.precision,
            "preprocess": features.meta.get("preprocess"),
            "cache_keys": features.meta["keys"],
        },
        "versions": package_versions(),
        "run": run_section(started, extracted_splits=features.computed),
    }
    return record, write_result(record, results_dir)


def compare(
    task: str | Task,
    config: ExtractorConfig | None = None,
    baselines: str | list[str] | tuple[str, ...] = DEFAULT_BASELINES,
    results_dir: Path = DEFAULT_RESULTS_DIR,
    budget: dict[str, Any] | None = None,
    world: WorldConfig | None = None,
    strict: bool = False,
    refresh: bool = False,
    on_result: Callable[[dict[str, Any], Path], None] | None = None,
) -> list[tuple[dict[str, Any], Path]]:
    """The frozen-feature probe and each baseline on the same task and splits: one result file each, probe first.

    `baselines` is a list of names or a spec such as "cnn,orbit-cnn:hflip,pixels" ("none": the probe alone);
    `budget` overrides fields of the trained baselines' own budgets (see clipprobe.baselines.Budget). Stored
    results from identical runs are reused unless `refresh` (see `probe`). `on_result(record, path)` is called
    as each one is written (the command line prints it then)."""
    chosen = parse_baselines(baselines, budget)  # every name and option checked before anything runs
    task = with_world(resolve_task(task, strict), world)
    config = config or ExtractorConfig()
    runs = [lambda: probe(task, config, results_dir=results_dir, refresh=refresh)]
    runs += [
        functools.partial(baseline.run, task, config, results_dir, option=option, budget=budget, refresh=refresh)
        for baseline, option in chosen
    ]
    outcomes = []
    for run in runs:
        outcomes.append(run())
        if on_result is not None:
            on_result(*outcomes[-1])
    return outcomes
