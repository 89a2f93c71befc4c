"""Caption curation policies: which attributes of a scene a caption mentions.

The claim under test is that the curation of captions defines the invariances, so a policy is a
named, registered function of the scene. Parameterised families are written `NAME:ARG`
(`mixed:0.1`, `attribute-dropout:light_state`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypedDict

import numpy as np

from ..core.errors import UsageError
from ..core.registry import Registry
from .scene import Scene


class CaptionPolicy(Protocol):
    def __call__(self, scene: Scene, rng: np.random.Generator) -> str: ...


# A family takes the text after the colon ("" when there is none) and returns a policy.
CAPTION_POLICIES: Registry[Callable[[str], CaptionPolicy]] = Registry("caption policy")

SALIENT_TEMPLATES = (
    "i took a picture of a {car} car in front of me",
    "itap of a {car} car",
    "a {car} car on the road",
    "stuck behind a {car} car again",
    "the {car} car ahead of me this morning",
    "view from my dashboard: a {car} car",
    "following a {car} car",
    "{car} car in traffic",
)

# Phrases per attribute value for descriptive captions; one is picked at random per image.
PHRASES: dict[str, Callable[[Scene], tuple[str, ...]]] = {
    "car_colour": lambda s: (
        f"a {s.car_colour} car in front",
        f"behind a {s.car_colour} car",
        f"the car ahead is {s.car_colour}",
    ),
    "light_state": lambda s: (
        (f"the traffic light is {s.light_state}", f"a {s.light_state} light ahead", f"{s.light_state} traffic light")
        if s.light == "present"
        else ("no traffic light", "no lights in view")
    ),
    "pedestrian": lambda s: (
        (
            f"a pedestrian {'crossing' if s.pedestrian_action == 'crossing' else 'standing'} on the {s.pedestrian_side}",
            f"someone {'about to cross' if s.pedestrian_action == 'crossing' else 'on the pavement'} on the {s.pedestrian_side}",
        )
        if s.pedestrian == "present"
        else ("no pedestrians", "nobody on the pavement")
    ),
    "clouds": lambda s: {
        "none": ("clear sky", "no clouds"),
        "some": ("a few clouds", "some clouds"),
        "overcast": ("overcast sky", "grey and cloudy"),
    }[s.clouds],
    "time_of_day": lambda s: {
        "day": ("in the daytime", "during the day"),
        "dusk": ("at dusk", "at sunset"),
        "night": ("at night", "after dark"),
    }[s.time_of_day],
}
CAPTIONED_ATTRIBUTES = tuple(PHRASES)


def salient(scene: Scene, rng: np.random.Generator) -> str:
    """Web style: only the salient car and its colour, as people caption their photos."""
    return str(rng.choice(SALIENT_TEMPLATES)).format(car=scene.car_colour)


def describe(scene: Scene, rng: np.random.Generator, leave_out: frozenset[str] = frozenset()) -> str:
    """Every captioned attribute except `leave_out`, in varied wording and order."""
    parts = [str(rng.choice(PHRASES[name](scene))) for name in CAPTIONED_ATTRIBUTES if name not in leave_out]
    return ", ".join(parts[i] for i in rng.permutation(len(parts)))


def _no_argument(family: str, policy: CaptionPolicy) -> Callable[[str], CaptionPolicy]:
    def make(argument: str) -> CaptionPolicy:
        if argument:
            raise UsageError(f"Caption policy '{family}' takes no argument, got '{family}:{argument}'")
        return policy

    return make


CAPTION_POLICIES.register("salient", _no_argument("salient", salient))
CAPTION_POLICIES.register("descriptive", _no_argument("descriptive", describe))


@CAPTION_POLICIES.register("mixed")
def mixed(argument: str) -> CaptionPolicy:
    """`mixed:P`: a fraction P of images get a descriptive caption, the rest a salient one."""
    try:
        fraction = float(argument)
    except ValueError:
        fraction = -1.0
    if not 0.0 <= fraction <= 1.0:
        raise UsageError(f"Caption policy 'mixed:P' needs a fraction P between 0 and 1, got 'mixed:{argument}'")

    def policy(scene: Scene, rng: np.random.Generator) -> str:
        return describe(scene, rng) if rng.random() < fraction else salient(scene, rng)

    return policy


@CAPTION_POLICIES.register("attribute-dropout")
def attribute_dropout(argument: str) -> CaptionPolicy:
    """`attribute-dropout:NAME`: descriptive, except that attribute NAME is never mentioned."""
    if argument not in CAPTIONED_ATTRIBUTES:
        raise UsageError(
            f"Caption policy 'attribute-dropout:NAME' needs an attribute. Available: {', '.join(CAPTIONED_ATTRIBUTES)}"
        )

    def policy(scene: Scene, rng: np.random.Generator) -> str:
        return describe(scene, rng, leave_out=frozenset({argument}))

    return policy


def list_caption_policies() -> list[str]:
    return CAPTION_POLICIES.names()


def get_caption_policy(spec: str) -> CaptionPolicy:
    """`salient`, `descriptive`, `mixed:0.1`, `attribute-dropout:light_state`, or a user-registered family."""
    family, _, argument = spec.partition(":")
    return CAPTION_POLICIES.get(family)(argument)


def descriptive_fraction(spec: str) -> float | None:
    """The fraction of images a policy captions descriptively (salient 0, descriptive 1, mixed:P P), or None
    for a policy that is not on that axis (attribute-dropout): the x axis of the dose-response plot."""
    get_caption_policy(spec)
    family, _, argument = spec.partition(":")
    return {"salient": 0.0, "descriptive": 1.0}.get(family, float(argument) if family == "mixed" else None)


def caption_for(scene: Scene, policy: str, rng: np.random.Generator) -> str:
    return get_caption_policy(policy)(scene, rng)


class PolicyCard(TypedDict):
    salient_templates: list[str]
    descriptive_attributes: list[str]


def policy_card() -> PolicyCard:
    """The templates and phrases, for the dataset card."""
    return {"salient_templates": list(SALIENT_TEMPLATES), "descriptive_attributes": list(CAPTIONED_ATTRIBUTES)}
