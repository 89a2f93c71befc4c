"""The dashcam world as tasks: its data source, the world tasks with their zero-shot prompts and the visual pattern
each tests (the blind-pattern suite: one task or more for each of clipprobe.data.patterns.PATTERNS), and other
worlds written in a task's name (`traffic-light[light_size=0.03:0.06]`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..core.errors import UsageError
from ..data.patterns import PATTERNS
from ..data.readers import DataSource
from ..data.task import PROBE_SPLITS, Task, register_task
from .scene import ATTRIBUTES
from .world import WorldConfig, load_world, world_path

if TYPE_CHECKING:
    import datasets


@dataclass(frozen=True)
class DashcamWorld(DataSource):
    """The procedural dashcam world: every task over it shares the same images and features."""

    config: WorldConfig = WorldConfig()
    name: str = "dashcam"
    image_column: str = "image"

    def load(self) -> datasets.DatasetDict:
        return load_world(self.config)

    def fingerprint(self) -> str:
        # The generator is deterministic, so its config (and version) identify the pixels.
        return f"{self.name}-{self.config.fingerprint()}"

    def ready(self) -> bool:
        """Whether the world is rendered (listing its tasks' counts is then instant)."""
        return (world_path(self.config) / "dataset_dict.json").exists()

    def planned_sizes(self) -> dict[str, int]:
        """The split sizes the generator will render, known without rendering."""
        return {split: self.config.sizes[split] for split in PROBE_SPLITS}


# The world's image sizes, checked before anything is rendered: every image of a world is rendered on first use,
# and its time and disk grow with the square of the size.
MIN_IMAGE_SIZE, MAX_IMAGE_SIZE = 16, 512


def world_config(
    seed: int | None = None,
    image_size: int | None = None,
    light_size: tuple[float, float] | None = None,
    pedestrian_size: tuple[float, float] | None = None,
) -> WorldConfig | None:
    """A dashcam world with some settings changed, or None when nothing is (None means "default", as in timm)."""
    changes = {k: v for k, v in {"seed": seed, "image_size": image_size}.items() if v is not None}
    knobs = {
        k: (v[0], v[1])
        for k, v in {"light_size": light_size, "pedestrian_size": pedestrian_size}.items()
        if v is not None
    }
    if not changes and not knobs:
        return None
    for name, (low, high) in knobs.items():
        if not 0 < low <= high < 1:
            raise UsageError(
                f"--{name.replace('_', '-')} needs 0 < MIN <= MAX < 1 (fractions of the image), got {low}:{high}"
            )
    if not MIN_IMAGE_SIZE <= changes.get("image_size", 224) <= MAX_IMAGE_SIZE:
        raise UsageError(
            f"--image-size must be from {MIN_IMAGE_SIZE} to {MAX_IMAGE_SIZE} pixels, got {changes['image_size']}"
        )
    base = WorldConfig()
    return dataclasses.replace(
        base,
        seed=base.seed if seed is None else seed,
        image_size=base.image_size if image_size is None else image_size,
        knobs=dataclasses.replace(
            base.knobs,
            light_size=knobs.get("light_size", base.knobs.light_size),
            pedestrian_size=knobs.get("pedestrian_size", base.knobs.pedestrian_size),
        ),
    )


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


# Zero-shot prompts per world task: CLIP's way, several neutral templates around one phrase per class, averaged.
# Neither the templates nor the phrases copy any caption policy's wording (a test checks it), so that no policy
# is favoured by the prompts; the words for the classes themselves cannot be avoided.
ZERO_SHOT_TEMPLATES = (
    "a photo of {}.",
    "a picture of {}.",
    "an image showing {}.",
    "a blurry photo of {}.",
    "a street scene with {}.",
)
CLASS_PHRASES: dict[str, dict[str, str]] = {
    "traffic-light": {
        "red": "a red traffic signal",
        "amber": "an amber traffic signal",
        "green": "a green traffic signal",
    },
    "pedestrian": {"absent": "an empty sidewalk", "present": "a person walking on the sidewalk"},
    "pedestrian-side": {"left": "a person walking at the left edge", "right": "a person walking at the right edge"},
    "pedestrian-count": {"one": "one person", "two": "two people", "three": "three people"},
    "pedestrian-action": {
        "pavement": "a person standing at the roadside",
        "crossing": "a person walking across the street",
    },
    "car-colour": {c: f"{'an' if c[0] in 'aeiou' else 'a'} {c} vehicle" for c in ATTRIBUTES["car_colour"]},
    "car-facing": {"away": "the back of a vehicle", "towards": "the front of a vehicle"},
    "car-distance": {"near": "a vehicle at close range", "far": "a vehicle in the distance"},
    "lane-markings": {
        "none": "a road without painted lines",
        "dashed": "a road with a broken white line",
        "solid": "a road with a continuous white line",
    },
    "speed-limit": {v: f"a road sign showing the number {v}" for v in ATTRIBUTES["speed_limit"]},
    "clouds": {"none": "a cloudless sky", "some": "a partly cloudy sky", "overcast": "a fully clouded sky"},
    "time-of-day": {"day": "a road in bright daylight", "dusk": "a road at twilight", "night": "a road in darkness"},
}
WORLD_PROMPTS: dict[str, dict[str, tuple[str, ...]]] = {
    task: {c: tuple(template.format(phrase) for template in ZERO_SHOT_TEMPLATES) for c, phrase in phrases.items()}
    for task, phrases in CLASS_PHRASES.items()
}


# Tasks over the dashcam world: (name, label column, rows kept, visual pattern, description). Every pattern has a
# task (the blind-pattern suite); the sky and the time of day are context, not patterns.
_PEDESTRIAN = (("pedestrian", "present"),)
WORLD_TASKS = (
    (
        "traffic-light",
        "light_state",
        (("light", "present"),),
        "state and condition",
        "State of the traffic light, in scenes that have one (salient captions never mention it)",
    ),
    (
        "pedestrian",
        "pedestrian",
        (),
        "presence of specific features",
        "Is there a pedestrian near the edge of the frame? (never captioned)",
    ),
    (
        "pedestrian-side",
        "pedestrian_side",
        _PEDESTRIAN,
        "positional and relational context",
        "Which side the pedestrian is on: needs where things are, not only what",
    ),
    (
        "pedestrian-action",
        "pedestrian_action",
        _PEDESTRIAN,
        "positional and relational context",
        "Is the pedestrian on the pavement or stepping into the road?",
    ),
    (
        "pedestrian-count",
        "pedestrian_count",
        _PEDESTRIAN,
        "quantity and count",
        "How many pedestrians stand together: one, two or three",
    ),
    (
        "car-colour",
        "car_colour",
        (),
        "colour and appearance",
        "Colour of the car in front: the control, since the captions do name it",
    ),
    (
        "car-facing",
        "car_facing",
        (),
        "orientation and direction",
        "Does the car ahead face away from us, or towards us (oncoming)?",
    ),
    (
        "car-distance",
        "car_distance",
        (),
        "viewpoint and perspective",
        "Is the car ahead near or far?",
    ),
    (
        "lane-markings",
        "lane_markings",
        (),
        "structural and physical characteristics",
        "The centre line: none, dashed or solid (may we overtake?)",
    ),
    (
        "speed-limit",
        "speed_limit",
        (),
        "text",
        "The number on the speed-limit sign: 30, 50 or 70 (drawn digits)",
    ),
    ("clouds", "clouds", (), None, "Clear, some clouds or overcast (never captioned)"),
    ("time-of-day", "time_of_day", (), None, "Day, dusk or night (never captioned)"),
)
# The suite: the tasks that test a pattern, in the patterns' order.
SUITE_TASKS = tuple(
    name
    for pattern in PATTERNS
    for name, _label, _where, task_pattern, _description in WORLD_TASKS
    if task_pattern == pattern
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


for _name, _label, _where, _pattern, _description in WORLD_TASKS:
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
            pattern=_pattern,
        )
    )
