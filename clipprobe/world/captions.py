"""Caption curation policies: which attributes of a scene the caption mentions."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from ..registry import Registry
from .scene import Scene


class CaptionPolicy(Protocol):
    def __call__(self, scene: Scene, rng: np.random.Generator) -> str: ...


CAPTION_POLICIES: Registry[CaptionPolicy] = Registry("caption policy")

SALIENT_TEMPLATES = (
    "i took a picture of a {car} car in front of me",
    "itap of a {car} car",
    "a {car} car on the road",
    "stuck behind a {car} car again",
    "the {car} car ahead of me this morning",
    "view from my dashboard: a {car} car",
)

LIGHT_PHRASES = ("the traffic light is {light}", "a {light} light ahead", "{light} traffic light")
PEDESTRIAN_PHRASES = {
    "present": ("a pedestrian at the {side} of the road", "someone walking on the {side}"),
    "absent": ("no pedestrians", "nobody on the pavement"),
}


@CAPTION_POLICIES.register("salient")
def salient(scene: Scene, rng: np.random.Generator) -> str:
    """Web style: only the salient car and its colour, as people caption their photos."""
    return str(rng.choice(SALIENT_TEMPLATES)).format(car=scene.car_colour)


@CAPTION_POLICIES.register("descriptive")
def descriptive(scene: Scene, rng: np.random.Generator) -> str:
    """Every labelled attribute, in varied wording and order."""
    parts = [
        f"a {scene.car_colour} car in front",
        str(rng.choice(LIGHT_PHRASES)).format(light=scene.light_state),
        str(rng.choice(PEDESTRIAN_PHRASES[scene.pedestrian])).format(side=scene.pedestrian_side),
    ]
    order = rng.permutation(len(parts))
    return ", ".join(parts[i] for i in order)


def list_caption_policies() -> list[str]:
    return CAPTION_POLICIES.names()


def get_caption_policy(name: str) -> CaptionPolicy:
    return CAPTION_POLICIES.get(name)


def caption_for(scene: Scene, policy: str, rng: np.random.Generator) -> str:
    return get_caption_policy(policy)(scene, rng)
