"""A trained job: a network trained from scratch on the task's labels (clipprobe.baselines.registry.LabelBaseline),
its choice made on validation, its test predictions scored once, one record."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..baselines.registry import LabelBaseline
from ..core.kinds import RowKind
from ..data.task import Task
from ..probes.metrics import score_predictions
from ..results import Identity, Result, Weights
from .base import Job, Origin, data_info, record


@dataclass
class TrainedJob(Job):
    """`baseline` trained on `task` with `seed`; `option` is the baseline's own (an orbit group), `budget` overrides
    of its budget, `resize` the image geometry."""

    task: Task
    baseline: LabelBaseline
    seed: int
    origin: Origin
    option: str | None = None
    budget: Mapping[str, Any] | None = None
    resize: str | None = None
    kind: RowKind = field(default=RowKind.TRAINED, init=False)
    _fingerprint: str | None = field(default=None, init=False, repr=False)

    def resolve(self) -> None:
        if self._fingerprint is None:
            self.baseline.check_option(self.option, self.budget)
            self._fingerprint = self.task.source.fingerprint()

    def outline(self) -> str:
        row = self.baseline.row(self.option, self.budget, self.resize)
        return f"{self.task.name} | {row} | {self.baseline.method} | seed {self.seed} | trained on the labels"

    def identity(self) -> Identity:
        return Identity(
            self.task.name, self.baseline.row(self.option, self.budget, self.resize), self.baseline.method, self.seed
        )

    def key(self) -> str:
        self.resolve()
        task = self.task
        return self.identity().key(
            {
                "code": self.baseline.version,
                **self.baseline.settings(self.option, self.budget, self.resize),
                "data": [self._fingerprint, task.label, list(task.classes), [list(c) for c in task.where]],
            }
        )

    def compute(self, started: float) -> Result:
        trained = self.baseline.train(self.task, self.seed, self.option, self.budget, self.resize)
        # The model is fixed and its test predictions made: only now are the test labels read, once.
        test_labels = self.task.labels(self.task.source.load()["test"])
        return record(
            self,
            started,
            {
                "decode_seconds": trained.decode_seconds,
                "seconds_per_epoch": trained.seconds_per_epoch,
                "threads": trained.threads,
            },
            model=trained.model,
            pretrained=None,
            weights=Weights(kind="trained-on-task"),
            classes=list(self.task.classes),
            metrics=score_predictions(test_labels, trained.test_predictions, self.task.classes),
            predictions=[int(p) for p in trained.test_predictions],
            labels=[int(y) for y in test_labels],
            selection=trained.selection,
            data=data_info(self.task, trained.sizes),
            training=trained.training,
            incomplete=trained.incomplete,
        )
