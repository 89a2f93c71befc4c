"""Result records: one JSON file per (task, row, method, shots, seed), read back and merged for reports."""

from __future__ import annotations

import json
import platform
import re
from pathlib import Path
from typing import Any

from .errors import RunError
from .storage import write_json

SCHEMA_VERSION = 1
DEFAULT_RESULTS_DIR = Path("results")
# Fields that change from run to run (clock times); everything else is fixed by the seed.
VOLATILE_FIELD = "run"
# Experiment records (headline tables across tasks) live in this folder under results/, apart from the per-task records.
EXPERIMENTS_FOLDER = "experiments"
EXPERIMENT_SCHEMA_VERSION = 1


def package_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    versions = {"python": platform.python_version()}
    for name in ("clipprobe", "torch", "open_clip_torch", "scikit-learn", "datasets", "numpy"):
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def data_section(task: Any, sizes: dict[str, int]) -> dict[str, Any]:
    """What a record says about its data: the source, its fingerprint, the task's label and filter, split sizes."""
    from .sources import skipped_files

    return {
        "source": task.source.name,
        "fingerprint": task.source.fingerprint(),
        "label": task.label,
        "where": [list(condition) for condition in task.where],
        "sizes": {split: int(n) for split, n in sizes.items()},
        "skipped": skipped_files(task.source),
    }


def run_section(started: float, **extra: Any) -> dict[str, Any]:
    """The volatile part of a record: when it finished and how long it took (plus `extra`)."""
    import time
    from datetime import datetime, timezone

    return {
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "seconds": round(time.perf_counter() - started, 3),
        **extra,
    }


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "none"


def result_path(results_dir: Path, record: dict[str, Any]) -> Path:
    """results/TASK/ROW__METHOD[__K-shot]__seedS.json"""
    shots = f"__{record['shots']}-shot" if record.get("shots") is not None else ""
    name = f"{slug(record['row'])}__{record['method']}{shots}__seed{record['seed']}.json"
    return Path(results_dir) / slug(record["task"]) / name


def write_result(record: dict[str, Any], results_dir: Path = DEFAULT_RESULTS_DIR) -> Path:
    """Write atomically: a failed run never replaces an earlier good file with a partial one."""
    path = result_path(results_dir, record)
    write_json(path, {"schema_version": SCHEMA_VERSION, **record})
    return path


def reusable(record: dict[str, Any], results_dir: Path = DEFAULT_RESULTS_DIR) -> tuple[dict[str, Any], Path] | None:
    """The stored result with the same `key` as `record` (same inputs, settings, seed and code), if any.

    A run whose stored result already answers it is skipped; `run.reused` marks the returned copy."""
    path = result_path(results_dir, record)
    try:
        stored = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if stored.get("schema_version") != SCHEMA_VERSION or stored.get("key") != record["key"]:
        return None
    stored.pop("schema_version")
    stored[VOLATILE_FIELD] = {**stored.get(VOLATILE_FIELD, {}), "reused": True}
    return stored, path


def read_results(results_dir: Path = DEFAULT_RESULTS_DIR) -> list[dict[str, Any]]:
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise RunError(f"No results folder at {results_dir}: run `clipprobe probe --task TASK` first")
    records = []
    for path in sorted(p for p in results_dir.glob("*/*.json") if p.parent.name != EXPERIMENTS_FOLDER):
        try:
            record = json.loads(path.read_text())
        except ValueError as exc:
            raise RunError(f"Result file {path} is not valid JSON ({exc}); delete it or re-run its probe") from exc
        if record.get("schema_version") != SCHEMA_VERSION:
            raise RunError(f"Result file {path} has schema version {record.get('schema_version')}, expected {SCHEMA_VERSION}")
        records.append(record)
    if not records:
        raise RunError(f"No result files in {results_dir}: run `clipprobe probe --task TASK` first")
    return records


def read_experiments(results_dir: Path = DEFAULT_RESULTS_DIR) -> list[dict[str, Any]]:
    """The experiment records (e.g. `clipprobe experiment curation`'s headline tables) under `results_dir`."""
    records = []
    for path in sorted((Path(results_dir) / EXPERIMENTS_FOLDER).glob("*.json")):
        try:
            record = json.loads(path.read_text())
        except ValueError as exc:
            raise RunError(f"Experiment file {path} is not valid JSON ({exc}); delete it or re-run the experiment") from exc
        if record.get("schema_version") != EXPERIMENT_SCHEMA_VERSION:
            raise RunError(f"Experiment file {path} has schema version {record.get('schema_version')}, "
                           f"expected {EXPERIMENT_SCHEMA_VERSION}; re-run the experiment")
        records.append(record)
    return records
