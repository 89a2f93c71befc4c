"""The result record: one typed record, one JSON file per (task, representation, method, shots, seed, settings).

Every row of a table (a probe, a control, a network trained on the labels, zero-shot) is a job that the runner runs
and that writes one `Result`. A record says what kind of row it is (`kind`, declared by the job), what was measured
(`metrics`, or why it was `skipped`), how the one choice was made (`selection`, on validation), on which data
(`data`), from which features or training (`features`, `training`), with which code and on which machine
(`provenance`), and when (`run`, the only part that changes from run to run). Every section is a dataclass, typed
all the way down; `Result.from_json` checks every field and names the file and field of anything that does not fit.

Sensitivity scores and experiment tables are documents of their own (clipprobe.dashcam); they share `Provenance`,
`RunInfo` and `read_document` from here."""

from __future__ import annotations

import dataclasses
import functools
import json
import platform
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

from .core.defaults import EXPERIMENTS_FOLDER, PRECISION, RESULTS_DIR
from .core.errors import RunError, UsageError
from .core.kinds import RowKind
from .core.locks import exclusive
from .core.machine import machine
from .core.paths import slug
from .core.records import from_json, to_json
from .core.storage import stable_hash, write_json

# Bump when the shape of a record changes; records of another version are refused with a clear message.
# 4: typed sections all the way down, the row's kind declared, provenance in one section.
SCHEMA_VERSION = 4
# Fields that change from run to run (clock times); everything else is fixed by the inputs and the seed.
VOLATILE_FIELD = "run"

R = TypeVar("R")


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


@dataclass
class Machine:
    """The facts a result's last digits may depend on (clipprobe.core.machine.machine)."""

    cpu: str
    architecture: str
    cores: int
    native_bf16: bool
    os: str
    torch_threads: int | None = None
    cpu_capability: str | None = None
    cuda: str | None = None
    blas_threads: dict[str, int] | None = None

    @classmethod
    def now(cls) -> Machine:
        return from_json(cls, machine(), "this machine's description")


@dataclass
class Provenance:
    """With which code (`versions`: package versions) and on which machine a record was made."""

    versions: dict[str, str]
    machine: Machine

    @classmethod
    def now(cls) -> Provenance:
        return cls(package_versions(), Machine.now())


@dataclass
class RunInfo:
    """The volatile part of a record: when it finished, how long it took, and what the run did on the way."""

    finished_at: str
    seconds: float
    reused: bool | None = None
    # Splits whose features this run extracted (the others came from the cache).
    extracted_splits: list[str] | None = None
    # Trained baselines: seconds to decode the images, per epoch, and the threads used.
    decode_seconds: float | None = None
    seconds_per_epoch: list[float] | None = None
    threads: int | None = None
    # Experiments: seconds per stage. Sensitivity scores: per attribute, what was extracted and where the pairs are.
    stages: dict[str, float] | None = None
    extracted: dict[str, list[str]] | None = None
    pairs_paths: dict[str, str] | None = None

    @classmethod
    def since(cls, started: float, **extra: Any) -> RunInfo:
        return cls(
            finished_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            seconds=round(time.perf_counter() - started, 3),
            **extra,
        )


@dataclass
class SkippedFiles:
    """Unreadable images a data source left out: how many, and the first few by name with the reason."""

    count: int
    files: list[dict[str, str]] = field(default_factory=list)


@dataclass
class DataInfo:
    """What a record says about its data: the source, where it lives, its fingerprint, the task's label and filter,
    the split sizes, the unreadable files left out, and the images allowed in two splits."""

    source: str
    location: str
    fingerprint: str
    label: str
    where: list[list[str]]
    sizes: dict[str, int]
    skipped: SkippedFiles
    # Validation and test images with the content of an image in another split, allowed by the task file.
    duplicates: int = 0

    @property
    def scheme_path(self) -> tuple[str | None, str | None]:
        """(scheme, path): from the location ("imagefolder:/data/photos"); a built-in source without one gives its
        fingerprint's scheme ("dashcam-0647...") and no path."""
        head, sep, tail = self.location.partition(":")
        if sep and head and head[0].isalpha() and all(c.isalnum() or c in "_-" for c in head):
            return head, tail
        if "-" in self.fingerprint:
            return self.fingerprint.split("-", 1)[0], None
        return None, None


