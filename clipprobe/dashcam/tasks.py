"""The dashcam world as tasks: its data source, the six world tasks with their zero-shot prompts, and other worlds
written in a task's name (`traffic-light[light_size=0.03:0.06]`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..core.errors import UsageError
from ..data.task import Task, register_task
from .scene import ATTRIBUTES
from .world import WorldConfig, load_world

if TYPE_CHECKING:
    import datasets


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


def world_config(
    seed: int | None = None,
    image_size: int | None = None,
    light_size: tuple[float, float] | None = None,
    pedestrian_size: tuple[float, float] | None = None,
) -> WorldConfig | None:
    """A dashcam world with some settings changed, or None when nothing is (None means "default", as in timm)."""
    changes = {k: v for k, v in {"seed": seed, "image_size": image_size}.items() if v is not None}
    knobs = {
        k: tuple(v) for k, v in {"light_size": light_size, "pedestrian_size": pedestrian_size}.items() if v is not None
    }
    if not changes and not knobs:
        return None
    for name, (low, high) in knobs.items():
        if not 0 < low <= high < 1:
            raise UsageError(
                f"--{name.replace('_', '-')} needs 0 < MIN <= MAX < 1 (fractions of the image), got {low}:{high}"
            )
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


DASHCAM = DashcamWorld()


# Zero-shot prompts per world task, written as a CLIP user would write them, before seeing any result.
WORLD_PROMPTS: dict[str, dict[str, tuple[str, ...]]] = {
    "traffic-light": {
        c: (
            f"a dashcam photo with {'an' if c == 'amber' else 'a'} {c} traffic light",
            f"the traffic light ahead is {c}",
        )
        for c in ATTRIBUTES["light_state"]
    },
    "pedestrian": {
        "absent": ("a dashcam photo of a road with no pedestrians", "nobody on the pavement"),
        "present": ("a dashcam photo of a pedestrian by the road", "a person on the pavement"),
    },
    "pedestrian-side": {
        side: (f"a dashcam photo with a pedestrian on the {side}", f"a person on the {side} of the road")
        for side in ATTRIBUTES["pedestrian_side"]
    },
    "car-colour": {c: (f"a dashcam photo of a {c} car", f"a {c} car in front") for c in ATTRIBUTES["car_colour"]},
    "clouds": {
        "none": ("a dashcam photo under a clear sky",),
        "some": ("a dashcam photo with a few clouds in the sky",),
        "overcast": ("a dashcam photo under an overcast sky",),
    },
    "time-of-day": {
        t: (f"a dashcam photo taken {when}",)
        for t, when in (("day", "during the day"), ("dusk", "at dusk"), ("night", "at night"))
    },
}


# Tasks over the dashcam world: (name, label column, rows kept, description).
WORLD_TASKS = (
    (
        "traffic-light",
        "light_state",
        (("light", "present"),),
        "State of the traffic light, in scenes that have one (salient captions never mention it)",
    ),
    ("pedestrian", "pedestrian", (), "Is there a pedestrian near the edge of the frame? (never captioned)"),
    (
        "pedestrian-side",
        "pedestrian_side",
        (("pedestrian", "present"),),
        "Which side the pedestrian is on: needs where things are, not only what",
    ),
    ("car-colour", "car_colour", (), "Colour of the car in front: the control, since the captions do name it"),
    ("clouds", "clouds", (), "Clear, some clouds or overcast (never captioned)"),
    ("time-of-day", "time_of_day", (), "Day, dusk or night (never captioned)"),
)


# The options a world task takes in brackets, and how each is parsed.
WORLD_OPTIONS = ("seed", "image_size", "light_size", "pedestrian_size")


def size_range(key: str, value: str) -> tuple[float, float]:
    try:
        low, high = (float(part) for part in value.split(":"))
    except ValueError:
        raise UsageError(f"{key} expects MIN:MAX fractions of the image, e.g. 0.02:0.05; got '{value}'") from None
    return low, high


def _integer(key: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise UsageError(f"{key} expects an integer, got '{value}'") from None


def world_variant(task: Task, options: dict[str, str]) -> Task:
    """`traffic-light[seed=1,light_size=0.03:0.06]`: the task over the world with those settings."""
    unknown = sorted(set(options) - set(WORLD_OPTIONS))
    if unknown:
        raise UsageError(f"Unknown option '{unknown[0]}' of task '{task.name}'. Available: {', '.join(WORLD_OPTIONS)}")
    world = world_config(
        seed=_integer("seed", options["seed"]) if "seed" in options else None,
        image_size=_integer("image_size", options["image_size"]) if "image_size" in options else None,
        light_size=size_range("light_size", options["light_size"]) if "light_size" in options else None,
        pedestrian_size=size_range("pedestrian_size", options["pedestrian_size"])
        if "pedestrian_size" in options
        else None,
    )
    return with_world(task, world)


for _name, _label, _where, _description in WORLD_TASKS:
    register_task(
        Task(
            _name,
            _description,
            DASHCAM,
            _label,
            ATTRIBUTES[_label],
            where=_where,
            prompts=WORLD_PROMPTS[_name],
            variant=world_variant,
        )
    )
