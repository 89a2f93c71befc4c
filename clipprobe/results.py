"""The result record: one typed record, one JSON file per (task, representation, method, shots, seed).

Probes, trained baselines and zero-shot all write a `Result`; `clipprobe report` reads them back. A record says
what was measured (`metrics`, or why it was `skipped`), how the one choice was made (`selection`, on validation),
on which data (`data`), from which features or training (`features`, `training`), with which code (`versions`),
and when (`run`, the only part that changes from run to run). The identity -> key -> reuse step is `reuse`: a
stored record with the same key answers a run with the same inputs.

Invariance scores and experiment tables are documents of their own (clipprobe.dashcam); they share `versions`,
`run_section` and `read_document` from here."""

from __future__ import annotations

import dataclasses
import functools
import json
import platform
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .core.errors import RunError, UsageError
from .core.locks import exclusive
from .core.machine import machine
from .core.paths import slug
from .core.storage import stable_hash, write_json

# Bump when the shape of a record changes; records of another version are refused with a clear message.
SCHEMA_VERSION = 3
DEFAULT_RESULTS_DIR = Path("results")
# Fields that change from run to run (clock times); everything else is fixed by the inputs and the seed.
VOLATILE_FIELD = "run"
# Experiment records (headline tables across tasks) live in this folder under results/, apart from the per-task records.
EXPERIMENTS_FOLDER = "experiments"


def package_versions() -> dict[str, str]:
    """The versions of the packages that decide a result's numbers (looked up once per process)."""
    return dict(_package_versions())


@functools.cache
def _package_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    versions = {"python": platform.python_version()}
    for name in ("clipprobe", "torch", "torchvision", "open_clip_torch", "scikit-learn", "datasets", "numpy"):
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def run_section(started: float, **extra: Any) -> dict[str, Any]:
    """The volatile part of a record: when it finished and how long it took (plus `extra`)."""
    return {
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "seconds": round(time.perf_counter() - started, 3),
        **extra,
    }


def provenance(started: float, **run: Any) -> dict[str, Any]:
    """The part every record shares, whatever its kind (a result, an invariance score, an experiment table): with
    which code (`versions`) and on which machine (`machine`: CPU, native bf16, thread counts) it was made, and
    when (`run`, the volatile part, with `run` extras)."""
    return {"versions": package_versions(), "machine": machine(), VOLATILE_FIELD: run_section(started, **run)}


def data_section(task: Any, sizes: dict[str, int]) -> dict[str, Any]:
    """What a record says about its data: the source, its fingerprint, the task's label and filter, split sizes."""
    from .data.task import skipped_files

    return {
        "source": task.source.name,
        "location": source_location(task.source),
        "fingerprint": task.source.fingerprint(),
        "label": task.label,
        "where": [list(condition) for condition in task.where],
        "sizes": {split: int(n) for split, n in sizes.items()},
        "skipped": skipped_files(task.source),
    }


def source_location(source: Any) -> str:
    """Where a source's data lives (scheme and absolute path, for users' data), else its name."""
    location = getattr(source, "location", None)
    return location() if callable(location) else source.name


