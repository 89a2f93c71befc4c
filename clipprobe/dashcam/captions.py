"""Caption curation policies: which attributes of a scene a caption mentions.

The claim under test is that the curation of captions defines the invariances, so a policy is a
named, registered function of the scene. Parameterised families are written `NAME:ARG`
(`mixed:0.1`, `attribute-dropout:light_state`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
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

# Descriptive captions: one part per thing in the scene, each part built from the attributes it names, in varied
# wording; `leave_out` removes an attribute's words and nothing else (a part whose attributes are all left out goes).
# Every attribute of the world except those a caption cannot see (the light's place, the second car) is named.
CAPTIONED_ATTRIBUTES = (
    "car_colour",
    "car_facing",
    "car_distance",
    "light_state",
    "pedestrian",
    "pedestrian_count",
    "pedestrian_side",
    "pedestrian_action",
    "lane_markings",
    "speed_limit",
    "clouds",
    "time_of_day",
)
CAR_DISTANCE = {"near": ("close in front", "right ahead"), "far": ("far ahead", "a long way ahead")}
CAR_FACING = {"away": ("driving away from us", "going our way"), "towards": ("coming towards us", "oncoming")}
PEOPLE = {
    "one": ("one pedestrian", "a single pedestrian"),
    "two": ("two pedestrians",),
    "three": ("three pedestrians",),
}
ACTION = {
    "pavement": ("waiting on the pavement", "standing on the kerb"),
    "crossing": ("crossing the road", "stepping into the road"),
}
LANES = {
    "none": ("no lane markings", "an unmarked road"),
    "dashed": ("a dashed centre line", "broken lane markings"),
    "solid": ("a solid centre line", "an unbroken line down the middle"),
}


def _car(scene: Scene, rng: np.random.Generator, named: frozenset[str]) -> str | None:
    if not named & {"car_colour", "car_facing", "car_distance"}:
        return None
    noun = f"a {scene.car_colour} car" if "car_colour" in named else "a car"
    parts = [noun]
    if "car_distance" in named:
        parts.append(str(rng.choice(CAR_DISTANCE[scene.car_distance])))
    if "car_facing" in named:
        parts.append(str(rng.choice(CAR_FACING[scene.car_facing])))
    return " ".join(parts)


def _light(scene: Scene, rng: np.random.Generator, named: frozenset[str]) -> str | None:
    if "light_state" not in named:
        return None
    s = scene.light_state
    return str(
        rng.choice(
            (f"the traffic light is {s}", f"a {s} light ahead", f"{s} traffic light")
            if scene.light == "present"
            else ("no traffic light", "no lights in view")
        )
    )


def _pedestrians(scene: Scene, rng: np.random.Generator, named: frozenset[str]) -> str | None:
    """Any word about people says whether there are any, so leaving out `pedestrian` leaves out all of them."""
    if "pedestrian" not in named:
        return None
    if scene.pedestrian == "absent":
        return str(rng.choice(("no pedestrians", "nobody on the pavement")))
    parts = [str(rng.choice(PEOPLE[scene.pedestrian_count])) if "pedestrian_count" in named else "someone"]
    if "pedestrian_action" in named:
        parts.append(str(rng.choice(ACTION[scene.pedestrian_action])))
    if "pedestrian_side" in named:
        parts.append(f"on the {scene.pedestrian_side}")
    return " ".join(parts)


def _simple(attribute: str, phrases: Mapping[str, tuple[str, ...]]):
    def part(scene: Scene, rng: np.random.Generator, named: frozenset[str]) -> str | None:
        return str(rng.choice(phrases[getattr(scene, attribute)])) if attribute in named else None

    return part


PARTS = (
    _car,
    _light,
    _pedestrians,
    _simple("lane_markings", LANES),
    _simple("speed_limit", {v: (f"a {v} limit sign", f"speed limit {v}") for v in ("30", "50", "70")}),
    _simple(
        "clouds",
        {
            "none": ("clear sky", "no clouds"),
            "some": ("a few clouds", "some clouds"),
            "overcast": ("overcast sky", "grey and cloudy"),
        },
    ),
    _simple(
        "time_of_day",
        {
            "day": ("in the daytime", "during the day"),
            "dusk": ("at dusk", "at sunset"),
            "night": ("at night", "after dark"),
        },
    ),
)


def salient(scene: Scene, rng: np.random.Generator) -> str:
    """Web style: only the salient car and its colour, as people caption their photos."""
    return str(rng.choice(SALIENT_TEMPLATES)).format(car=scene.car_colour)


def describe(scene: Scene, rng: np.random.Generator, leave_out: frozenset[str] = frozenset()) -> str:
    """Every captioned attribute except `leave_out`, in varied wording and order."""
    named = frozenset(CAPTIONED_ATTRIBUTES) - leave_out
    parts = [text for part in PARTS if (text := part(scene, rng, named)) is not None]
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
