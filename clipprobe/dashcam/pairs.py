"""Counterfactual pairs: the same scene, every random draw kept, with one attribute changed."""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
import numpy as np
from PIL import Image, ImageDraw

from ..core import paths
from ..core.errors import UsageError
from ..core.progress import progress_bar
from ..core.registry import Registry
from ..core.storage import atomic_dir
from .scene import ATTRIBUTES, TILT_MARGIN, Scene, car_box, lane_box, light_box, pedestrian_boxes, sign_box
from .world import WorldConfig, encode, quiet_datasets, scene_at

# Pairs are drawn from their own stream, never from the images a probe trains or tests on.
PAIRS_STREAM = "test"
# Bump when the same world and n would render other pairs; it names the pairs' folder, so older pairs are not reused.
# 2: the counterfactual value is drawn uniformly among the other values (it was the next value in a fixed cycle,
# which left most value changes of the car's colour out).
# 3: the blind-pattern suite: a counterfactual for every pattern's attribute (the world's generator version 3); a
# region is one box or more (an attribute that moves a thing, such as the pedestrian's side, changes two places).
PAIRS_VERSION = 3
Box = tuple[float, float, float, float]
Region = tuple[Box, ...] | None


@dataclass(frozen=True)
class Counterfactual:
    """How to flip one attribute of a scene, and the part of the frame that flip may change."""

    attribute: str
    # Whether the scene can be flipped at all (e.g. no light state to change when there is no light).
    applies: Callable[[Scene], bool]
    # Boxes (x0, y0, x1, y1) in fractions of the frame, before camera tilt; None means the whole frame.
    region: Callable[[Scene], Region]

    def flip(self, scene: Scene, rng: np.random.Generator) -> Scene:
        """The scene with the attribute moved to a value drawn uniformly among its other values, so that the
        pairs cover every value change (each unordered change about equally often when the values are)."""
        current = getattr(scene, self.attribute)
        others = [value for value in ATTRIBUTES[self.attribute] if value != current]
        changed: dict[str, Any] = {self.attribute: others[int(rng.integers(len(others)))]}
        return dataclasses.replace(scene, **changed)


COUNTERFACTUALS: Registry[Counterfactual] = Registry("counterfactual attribute")


def _grow(box, margin):
    x0, y0, x1, y1 = box
    return (x0 - margin, y0 - margin, x1 + margin, y1 + margin)


def _over_values(attribute: str, boxes: Callable[[Scene], list[Box]]) -> Callable[[Scene], Region]:
    """The region of an attribute that moves or resizes what it decides: its boxes at every value it can take."""

    def region(scene: Scene) -> Region:
        values: list[dict[str, Any]] = [{attribute: v} for v in ATTRIBUTES[attribute]]
        return tuple(_grow(box, 0.02) for changed in values for box in boxes(dataclasses.replace(scene, **changed)))

    return region


def _one(box: Callable[[Scene], Box], margin: float = 0.02) -> Callable[[Scene], Region]:
    return lambda scene: (_grow(box(scene), margin),)


def _pedestrian_present(scene: Scene) -> bool:
    return scene.pedestrian == "present"


COUNTERFACTUALS.register(
    "traffic-light",
    Counterfactual(
        "light_state",
        applies=lambda s: s.light == "present",
        # The lit lamp's night-time halo reaches a little beyond the housing.
        region=lambda s: (_grow(light_box(s), light_box(s)[2] - light_box(s)[0]),),
    ),
)
COUNTERFACTUALS.register(
    "pedestrian",
    Counterfactual(
        "pedestrian", applies=lambda s: True, region=lambda s: tuple(_grow(b, 0.02) for b in pedestrian_boxes(s))
    ),
)
COUNTERFACTUALS.register(
    "pedestrian-count",
    Counterfactual(
        "pedestrian_count", applies=_pedestrian_present, region=_over_values("pedestrian_count", pedestrian_boxes)
    ),
)
COUNTERFACTUALS.register(
    "pedestrian-side",
    Counterfactual(
        "pedestrian_side", applies=_pedestrian_present, region=_over_values("pedestrian_side", pedestrian_boxes)
    ),
)
COUNTERFACTUALS.register(
    "pedestrian-action",
    Counterfactual(
        "pedestrian_action", applies=_pedestrian_present, region=_over_values("pedestrian_action", pedestrian_boxes)
    ),
)
COUNTERFACTUALS.register(
    "car-colour",
    Counterfactual("car_colour", applies=lambda s: True, region=_one(car_box)),
)
COUNTERFACTUALS.register(
    "car-facing",
    Counterfactual("car_facing", applies=lambda s: True, region=_one(car_box)),
)
COUNTERFACTUALS.register(
    "car-distance",
    Counterfactual("car_distance", applies=lambda s: True, region=_over_values("car_distance", lambda s: [car_box(s)])),
)
COUNTERFACTUALS.register(
    "lane-markings",
    Counterfactual("lane_markings", applies=lambda s: True, region=_one(lane_box, 0.0)),
)
COUNTERFACTUALS.register(
    "speed-limit",
    Counterfactual("speed_limit", applies=lambda s: True, region=_one(sign_box)),
)
COUNTERFACTUALS.register(
    "time-of-day",
    Counterfactual("time_of_day", applies=lambda s: True, region=lambda s: None),
)


