"""A job: one row of a results table, declared and keyed. The runner (clipprobe.runner) is the only thing that runs
jobs, always in the same steps: resolve -> key -> claim (lock, reuse) -> compute -> record.

A job declares its kind of row (clipprobe.core.kinds.RowKind) and where it comes from in the plan (`Origin`: which
model, which seed, which layer, which baseline), so that whoever reads the records (the report, an experiment) never
guesses a row's kind from its name."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from ..core.kinds import RowKind
from ..data.task import Task
from ..results import DataInfo, Identity, Provenance, Result, RunInfo, SkippedFiles


@dataclass(frozen=True)
class Origin:
    """Where a job sits in its run plan: the index of the model it depends on (None: it depends on none), the seed,
    the layer it reads (None: no layers), the baseline that made it (None: the model's own probe) and its option."""

    model: int | None
    seed: int
    layer: str | None
    baseline: str | None = None
    option: str | None = None


class Job(ABC):
    """One row of a table. `resolve` does what the key needs (weights found, data fingerprinted, names made: no
    training, no extraction); `identity` and `key` then exist; `compute` does the work and returns the record."""

    kind: RowKind
    task: Task
    origin: Origin

    @abstractmethod
    def resolve(self) -> None:
        """Everything the identity and key need; cheap next to `compute`, and idempotent."""

    @abstractmethod
    def identity(self) -> Identity: ...

    @abstractmethod
    def key(self) -> str:
        """A hash of the identity and of every input that decides the numbers (features, data, settings, code)."""

    @abstractmethod
    def compute(self, started: float) -> Result:
        """Do the work (extract, fit, train) and return the record; test labels are read only to score."""

    @abstractmethod
    def outline(self) -> str:
        """What the job is, from the plan alone (no weights found, no data read): a dry run's line."""

    def describe(self) -> str:
        identity = self.identity()
        precision = f" | {identity.precision}" if identity.precision is not None else ""
        return f"{identity.task} | {identity.representation} | {identity.method}{precision}"


def typed(config: Any) -> str:
    """A model as the user gave it, for `outline`: "mini-clip@dashcam-salient [tokens, orbit:hflip]"."""
    from ..features.weights import default_pretrained

    weights = config.pretrained or default_pretrained(config.model) or "open_clip's default"
    name = "pixels" if config.extractor == "pixels" else f"{config.model}@{weights}"
    tags = [
        t
        for t in (config.layer if config.layer != "embedding" else None, config.orbit and f"orbit:{config.orbit}")
        if t
    ]
    tags += [f"resize={config.resize}"] if config.resize else []
    return name + (f" [{', '.join(tags)}]" if tags else "")


def data_info(task: Task, sizes: dict[str, int]) -> DataInfo:
    """What a record says about its data: the source, its location and fingerprint, the task's label and filter,
    split sizes, and the unreadable files left out."""
    skipped = task.source.skipped()
    return DataInfo(
        source=task.source.name,
        location=task.source.location(),
        fingerprint=task.source.fingerprint(),
        label=task.label,
        where=[list(condition) for condition in task.where],
        sizes={split: int(n) for split, n in sizes.items()},
        skipped=SkippedFiles(count=int(skipped["count"]), files=list(skipped["files"])),
        duplicates=task.source.duplicates(),
    )


def record(job: Job, started: float, run: dict[str, Any] | None = None, **fields: Any) -> Result:
    """The one builder of a job's record: identity, key, kind, provenance and run section filled in the same way."""
    identity = job.identity()
    return Result(
        task=identity.task,
        representation=identity.representation,
        method=identity.method,
        seed=identity.seed,
        shots=identity.shots,
        precision=identity.precision,
        key=job.key(),
        kind=job.kind,
        provenance=Provenance.now(),
        run=RunInfo.since(started, **(run or {})),
        **fields,
    )