@dataclass
class Weights:
    """Which weights a row's features come from: their kind (builtin, file, open_clip-tag, hf-hub, local-dir,
    random, none) and what pins them down (a tag, a content hash, a hub repository)."""

    kind: str
    tag: str | None = None
    sha256: str | None = None
    source: str | None = None
    repo: str | None = None


@dataclass
class Preprocess:
    """How the images became the model's input (open_clip's preprocessing configuration, or the pixels')."""

    size: int | list[int] | None = None
    mode: str | None = None
    mean: list[float] | None = None
    std: list[float] | None = None
    interpolation: str | None = None
    resize_mode: str | None = None
    fill_color: int | None = None


@dataclass
class FeatureInfo:
    """The frozen features a probe read: their width, layer, precision (and why it was chosen), device,
    preprocessing, image geometry and cache keys."""

    dim: int
    layer: str
    precision: str
    device: str
    cache_keys: dict[str, str]
    geometry: str | None = None  # crop, squash or pad
    precision_reason: str | None = None
    preprocess: Preprocess | None = None
    orbit: str | None = None


@dataclass
class Training:
    """How a network trained on the task's labels was trained."""

    baseline: str
    architecture: str
    parameters: int
    budget: dict[str, int | float | str | bool | None]
    augment: str
    optimiser: str
    loss: str
    geometry: str
    input: str
    epochs_run: int
    group: str | None = None
    group_size: int | None = None


@dataclass
class Sample:
    """A few-shot run's training sample: k per class, drawn stratified with a seed."""

    per_class: int | str
    seed: int
    train_rows: int
    of: int
    stratified: bool = True


@dataclass
class Incomplete:
    """Set when something other than the inputs stopped a run early (a user's time limit)."""

    reached: int
    planned: int
    unit: str
    reason: str

    def note(self) -> str:
        """ "INCOMPLETE: 7 of 24 epochs (max_seconds=600 ...)" """
        return f"INCOMPLETE: {self.reached} of {self.planned} {self.unit} ({self.reason})"


@dataclass
class Bootstrap:
    resamples: int
    confidence: float
    seed: int


@dataclass
class Metrics:
    """Every metric a row is scored with, from its test predictions (clipprobe.probes.metrics)."""

    accuracy: float
    balanced_accuracy: float
    macro_f1: float
    intervals: dict[str, list[float]]  # 95 % percentile bootstrap over test examples, {metric: [low, high]}
    bootstrap: Bootstrap
    per_class_recall: dict[str, float]
    confusion_matrix: list[list[int]]
    n: int


@dataclass
class Selection:
    """The one choice a row makes, always on the validation split: the probe's C or alpha, the network's epoch.

    `at_grid_edge`: the choice is the first or last value of what was swept (for a probe, the first or last
    value of `grid`, after any extension; for a trained network, the last epoch of its budget): the best value may
    lie beyond. `grid`: a probe's values swept, ascending (the linear probe extends its default grid beyond an edge
    that validation chose, clipprobe.probes.linear); None for a trained network (its curve lists the epochs).
    Zero-shot chooses nothing: `parameter`, `chosen`, `metric` and `split` are None and `note` says why."""

    metric: str | None
    split: str | None
    parameter: str | None  # "C" (linear probe), "alpha" (MLP), "epoch" (trained baselines), or None
    chosen: int | float | None
    at_grid_edge: bool = False
    curve: list[dict[str, int | float | bool]] = field(default_factory=list)  # a point may say `converged`
    note: str | None = None
    grid: list[float] | None = None


def distinct_precision(precision: str | None) -> str | None:
    """The precision that sets a result apart from the fp32 one of the same representation: None for fp32 (the
    default) and for rows without features (a trained CNN); else the precision itself (bf16, fp16, amp, ...)."""
    return None if precision is None or precision == PRECISION else precision


