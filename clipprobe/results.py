"""Result records: one JSON file per (task, row, method, seed), read back and merged for reports."""

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


def package_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    versions = {"python": platform.python_version()}
    for name in ("clipprobe", "torch", "open_clip_torch", "scikit-learn", "datasets", "numpy"):
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "none"


def result_path(results_dir: Path, record: dict[str, Any]) -> Path:
    name = f"{slug(record['row'])}__{record['method']}__seed{record['seed']}.json"
    return Path(results_dir) / slug(record["task"]) / name


def write_result(record: dict[str, Any], results_dir: Path = DEFAULT_RESULTS_DIR) -> Path:
    """Write atomically: a failed run never replaces an earlier good file with a partial one."""
    path = result_path(results_dir, record)
    write_json(path, {"schema_version": SCHEMA_VERSION, **record})
    return path


def read_results(results_dir: Path = DEFAULT_RESULTS_DIR) -> list[dict[str, Any]]:
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise RunError(f"No results folder at {results_dir}: run `clipprobe probe --task TASK` first")
    records = []
    for path in sorted(results_dir.glob("*/*.json")):
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