def list_counterfactuals() -> list[str]:
    return COUNTERFACTUALS.names()


def region_mask(scene: Scene, region: Region, size: int) -> np.ndarray:
    """Boolean mask of the region's boxes in the final image: drawn, tilted and cropped exactly as the scene is."""
    if region is None:
        return np.ones((size, size), dtype=bool)
    canvas = int(np.ceil(size * TILT_MARGIN))
    offset = (canvas - size) / 2
    mask = Image.new("L", (canvas, canvas), 0)
    for x0, y0, x1, y1 in region:
        ImageDraw.Draw(mask).rectangle(
            [offset + x0 * size, offset + y0 * size, offset + x1 * size, offset + y1 * size], fill=255
        )
    mask = mask.rotate(scene.tilt_degrees, resample=Image.Resampling.BILINEAR, center=(canvas / 2, canvas / 2))
    mask = mask.crop((int(offset), int(offset), int(offset) + size, int(offset) + size))
    return np.asarray(mask) > 0


def make_pairs(attribute: str, n: int = 200, config: WorldConfig | None = None, out: Path | None = None) -> Path:
    """Render `n` pairs (image_a, image_b) differing only in `attribute`; saved as a `datasets` Dataset.

    The scene's own generator, after it has drawn the scene, draws the counterfactual value, so each pair is
    reproducible from (world, index) alone."""
    counterfactual = COUNTERFACTUALS.get(attribute)
    if n < 1:
        raise UsageError(f"--n must be at least 1, got {n}")
    config = config or WorldConfig()
    out = (
        Path(out)
        if out is not None
        else (paths.worlds_dir() / f"pairs-v{PAIRS_VERSION}-{attribute}-{config.fingerprint()}-{n}")
    )
    if (out / "dataset_info.json").exists():
        return out
    rows: dict[str, list[Any]] = {
        "image_a": [],
        "image_b": [],
        "value_a": [],
        "value_b": [],
        "index": [],
        "region": [],
    }
    index = 0
    with progress_bar() as progress:
        job = progress.add_task(f"Rendering {attribute} pairs", total=n)
        while len(rows["index"]) < n:
            scene, rng = scene_at(config, PAIRS_STREAM, index)
            if counterfactual.applies(scene):
                flipped = counterfactual.flip(scene, rng)
                rows["image_a"].append({"bytes": encode(scene, config), "path": None})
                rows["image_b"].append({"bytes": encode(flipped, config), "path": None})
                rows["value_a"].append(getattr(scene, counterfactual.attribute))
                rows["value_b"].append(getattr(flipped, counterfactual.attribute))
                rows["index"].append(index)
                region = counterfactual.region(scene)
                # Each box's four corners in turn (the whole frame: one box).
                rows["region"].append(
                    [v for box in region for v in box] if region is not None else [0.0, 0.0, 1.0, 1.0]
                )
                progress.advance(job)
            index += 1
    features = datasets.Features(
        {
            "image_a": datasets.Image(),
            "image_b": datasets.Image(),
            "value_a": datasets.Value("string"),
            "value_b": datasets.Value("string"),
            "index": datasets.Value("int64"),
            "region": datasets.Sequence(datasets.Value("float64")),
        }
    )
    with atomic_dir(out) as tmp, quiet_datasets():
        datasets.Dataset.from_dict(rows, features=features).save_to_disk(str(tmp))
    return out


def decode(image_bytes: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(image_bytes)).convert("RGB"))
