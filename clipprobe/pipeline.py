"""The pipeline as Python calls: data -> features (cached) -> probe -> result file."""

from __future__ import annotations

import dataclasses
import functools
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .baselines import DEFAULT_BASELINES, parse_baselines
from .baselines.controls import ProbeControl
from .errors import UsageError
from . import features as features_module
from .chunks import DEFAULT_CHUNK_ROWS, Shard, parse_shard
from .features import ExtractorConfig, FeatureCache, FeatureSet, extract_features, merge_features
from .probe import DEFAULT_PROBES, PROBE_VERSION, SELECTION_METRIC, Probe, get_probe, parse_probes, score
from .results import DEFAULT_RESULTS_DIR, data_section, package_versions, reusable, run_section, write_result
from .storage import stable_hash
from .shots import Shots, parse_shots, sample_per_class, shortfall
from .sources import resolve_task, skipped_files
from .tasks import DASHCAM, DashcamWorld, Task, with_world
from .world import WorldConfig


def _extract_source(task, world, strict):
    """The data source `extract` reads: the task's, or the dashcam world (all its tasks share one) without a task."""
    if task is None:
        return DashcamWorld(world) if world is not None else DASHCAM
    return with_world(resolve_task(task, strict), world).source


def extract(
    task: str | Task | None = None,
    config: ExtractorConfig | None = None,
    cache: FeatureCache | None = None,
    refresh: bool = False,
    world: WorldConfig | None = None,
    strict: bool = False,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> FeatureSet:
    """Cache features for every probe split of `task`'s data (default: the dashcam world all its tasks share).

    Extraction goes in chunks of `chunk_rows` rows: a killed run resumes where it stopped, and the chunks that
    shards (`extract_shard`) wrote are assembled rather than recomputed."""
    source = _extract_source(task, world, strict)
    features = extract_features(source, config, cache=cache, refresh=refresh, chunk_rows=chunk_rows)
    skipped_files(source)  # even when every split was cached: unreadable images are reported, or fail with strict
    return features


def extract_shard(
    shard: str | Shard,
    task: str | Task | None = None,
    config: ExtractorConfig | None = None,
    cache: FeatureCache | None = None,
    world: WorldConfig | None = None,
    strict: bool = False,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> dict[str, int]:
    """Shard I of N ("I/N") of `extract`: this process's chunks of every missing split; `merge` assembles them.

    Returns the chunks computed per split (0 for a split whose chunks were all there already)."""
    shard = parse_shard(shard) if isinstance(shard, str) else shard
    source = _extract_source(task, world, strict)
    return features_module.extract_shard(source, config, shard, cache=cache, chunk_rows=chunk_rows)


def merge(
    task: str | Task | None = None,
    config: ExtractorConfig | None = None,
    cache: FeatureCache | None = None,
    world: WorldConfig | None = None,
    strict: bool = False,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> FeatureSet:
    """Assemble the shards' chunks into the feature cache, checking that every row is there exactly once."""
    source = _extract_source(task, world, strict)
    return merge_features(source, config, cache=cache, chunk_rows=chunk_rows)


def probe(
    task: str | Task,
    config: ExtractorConfig | None = None,
    results_dir: Path = DEFAULT_RESULTS_DIR,
    cache: FeatureCache | None = None,
    grid: tuple[float, ...] | None = None,
    world: WorldConfig | None = None,
    strict: bool = False,
    refresh: bool = False,
    kind: str | Probe = "linear",
    shots: Shots | None = None,
) -> tuple[dict[str, Any], Path]:
    """Probe frozen features (extracting first if the cache is cold); returns the record and its path.

    `task` is a registered name, a task file (.toml) or a Task; `kind` a probe (`clipprobe.list_probes()`:
    linear, mlp), `grid` its hyperparameter grid (default: the probe's own). The hyperparameter is chosen on
    the validation split, the model refit on train + validation and scored once on test.

    With `shots` (k, or "all"), the probe sees only k training examples per class, drawn stratified with
    `config.seed` (sample_per_class); the hyperparameter is still chosen on the validation split, and the fit
    on the k examples is scored as it is (no refit on validation, which would outnumber them). When a class
    has fewer than k training examples, the record says why under `skipped` and has no metrics.

    Unreadable images are skipped and counted in the record's data section; with `strict` the first one is
    an error. A result file from the same features, task, probe, grid, shots, seed and code is returned as
    it is (`run.reused`) unless `refresh`."""
    chosen = get_probe(kind) if isinstance(kind, str) else kind
    grid = tuple(sorted(float(value) for value in (grid or chosen.grid)))
    task = with_world(resolve_task(task, strict), world)
    config = config or ExtractorConfig()
    started = time.perf_counter()
    features = extract_features(task.source, config, cache=cache)
    key = stable_hash({
        "probe": [chosen.name, PROBE_VERSION], "scikit-learn": package_versions()["scikit-learn"],
        "features": features.meta["keys"], "task": [task.name, task.label, list(task.classes), [list(c) for c in task.where]],
        "grid": list(grid), "shots": shots, "seed": config.seed,
    })
    identity = {"task": task.name, "method": chosen.method, "row": features.meta["row"], "seed": config.seed, "key": key}
    if shots is not None:
        identity["shots"] = shots
    if not refresh and (stored := reusable(identity, results_dir)) is not None:
        return stored
    data = task.source.load()
    # Features cover every row of the source; the task keeps its own rows (e.g. scenes with a light).
    inputs = {split: np.asarray(array)[task.rows(data[split])] for split, array in features.arrays.items()}
    labels = {split: task.labels(data[split]) for split in features.arrays}
    described = {
        **identity,
        "model": features.meta["model"],
        "pretrained": features.meta["pretrained"],
        "weights": features.meta["identity"].get("weights", {"kind": "none"}),
        "classes": list(task.classes),
    }
    sizes = {split: len(y) for split, y in labels.items()}
    train = np.arange(len(labels["train"]))
    if shots is not None:
        if (reason := shortfall(labels["train"], task.classes, shots)) is not None:
            # Recorded, not silently dropped: the report lists it under the task's few-shot table.
            record = {**described, "skipped": reason, "data": data_section(task, sizes),
                      "run": run_section(started, extracted_splits=features.computed)}
            return record, write_result(record, results_dir)
        train = sample_per_class(labels["train"], len(task.classes), shots, config.seed)
        sizes["train"] = len(train)
    fit = chosen.fit(
        inputs["train"][train], labels["train"][train],
        inputs["validation"], labels["validation"],
        grid, seed=config.seed, refit=shots is None,
    )
    metrics = score(fit.model, inputs["test"], labels["test"], task.classes)
    record = {
        **described,
        "metrics": metrics,
        "selection": {
            "metric": SELECTION_METRIC,
            "split": "validation",
            "parameter": fit.parameter,
            f"chosen_{fit.parameter}": fit.chosen,
            "at_grid_edge": fit.at_grid_edge,
            "curve": fit.curve,
            "refit_on": list(fit.refit_on),
        },
        "data": data_section(task, sizes),
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
    if shots is not None:
        record["sample"] = {"per_class": shots, "seed": config.seed, "train_rows": len(train),
                            "of": len(labels["train"]), "stratified": True}
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
    probes: str | list[str] | tuple[str, ...] = DEFAULT_PROBES,
    shots: str | tuple[Shots, ...] | None = None,
    seeds: int = 1,
) -> list[tuple[dict[str, Any], Path]]:
    """The frozen-feature probes and each baseline on the same task and splits: one result file each, probes first.

    `baselines` is a list of names or a spec such as "cnn,orbit-cnn:hflip,pixels" ("none": the probes alone);
    `budget` overrides fields of the trained baselines' own budgets (see clipprobe.baselines.Budget).
    `probes` names the probe kinds ("linear,mlp"); each runs on the model's features and on those of the
    baselines that are probes themselves (pixels, random weights). `shots` ("1,2,4,8,16,all") adds a few-shot
    run per k and probe beside the full one (see `probe`). `seeds` repeats everything with seeds
    config.seed, config.seed + 1, ...: new few-shot samples, probe and network initialisations (and random
    weights); the report gives their mean and standard deviation. Stored results from identical runs are
    reused unless `refresh`. `on_result(record, path)` is called as each one is written (the command line
    prints it then)."""
    # Every name, option and number checked before anything runs.
    chosen = parse_baselines(baselines, budget)
    kinds = parse_probes(probes)
    ks = () if shots is None else parse_shots(shots)
    if seeds < 1:
        raise UsageError(f"--seeds must be at least 1, got {seeds}")
    task = with_world(resolve_task(task, strict), world)
    config = config or ExtractorConfig()

    def probes_on(features_config: ExtractorConfig) -> list[Callable]:
        return [functools.partial(probe, task, features_config, results_dir=results_dir, refresh=refresh, kind=kind,
                                  shots=k) for kind in kinds for k in (None, *ks)]

    runs = []
    for seed in range(config.seed, config.seed + seeds):
        seeded = dataclasses.replace(config, seed=seed)
        runs += probes_on(seeded)
        for baseline, option in chosen:
            if isinstance(baseline, ProbeControl):  # a probe on other features: every probe kind and shot, as above
                runs += probes_on(baseline.configure(seeded))
            else:
                runs.append(functools.partial(baseline.run, task, seeded, results_dir, option=option, budget=budget,
                                              refresh=refresh))
    outcomes = []
    for run in runs:
        outcomes.append(run())
        if on_result is not None:
            on_result(*outcomes[-1])
    return outcomes