def check_results_folder(task: Any, results_dir: Path = DEFAULT_RESULTS_DIR) -> None:
    """A task's results folder holds the results of one data source: a run of the same task name over data that
    lives elsewhere is a UsageError (its results would replace the others', and the report would mix both)."""
    folder = Path(results_dir) / slug(task.name)
    if not folder.is_dir():
        return
    mine = source_location(task.source)
    for path in sorted(folder.glob("*.json")):
        try:
            theirs = json.loads(path.read_text())["data"]["location"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if theirs != mine:
            raise UsageError(
                f"{folder} holds results of {theirs}, but this run's task '{task.name}' reads {mine}: two data "
                "sets under one task name would overwrite each other. Name this one with --name NAME (in a task "
                "file: name = ...), or use another --results folder"
            )
        return


@dataclass(frozen=True)
class Identity:
    """What a result is of: the task, the representation probed (or the baseline's model), the method, the
    few-shot k (None: the whole train split) and the seed. It names the file; the key says whether a stored
    file answers a new run."""

    task: str
    representation: str
    method: str
    seed: int
    shots: int | str | None = None

    def path(self, results_dir: Path = DEFAULT_RESULTS_DIR) -> Path:
        """results/TASK/REPRESENTATION__METHOD[__K-shot]__seedS.json"""
        shots = f"__{self.shots}-shot" if self.shots is not None else ""
        return (
            Path(results_dir)
            / slug(self.task)
            / f"{slug(self.representation)}__{self.method}{shots}__seed{self.seed}.json"
        )

    def key(self, inputs: dict[str, Any]) -> str:
        """A hash of the identity and of every input that decides the numbers (features, data, settings, code)."""
        return stable_hash({**dataclasses.asdict(self), "inputs": inputs})


@dataclass
class Selection:
    """The one choice a row makes, always on the validation split: the probe's C or alpha, the network's epoch.

    Zero-shot chooses nothing: `parameter`, `chosen`, `metric` and `split` are None and `note` says why."""

    metric: str | None
    split: str | None
    parameter: str | None  # "C" (linear probe), "alpha" (MLP), "epoch" (trained baselines), or None
    chosen: float | int | None
    at_grid_edge: bool = False
    curve: list[dict[str, float]] = field(default_factory=list)
    note: str | None = None


@dataclass
class Result:
    """One result file. Exactly one of `metrics` (a finished run) and `skipped` (why it could not run) is set."""

    task: str
    representation: str
    method: str
    seed: int
    key: str
    model: str | None
    pretrained: str | None
    weights: dict[str, Any]
    classes: list[str]
    data: dict[str, Any]
    versions: dict[str, str]
    machine: dict[str, Any]
    run: dict[str, Any]
    shots: int | str | None = None
    metrics: dict[str, Any] | None = None
    skipped: str | None = None
    selection: Selection | None = None
    features: dict[str, Any] | None = None
    training: dict[str, Any] | None = None
    sample: dict[str, Any] | None = None
    prompts: dict[str, list[str]] | None = None
    # The class predicted for each test example, in the task's row order (for paired comparisons between rows).
    predictions: list[int] | None = None
    # Set when something other than the inputs stopped the run early (a user's time limit): {reached, planned,
    # unit, reason}. Every output marks such a result, the CI gate refuses it, and it is never reused.
    incomplete: dict[str, Any] | None = None
    schema_version: int = SCHEMA_VERSION

    @classmethod
    def build(
        cls, identity: Identity, key: str, started: float, run: dict[str, Any] | None = None, **fields: Any
    ) -> Result:
        """The one builder: identity, key, versions and the run section filled in the same way for every kind of row."""
        return cls(**dataclasses.asdict(identity), key=key, **provenance(started, **(run or {})), **fields)

    @property
    def identity(self) -> Identity:
        return Identity(self.task, self.representation, self.method, self.seed, self.shots)

    def path(self, results_dir: Path = DEFAULT_RESULTS_DIR) -> Path:
        return self.identity.path(results_dir)

    @property
    def reused(self) -> bool:
        return bool(self.run.get("reused"))

    def to_json(self, volatile: bool = True) -> dict[str, Any]:
        """The record as JSON data: optional sections that are not set are left out; without `volatile`, no `run`."""
        optional = {f.name for f in dataclasses.fields(self) if f.default is None}
        data = {k: v for k, v in dataclasses.asdict(self).items() if v is not None or k not in optional}
        if not volatile:
            data.pop(VOLATILE_FIELD)
        return data

    @classmethod
    def from_json(cls, data: Any, where: str = "result") -> Result:
        """A record from JSON data; another schema version or a malformed record is a RunError naming `where`."""
        if not isinstance(data, dict):
            raise RunError(f"{where} is not a result record (a JSON object); delete it or re-run its probe")
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise RunError(
                f"{where} has schema version {version}, this clipprobe reads {SCHEMA_VERSION}; "
                "re-run its probe (or delete the file)"
            )
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise RunError(f"{where} has unknown field '{unknown[0]}'; re-run its probe (or delete the file)")
        values = dict(data)
        try:
            if values.get("selection") is not None:
                values["selection"] = Selection(**values["selection"])
            result = cls(**values)
        except TypeError as exc:
            raise RunError(
                f"{where} is not a complete result record ({exc}); re-run its probe (or delete the file)"
            ) from None
        if (result.metrics is None) == (result.skipped is None):
            raise RunError(f"{where} must have either metrics or skipped; re-run its probe (or delete the file)")
        return result

    def write(self, results_dir: Path = DEFAULT_RESULTS_DIR) -> Path:
        """Write atomically: a failed run never replaces an earlier good file with a partial one."""
        path = self.path(results_dir)
        write_json(path, self.to_json())
        return path


def reuse(identity: Identity, key: str, results_dir: Path = DEFAULT_RESULTS_DIR) -> tuple[Result, Path] | None:
    """The stored result for `identity` if it has this `key` (same inputs, settings, seed and code), else None.

    A run whose stored result already answers it is skipped; `run.reused` marks the returned copy. An incomplete
    result answers nothing: what it holds depended on the machine's speed."""
    path = identity.path(results_dir)
    try:
        stored = Result.from_json(json.loads(path.read_text()), str(path))
    except (OSError, ValueError, RunError):
        return None
    if stored.key != key or stored.incomplete is not None:
        return None
    stored.run = {**stored.run, "reused": True}
    return stored, path


@contextmanager
def claim(identity: Identity, key: str, results_dir: Path = DEFAULT_RESULTS_DIR, refresh: bool = False):
    """Hold the lock of `identity`'s result file; yields the stored result that answers (`reuse`), or None.

    A second process that runs the same thing waits here for the first, then reuses what it wrote; with
    `refresh` it runs again after it (one at a time, so the file is never written twice at once)."""
    path = identity.path(results_dir)
    with exclusive(path, f"writing {path}"):
        yield None if refresh else reuse(identity, key, results_dir)


def read_results(results_dir: Path = DEFAULT_RESULTS_DIR) -> list[Result]:
    """Every result record under `results_dir` (not the experiment records), in file-name order."""
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise RunError(f"No results folder at {results_dir}: run `clipprobe probe --task TASK` first")
    records = []
    for path in sorted(p for p in results_dir.glob("*/*.json") if p.parent.name != EXPERIMENTS_FOLDER):
        records.append(Result.from_json(_read_json(path, "Result file"), f"Result file {path}"))
    if not records:
        raise RunError(f"No result files in {results_dir}: run `clipprobe probe --task TASK` first")
    return records


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        raise RunError(f"{what} {path} is not valid JSON ({exc}); delete it or re-run what wrote it") from None


def write_document(path: Path, document: dict[str, Any], version: int) -> Path:
    """Write a document of its own kind (an invariance score, an experiment table) with its schema version."""
    write_json(path, {"schema_version": version, **document})
    return Path(path)


def read_document(path: Path, version: int, what: str) -> dict[str, Any]:
    """A document written by `write_document`; another schema version is a RunError that says what to re-run."""
    document = _read_json(Path(path), what)
    if not isinstance(document, dict) or document.get("schema_version") != version:
        found = document.get("schema_version") if isinstance(document, dict) else None
        raise RunError(f"{what} {path} has schema version {found}, expected {version}; re-run what wrote it")
    return {k: v for k, v in document.items() if k != "schema_version"}