@dataclass(frozen=True)
class Identity:
    """What a result is of: the task, the representation (or the baseline's row), the method, the few-shot k
    (None: the whole train split), the seed and the features' precision when it is not fp32. It names the file;
    the key says whether a stored file answers.

    The precision is not in the representation's name (`--precision auto` picks bf16 on one machine and fp32 on
    another): it is a field of its own, so that fp32 and bf16 results of one representation stay two files and two
    rows of a report under one name."""

    task: str
    representation: str
    method: str
    seed: int
    shots: int | str | None = None
    # bf16, fp16, amp, amp_bf16: another precision of the same representation is another result. None for fp32 (an
    # fp32 given here becomes None) and for rows without features.
    precision: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "precision", distinct_precision(self.precision))

    def path(self, results_dir: Path = RESULTS_DIR) -> Path:
        """results/TASK/REPRESENTATION__METHOD[__K-shot][__PRECISION]__seedS.json (no precision for fp32)."""
        shots = f"__{self.shots}-shot" if self.shots is not None else ""
        precision = f"__{slug(self.precision)}" if self.precision is not None else ""
        return (
            Path(results_dir)
            / slug(self.task)
            / f"{slug(self.representation)}__{slug(self.method)}{shots}{precision}__seed{self.seed}.json"
        )

    def key(self, inputs: dict[str, Any]) -> str:
        """A hash of the identity and of every input that decides the numbers (features, data, settings, code).

        An identity without a precision (fp32, or no features) hashes as identities did before they had one: the
        stored results of trained baselines and fp32 probes keep answering."""
        fields = dataclasses.asdict(self)
        if fields["precision"] is None:
            del fields["precision"]
        return stable_hash({**fields, "inputs": inputs})


@dataclass
class Result:
    """One result file. Exactly one of `metrics` (a finished run) and `skipped` (why it could not run) is set."""

    task: str
    representation: str
    method: str
    seed: int
    key: str
    kind: RowKind
    model: str | None
    pretrained: str | None
    weights: Weights
    classes: list[str]
    data: DataInfo
    provenance: Provenance
    run: RunInfo
    shots: int | str | None = None
    # The features' precision when it is not fp32 (Identity.precision); left out of the file for fp32 and for rows
    # without features. `features.precision` says the precision of every row with features, fp32 included.
    precision: str | None = None
    metrics: Metrics | None = None
    skipped: str | None = None
    selection: Selection | None = None
    features: FeatureInfo | None = None
    training: Training | None = None
    sample: Sample | None = None
    prompts: dict[str, list[str]] | None = None
    # The class predicted for each test example, in the task's row order (for paired comparisons between rows),
    # and the test labels they were scored against, in the same order: a record can be scored again, and the
    # report compares rows image by image (clipprobe.report.answers). Records made before labels were kept lack them.
    predictions: list[int] | None = None
    labels: list[int] | None = None
    # Set when something other than the inputs stopped the run early (a user's time limit). Every output marks
    # such a result, the CI gate refuses it, and it is never reused.
    incomplete: Incomplete | None = None
    schema_version: int = SCHEMA_VERSION

    @property
    def identity(self) -> Identity:
        return Identity(self.task, self.representation, self.method, self.seed, self.shots, self.precision)

    def path(self, results_dir: Path = RESULTS_DIR) -> Path:
        return self.identity.path(results_dir)

    @property
    def reused(self) -> bool:
        return bool(self.run.reused)

    @property
    def geometry(self) -> str | None:
        """crop, squash or pad: how the images became square inputs (None when the record does not say)."""
        if self.features is not None:
            return self.features.geometry
        return self.training.geometry if self.training is not None else None

    def to_json(self, volatile: bool = True) -> dict[str, Any]:
        """The record as JSON data: optional sections that are not set are left out; without `volatile`, no `run`."""
        data = to_json(self)
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
        result = from_json(cls, data, where)
        if (result.metrics is None) == (result.skipped is None):
            raise RunError(f"{where} must have either metrics or skipped; re-run its probe (or delete the file)")
        return result

    def write(self, results_dir: Path = RESULTS_DIR) -> Path:
        """Write atomically: a failed run never replaces an earlier good file with a partial one."""
        path = self.path(results_dir)
        write_json(path, self.to_json())
        return path


