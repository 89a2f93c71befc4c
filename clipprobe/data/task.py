"""Tasks: a name -> where the images come from, which column is the label, and its classes; the registry of tasks."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core.errors import UsageError
from ..core.paths import name_problem
from ..core.registry import Registry
from .patterns import PATTERNS

if TYPE_CHECKING:
    import datasets

    from .readers.base import DataSource

PROBE_SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class Task:
    """A downstream question asked of an embedding: predict `label` from the image.

    `where` keeps only the rows whose columns have the given class names (e.g. scenes with a light);
    features are still extracted for every row, so all tasks over one source share one cache entry.
    `prompts` (class -> texts) are what zero-shot classification compares images with."""

    name: str
    description: str
    source: DataSource
    label: str
    classes: tuple[str, ...]
    where: tuple[tuple[str, str], ...] = ()
    prompts: Mapping[str, tuple[str, ...]] | None = None
    # How the task takes options written in its name, `NAME[key=value,...]` (e.g. another dashcam world):
    # (task, {key: value}) -> the changed task, whose name records the options. None: it takes none.
    variant: Callable[[Task, dict[str, str]], Task] | None = None
    # The visual pattern the task tests, one of clipprobe.data.patterns.PATTERNS (None: it tests none of them).
    pattern: str | None = None

    def __post_init__(self) -> None:
        if self.pattern is not None and self.pattern not in PATTERNS:
            raise UsageError(f"Task '{self.name}': unknown pattern '{self.pattern}'. Available: {', '.join(PATTERNS)}")
        problem = name_problem(self.name)
        if problem is not None:
            raise UsageError(
                f"Task name {self.name!r} {problem}: a task's name is its results folder. Name it with --name NAME "
                "(in a task file: name = ...)"
            )

    def _check_column(self, split: datasets.Dataset, column: str) -> None:
        if column not in split.column_names:
            raise UsageError(f"Task '{self.name}': no column '{column}'. Columns: {', '.join(split.column_names)}")

    def rows(self, split: datasets.Dataset) -> np.ndarray:
        """Indices of the rows this task uses."""
        keep = np.ones(len(split), dtype=bool)
        for column, value in self.where:
            self._check_column(split, column)
            keep &= np.asarray(split[column]) == split.features[column].str2int(value)
        return np.flatnonzero(keep)

    def labels(self, split: datasets.Dataset) -> np.ndarray:
        """Labels of the rows this task uses, in `rows` order."""
        self._check_column(split, self.label)
        return np.asarray(split[self.label], dtype=np.int64)[self.rows(split)]

    def summary(self) -> dict:
        data = self.source.load()
        counts = {split: np.bincount(self.labels(data[split]), minlength=len(self.classes)) for split in PROBE_SPLITS}
        return {
            "task": self.name,
            "description": self.description,
            "source": self.source.name,
            "classes": list(self.classes),
            "pattern": self.pattern,
            "splits": {split: int(c.sum()) for split, c in counts.items()},
            "class_counts": {split: dict(zip(self.classes, map(int, c), strict=True)) for split, c in counts.items()},
        }


def overview(task: Task) -> dict[str, Any]:
    """What `clipprobe tasks` lists, without rendering or decoding anything: the task's summary when its data is at
    hand; for data still to be generated, the sizes the generator will make (`exact` False when the task keeps only
    some of those rows) and no class counts."""
    if task.source.ready():
        return {**task.summary(), "exact": True}
    return {
        "task": task.name,
        "description": task.description,
        "source": task.source.name,
        "classes": list(task.classes),
        "pattern": task.pattern,
        "splits": task.source.planned_sizes(),
        "class_counts": None,
        "exact": not task.where,
    }


TASKS: Registry[Task] = Registry("task")
# NAME[key=value,...]: a registered task with options (see Task.variant).
_WITH_OPTIONS = re.compile(r"(?P<name>[^\[\]]+)\[(?P<options>[^\[\]]*)\]")


def register_task(task: Task, replace: bool = False) -> Task:
    return TASKS.register(task.name, task, replace=replace)


def list_tasks(pattern: str | None = None) -> list[str]:
    return TASKS.names(pattern)


def get_task(name: str) -> Task:
    """A registered task by name; `NAME[key=value,...]` is the task NAME with options (e.g.
    `traffic-light[light_size=0.03:0.06]`, another dashcam world), as result tables name it."""
    match = _WITH_OPTIONS.fullmatch(name)
    if match is None or name in TASKS:
        return TASKS.get(name)
    task = TASKS.get(match["name"])
    if task.variant is None:
        raise UsageError(f"Task '{task.name}' takes no options in brackets (got '{name}')")
    options = {}
    for part in filter(None, (p.strip() for p in match["options"].split(","))):
        key, equals, value = part.partition("=")
        if not equals or not key.strip() or not value.strip():
            raise UsageError(f"Task option '{part}' in '{name}' is not KEY=VALUE")
        options[key.strip()] = value.strip()
    return task.variant(task, options)


def with_strict(task: Task) -> Task:
    """The same task, failing on the first unreadable image instead of skipping it (for sources that skip any)."""
    return dataclasses.replace(task, source=task.source.strictly())
