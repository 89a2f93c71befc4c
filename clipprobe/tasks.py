"""Task registry: a name -> where the images come from, which column is the label, and its classes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import datasets
import numpy as np

from .errors import UsageError
from .registry import Registry
from .storage import stable_hash
from .world import WorldConfig, load_world
from .world.dataset import class_counts

PROBE_SPLITS = ("train", "validation", "test")


class DataSource(Protocol):
    """Images plus labels in train / validation / test splits, with a stable fingerprint."""

    name: str
    image_column: str

    def load(self) -> datasets.DatasetDict: ...

    def fingerprint(self) -> str: ...


@dataclass(frozen=True)
class DashcamWorld:
    """The procedural dashcam world: every task over it shares the same images and features."""

    config: WorldConfig = WorldConfig()
    name: str = "dashcam"
    image_column: str = "image"

    def load(self) -> datasets.DatasetDict:
        return load_world(self.config)

    def fingerprint(self) -> str:
        # The generator is deterministic, so its config (and version) identify the pixels.
        return f"{self.name}-{self.config.fingerprint()}"


@dataclass(frozen=True)
class HuggingFaceSource:
    """A `datasets` DatasetDict: a folder written by `save_to_disk`, or anything `load_dataset` reads
    (a hub name where there is network or a local cache, or a local loading script / data folder)."""

    path: str
    config_name: str | None = None
    image_column: str = "image"
    name: str = ""

    def load(self) -> datasets.DatasetDict:
        from .errors import RunError

        try:
            if (Path(self.path) / "dataset_dict.json").is_file():
                return datasets.load_from_disk(self.path)
            return datasets.load_dataset(self.path, self.config_name)
        except Exception as exc:  # datasets raises many types; the user needs the path and the reason
            raise RunError(f"Cannot load dataset {self.path}: {exc}") from exc

    def fingerprint(self) -> str:
        # `datasets` fingerprints every split from its content and history; combine them.
        data = self.load()
        return stable_hash({split: data[split]._fingerprint for split in sorted(data)})


@dataclass(frozen=True)
class Task:
    """A downstream question asked of an embedding: predict `label` from the image."""

    name: str
    description: str
    source: DataSource
    label: str
    classes: tuple[str, ...]

    def labels(self, split: datasets.Dataset) -> np.ndarray:
        if self.label not in split.column_names:
            raise UsageError(
                f"Task '{self.name}': no label column '{self.label}'. Columns: {', '.join(split.column_names)}"
            )
        return np.asarray(split[self.label], dtype=np.int64)

    def summary(self) -> dict:
        data = self.source.load()
        return {
            "task": self.name,
            "description": self.description,
            "source": self.source.name,
            "classes": list(self.classes),
            "splits": {split: len(data[split]) for split in PROBE_SPLITS},
            "class_counts": {split: class_counts(data[split], self.label) for split in PROBE_SPLITS},
        }


TASKS: Registry[Task] = Registry("task")


def register_task(task: Task, replace: bool = False) -> Task:
    return TASKS.register(task.name, task, replace=replace)


def list_tasks(pattern: str | None = None) -> list[str]:
    return TASKS.names(pattern)


def get_task(name: str) -> Task:
    return TASKS.get(name)


DASHCAM = DashcamWorld()

register_task(
    Task(
        name="traffic-light",
        description="Colour of the small, off-centre traffic light (the captions never mention it)",
        source=DASHCAM,
        label="light_state",
        classes=("red", "amber", "green"),
    )
)
register_task(
    Task(
        name="pedestrian",
        description="Is a pedestrian standing near the edge of the frame? (never captioned)",
        source=DASHCAM,
        label="pedestrian",
        classes=("absent", "present"),
    )
)
register_task(
    Task(
        name="car-colour",
        description="Colour of the car in front: the control, since the captions do name it",
        source=DASHCAM,
        label="car_colour",
        classes=("black", "white", "red", "blue", "silver"),
    )
)