def check_results_folder(task_name: str, location: str, results_dir: Path = RESULTS_DIR) -> None:
    """A task's results folder holds the results of one data source: a run of the same task name over data that
    lives elsewhere is a UsageError (its results would replace the others', and the report would mix both)."""
    folder = Path(results_dir) / slug(task_name)
    if not folder.is_dir():
        return
    for path in sorted(folder.glob("*.json")):
        try:
            stored = json.loads(path.read_text())
            theirs, their_name = stored["data"]["location"], stored["task"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if their_name != task_name:
            raise UsageError(
                f"Task names '{their_name}' and '{task_name}' share the results folder {folder}: one would replace "
                "the other's results. Name this one apart with --name NAME (in a task file: name = ...), or use "
                "another --results folder"
            )
        if theirs != location:
            raise UsageError(
                f"{folder} holds results of {theirs}, but this run's task '{task_name}' reads {location}: two data "
                "sets under one task name would overwrite each other. Name this one with --name NAME (in a task "
                "file: name = ...), or use another --results folder"
            )
        return


def reuse(identity: Identity, key: str, results_dir: Path = RESULTS_DIR) -> tuple[Result, Path] | None:
    """The stored result for `identity` if it has this `key` (same inputs, settings, seed and code), else None.

    A run whose stored result already answers it is skipped; `run.reused` marks the returned copy. An incomplete
    result answers nothing: what it holds depended on the machine's speed."""
    path = identity.path(results_dir)
    try:
        stored = Result.from_json(json.loads(path.read_text()), str(path))
    except (OSError, ValueError, RunError, RecursionError):
        return None
    if stored.key != key or stored.incomplete is not None:
        return None
    stored.run = dataclasses.replace(stored.run, reused=True)
    return stored, path


@contextmanager
def claim(
    identity: Identity, key: str, results_dir: Path = RESULTS_DIR, refresh: bool = False
) -> Iterator[tuple[Result, Path] | None]:
    """Hold the lock of `identity`'s result file; yields the stored result that answers (`reuse`), or None.

    A second process that runs the same thing waits here for the first, then reuses what it wrote; with
    `refresh` it runs again after it (one at a time, so the file is never written twice at once). Only the
    runner (clipprobe.runner) claims results."""
    path = identity.path(results_dir)
    with exclusive(path, f"writing {path}"):
        yield None if refresh else reuse(identity, key, results_dir)


def read_results(results_dir: Path = RESULTS_DIR) -> list[Result]:
    """Every result record under `results_dir` (not the experiment records), in file-name order."""
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise RunError(f"No results folder at {results_dir}: run `clipprobe probe --task TASK` first")
    records = []
    for path in sorted(p for p in results_dir.glob("*/*.json") if p.parent.name != EXPERIMENTS_FOLDER):
        if not path.is_file():
            raise RunError(f"Result file {path} is not a file; move it out of {results_dir}")
        records.append(Result.from_json(read_json(path, "Result file"), f"Result file {path}"))
    if not records:
        raise RunError(f"No result files in {results_dir}: run `clipprobe probe --task TASK` first")
    return records


def read_json(path: Path, what: str) -> Any:
    """JSON from a file, or a RunError naming `what` and the file."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8-sig"))
    except (ValueError, RecursionError) as exc:
        raise RunError(f"{what} {path} is not valid JSON ({exc}); delete it or re-run what wrote it") from None
    except OSError as exc:
        raise RunError(f"{what} {path} cannot be read ({exc.strerror or exc})") from None


def write_document(path: Path, document: Any, version: int) -> Path:
    """Write a typed document of its own kind (a sensitivity score, an experiment table) with its schema version."""
    write_json(path, {"schema_version": version, **to_json(document)})
    return Path(path)


def read_document(path: Path, cls: type[R], version: int, what: str) -> R:
    """A document written by `write_document`, read as `cls`; another schema version is a RunError that says what
    to re-run, and a field of the wrong type names the file and the field."""
    document = read_json(Path(path), what)
    if not isinstance(document, dict) or document.get("schema_version") != version:
        found = document.get("schema_version") if isinstance(document, dict) else None
        raise RunError(f"{what} {path} has schema version {found}, expected {version}; re-run what wrote it")
    return from_json(cls, {k: v for k, v in document.items() if k != "schema_version"}, f"{what} {path}")
