"""Task registry: a name -> where the images come from, which column is the label, and its classes."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Mapping, Protocol

import datasets
import numpy as np

from .errors import UsageError
from .registry import Registry
from .world import WorldConfig, load_world
from .world.scene import ATTRIBUTES

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
            "splits": {split: int(c.sum()) for split, c in counts.items()},
            "class_counts": {split: dict(zip(self.classes, map(int, c), strict=True)) for split, c in counts.items()},
        }


TASKS: Registry[Task] = Registry("task")


def world_config(
    seed: int | None = None,
    image_size: int | None = None,
    light_size: tuple[float, float] | None = None,
    pedestrian_size: tuple[float, float] | None = None,
) -> WorldConfig | None:
    """A dashcam world with some settings changed, or None when nothing is (None means "default", as in timm)."""
    changes = {k: v for k, v in {"seed": seed, "image_size": image_size}.items() if v is not None}
    knobs = {k: tuple(v) for k, v in {"light_size": light_size, "pedestrian_size": pedestrian_size}.items() if v is not None}
    if not changes and not knobs:
        return None
    for name, (low, high) in knobs.items():
        if not 0 < low <= high < 1:
            raise UsageError(f"--{name.replace('_', '-')} needs 0 < MIN <= MAX < 1 (fractions of the image), got {low}:{high}")
    if changes.get("image_size", 224) < 16:
        raise UsageError(f"--image-size must be at least 16, got {changes['image_size']}")
    base = WorldConfig()
    return dataclasses.replace(base, **changes, knobs=dataclasses.replace(base.knobs, **knobs))


def with_world(task: Task, world: WorldConfig | None) -> Task:
    """The same task over another dashcam world; its name records what changed, so results stay apart."""
    if world is None:
        return task
    if not isinstance(task.source, DashcamWorld):
        raise UsageError(f"World options apply to dashcam-world tasks only; '{task.name}' reads '{task.source.name}'")
    base, changed = WorldConfig(), []
    for name in ("seed", "image_size"):
        if getattr(world, name) != getattr(base, name):
            changed.append(f"{name}={getattr(world, name)}")
    for name in ("light_size", "pedestrian_size"):
        if getattr(world.knobs, name) != getattr(base.knobs, name):
            low, high = getattr(world.knobs, name)
            changed.append(f"{name}={low:g}:{high:g}")
    name = f"{task.name}[{','.join(changed)}]" if changed else task.name
    return dataclasses.replace(task, name=name, source=DashcamWorld(world))


def register_task(task: Task, replace: bool = False) -> Task:
    return TASKS.register(task.name, task, replace=replace)


def list_tasks(pattern: str | None = None) -> list[str]:
    return TASKS.names(pattern)


def get_task(name: str) -> Task:
    return TASKS.get(name)


# Users' data schemes, task files, and the built-in tasks over real photos (traffic-light-crops).
from . import sources  # noqa: E402,F401  (imports this module back: everything it uses is defined above)


DASHCAM = DashcamWorld()

# Zero-shot prompts per world task, written as a CLIP user would write them, before seeing any result.
WORLD_PROMPTS: dict[str, dict[str, tuple[str, ...]]] = {
    "traffic-light": {c: (f"a dashcam photo with {'an' if c == 'amber' else 'a'} {c} traffic light",
                          f"the traffic light ahead is {c}") for c in ATTRIBUTES["light_state"]},
    "pedestrian": {"absent": ("a dashcam photo of a road with no pedestrians", "nobody on the pavement"),
                   "present": ("a dashcam photo of a pedestrian by the road", "a person on the pavement")},
    "pedestrian-side": {side: (f"a dashcam photo with a pedestrian on the {side}", f"a person on the {side} of the road")
                        for side in ATTRIBUTES["pedestrian_side"]},
    "car-colour": {c: (f"a dashcam photo of a {c} car", f"a {c} car in front") for c in ATTRIBUTES["car_colour"]},
    "clouds": {"none": ("a dashcam photo under a clear sky",), "some": ("a dashcam photo with a few clouds in the sky",),
               "overcast": ("a dashcam photo under an overcast sky",)},
    "time-of-day": {t: (f"a dashcam photo taken {when}",) for t, when in
                    (("day", "during the day"), ("dusk", "at dusk"), ("night", "at night"))},
}

# Tasks over the dashcam world: (name, label column, rows kept, description).
WORLD_TASKS = (
    ("traffic-light", "light_state", (("light", "present"),),
     "State of the traffic light, in scenes that have one (salient captions never mention it)"),
    ("pedestrian", "pedestrian", (), "Is there a pedestrian near the edge of the frame? (never captioned)"),
    ("pedestrian-side", "pedestrian_side", (("pedestrian", "present"),),
     "Which side the pedestrian is on: needs where things are, not only what"),
    ("car-colour", "car_colour", (), "Colour of the car in front: the control, since the captions do name it"),
    ("clouds", "clouds", (), "Clear, some clouds or overcast (never captioned)"),
    ("time-of-day", "time_of_day", (), "Day, dusk or night (never captioned)"),
)
for _name, _label, _where, _description in WORLD_TASKS:
    register_task(Task(_name, _description, DASHCAM, _label, ATTRIBUTES[_label], where=_where, prompts=WORLD_PROMPTS[_name]))
