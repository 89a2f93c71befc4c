"""Sample a dashcam scene's attributes from a seed and render it with PIL.

Every factor the essay talks about is a recorded attribute; every random draw lives in the `Scene`,
so a scene can be re-rendered alone, or with one attribute changed and nothing else (counterfactuals). Where an
attribute decides a size or a place (the car's distance, the pedestrian's place on the kerb or in the road), the
scene keeps a unit draw and the attribute maps it at render time, so that flipping the attribute moves only what it
decides."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

# Labelled attributes, with their classes in label order.
ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "car_colour": ("black", "white", "red", "blue", "silver"),
    "car_facing": ("away", "towards"),
    "car_distance": ("near", "far"),
    "light": ("absent", "present"),
    "light_state": ("red", "amber", "green"),
    "light_position": ("left", "right", "top", "overhead"),
    "pedestrian": ("absent", "present"),
    "pedestrian_count": ("one", "two", "three"),
    "pedestrian_side": ("left", "right"),
    "pedestrian_action": ("pavement", "crossing"),
    "lane_markings": ("none", "dashed", "solid"),
    "speed_limit": ("30", "50", "70"),
    "clouds": ("none", "some", "overcast"),
    "time_of_day": ("day", "dusk", "night"),
    "second_car": ("absent", "present"),
}

CAR_RGB = {
    "black": (25, 25, 28),
    "white": (235, 235, 232),
    "red": (190, 30, 30),
    "blue": (35, 70, 170),
    "silver": (160, 164, 170),
}
LAMP_ON = {"red": (255, 40, 30), "amber": (255, 170, 0), "green": (40, 230, 90)}
LAMP_OFF = {"red": (70, 20, 20), "amber": (70, 50, 10), "green": (15, 60, 30)}
SKY = {"day": (120, 170, 235), "dusk": (235, 150, 110), "night": (15, 20, 45)}
GROUND = {"day": (95, 120, 80), "dusk": (75, 80, 60), "night": (25, 30, 25)}
ROAD = {"day": (80, 80, 84), "dusk": (65, 62, 66), "night": (30, 30, 34)}
# How much of the scene's own colour survives at each time of day (lamps are exempt: they glow).
DAYLIGHT = {"day": 1.0, "dusk": 0.75, "night": 0.35}

# Marginals. Amber is rarer than red or green, as on real roads: balanced accuracy matters.
PROBABILITIES: dict[str, tuple[float, ...]] = {
    "car_colour": (0.2, 0.2, 0.2, 0.2, 0.2),
    "car_facing": (0.7, 0.3),
    "car_distance": (0.5, 0.5),
    "light": (0.15, 0.85),
    "light_state": (0.4, 0.2, 0.4),
    "light_position": (0.35, 0.35, 0.15, 0.15),
    "pedestrian": (0.65, 0.35),
    "pedestrian_count": (0.5, 0.3, 0.2),
    "pedestrian_side": (0.5, 0.5),
    "pedestrian_action": (0.5, 0.5),
    "lane_markings": (0.15, 0.6, 0.25),
    "speed_limit": (1 / 3, 1 / 3, 1 / 3),
    "clouds": (0.4, 0.4, 0.2),
    "time_of_day": (0.6, 0.2, 0.2),
    "second_car": (0.7, 0.3),
}
# Canvas margin so that camera tilt never shows an empty corner after cropping back to size.
TILT_MARGIN = 1.08


@dataclass(frozen=True)
class Knobs:
    """Difficulty knobs: ranges, as fractions of the image size, that a user can sweep."""

    light_size: tuple[float, float] = (0.08, 0.26)
    pedestrian_size: tuple[float, float] = (0.16, 0.32)
    max_tilt_degrees: float = 3.0
    noise: float = 6.0


@dataclass(frozen=True)
class Scene:
    """Everything that decides one image: labelled attributes first, then nuisance draws."""

    car_colour: str
    car_facing: str
    car_distance: str
    light: str
    light_state: str
    light_position: str
    pedestrian: str
    pedestrian_count: str
    pedestrian_side: str
    pedestrian_action: str
    lane_markings: str
    speed_limit: str
    clouds: str
    time_of_day: str
    second_car: str
    car_size: float  # unit draw: where in its distance's range of widths the car is
    car_shift: float
    second_car_colour: str
    light_xy: tuple[float, float]
    light_height: float
    pedestrian_offset: float  # unit draw: where on the kerb, or how far into the road, the pedestrian stands
    pedestrian_height: float
    shirt_rgb: tuple[int, int, int]
    horizon: float
    vanishing_x: float
    curvature: float
    sign_side: str
    sign_offset: float  # unit draw: how far from the road the speed-limit sign stands
    sign_radius: float
    buildings: tuple[tuple[float, float, float, int], ...]
    cloud_shapes: tuple[tuple[float, float, float], ...]
    tilt_degrees: float
    blur: float
    jpeg_quality: int
    noise_seed: int

    def labels(self) -> dict[str, str]:
        return {name: getattr(self, name) for name in ATTRIBUTES}

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Scene:
        # JSON turns tuples into lists; the dataclass is frozen and hashable only with tuples.
        return cls(**{f.name: _tuples(data[f.name]) for f in fields(cls)})


def _tuples(value):
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def scene_rng(seed: int, stream: int, index: int) -> np.random.Generator:
    """One generator per image, so any image can be re-rendered alone from (seed, stream, index)."""
    return np.random.default_rng([seed, stream, index])


def _pick(rng: np.random.Generator, name: str) -> str:
    return str(rng.choice(ATTRIBUTES[name], p=PROBABILITIES[name]))


def sample_scene(rng: np.random.Generator, knobs: Knobs = Knobs()) -> Scene:
    labels = {name: _pick(rng, name) for name in ATTRIBUTES}
    position = labels["light_position"]
    light_height = float(rng.uniform(*knobs.light_size))
    if position == "overhead":  # hanging from a gantry across the top edge, larger because closer
        light_height = min(0.4, light_height * 1.3)
    light_xy = {
        "left": (rng.uniform(0.06, 0.2), rng.uniform(0.12, 0.26)),
        "right": (rng.uniform(0.8, 0.94), rng.uniform(0.12, 0.26)),
        "top": (rng.uniform(0.3, 0.7), rng.uniform(0.1, 0.2)),
        "overhead": (rng.uniform(0.35, 0.65), 0.04 + light_height / 2),
    }[position]
    # The speed-limit sign stands on the side away from the traffic light, so that the light never hides it.
    sign_side = "right" if light_xy[0] < 0.5 else "left"
    return Scene(
        **labels,
        car_size=float(rng.uniform(0, 1)),
        car_shift=float(rng.uniform(-0.06, 0.06)),
        second_car_colour=str(rng.choice(ATTRIBUTES["car_colour"])),
        light_xy=(float(light_xy[0]), float(light_xy[1])),
        light_height=light_height,
        pedestrian_offset=float(rng.uniform(0, 1)),
        pedestrian_height=float(rng.uniform(*knobs.pedestrian_size)),
        shirt_rgb=_rgb(rng.integers(30, 230, size=3)),
        horizon=float(rng.uniform(0.42, 0.5)),
        vanishing_x=float(rng.uniform(0.4, 0.6)),
        curvature=float(rng.uniform(-0.15, 0.15)),
        sign_side=sign_side,
        sign_offset=float(rng.uniform(0, 1)),
        sign_radius=float(rng.uniform(0.1, 0.13)),
        buildings=tuple(
            (
                float(rng.uniform(0, 1)),
                float(rng.uniform(0.06, 0.16)),
                float(rng.uniform(0.05, 0.2)),
                int(rng.integers(60, 160)),
            )
            for _ in range(int(rng.integers(0, 5)))
        ),
        cloud_shapes=tuple(
            (float(rng.uniform(0, 1)), float(rng.uniform(0.02, 0.3)), float(rng.uniform(0.06, 0.16)))
            for _ in range(
                int(rng.integers(1, 4)) if labels["clouds"] == "some" else 8 if labels["clouds"] == "overcast" else 0
            )
        ),
        tilt_degrees=float(rng.uniform(-knobs.max_tilt_degrees, knobs.max_tilt_degrees)),
        blur=float(rng.uniform(0.0, 0.8)),
        jpeg_quality=int(rng.integers(70, 96)),
        noise_seed=int(rng.integers(0, 2**31)),
    )


def render_scene(scene: Scene, size: int = 224, noise: float = Knobs.noise) -> Image.Image:
    """Draw the scene as an RGB image of `size` x `size` pixels (before JPEG encoding)."""
    canvas = int(math.ceil(size * TILT_MARGIN))
    offset = (canvas - size) / 2
    img = Image.new("RGB", (canvas, canvas))
    draw = ImageDraw.Draw(img)
    # Scene coordinates are fractions of the final frame; `to_px` maps them onto the larger canvas.
    s = size

    def px(x: float, y: float) -> tuple[float, float]:
        return (offset + x * s, offset + y * s)

    tod = scene.time_of_day
    shade = DAYLIGHT[tod]
    sky = (150, 155, 160) if scene.clouds == "overcast" and tod == "day" else SKY[tod]
    draw.rectangle([0, 0, canvas, px(0, scene.horizon)[1]], fill=sky)
    cloud_rgb = _dim((240, 242, 245) if scene.clouds == "some" else (175, 178, 182), shade)
    for cx, cy, r in scene.cloud_shapes:
        draw.ellipse([*px(cx - r, cy - r / 2), *px(cx + r, cy + r / 2)], fill=cloud_rgb)
    for bx, bw, bh, grey in scene.buildings:
        top = scene.horizon - bh
        draw.rectangle(
            [*px(bx - bw / 2, top), *px(bx + bw / 2, scene.horizon)], fill=_dim((grey, grey - 10, grey - 20), shade)
        )
        if tod == "night":  # lit windows
            for wx in np.linspace(bx - bw / 3, bx + bw / 3, 3):
                draw.rectangle([*px(wx - 0.006, top + 0.02), *px(wx + 0.006, top + 0.035)], fill=(230, 200, 120))

    horizon_y = px(0, scene.horizon)[1]
    draw.rectangle([0, horizon_y, canvas, canvas], fill=GROUND[tod])
    _draw_road(draw, scene, px)
    _draw_speed_sign(draw, scene, px, s)
    _draw_traffic_light(draw, scene, px, s)
    if scene.second_car == "present":
        _draw_car(
            draw,
            px,
            s,
            scene.second_car_colour,
            scale=0.14 + 0.06 * scene.car_size,
            centre=0.5 + scene.car_shift + (0.27 if scene.vanishing_x < 0.5 else -0.27),
            bottom=scene.horizon + 0.17,
            tod=tod,
        )
    if scene.pedestrian == "present":
        _draw_pedestrians(draw, scene, px, s)
    _draw_car(
        draw,
        px,
        s,
        scene.car_colour,
        scale=car_width(scene),
        centre=0.5 + scene.car_shift,
        bottom=car_bottom(scene),
        tod=tod,
        facing=scene.car_facing,
    )

    img = img.rotate(scene.tilt_degrees, resample=Image.Resampling.BILINEAR, center=(canvas / 2, canvas / 2))
    img = img.crop((int(offset), int(offset), int(offset) + size, int(offset) + size))
    if scene.blur > 0.05:
        img = img.filter(ImageFilter.BoxBlur(scene.blur * s / 224))
    grain = np.random.default_rng(scene.noise_seed).integers(
        -int(noise), int(noise) + 1, size=(s, s, 3), dtype=np.int16
    )
    pixels = np.asarray(img, dtype=np.int16) + grain
    return Image.fromarray(np.clip(pixels, 0, 255, out=pixels).astype(np.uint8))


def _rgb(values: np.ndarray) -> tuple[int, int, int]:
    red, green, blue = (int(c) for c in values)
    return red, green, blue


def _dim(rgb: tuple[int, int, int], shade: float) -> tuple[int, int, int]:
    red, green, blue = rgb
    return int(red * shade), int(green * shade), int(blue * shade)


def _road_x(scene: Scene, t: float, edge: float) -> float:
    """x of a road edge (edge -1 left, +1 right, 0 centre) at depth t (0 horizon, 1 bottom), with a bend."""
    centre = scene.vanishing_x + (0.5 - scene.vanishing_x) * t + scene.curvature * (1 - t) ** 2
    half_width = 0.01 + 0.49 * t
    return centre + edge * half_width


def _draw_road(draw: ImageDraw.ImageDraw, scene: Scene, px) -> None:
    depths = np.linspace(0, 1, 12)
    y = lambda t: scene.horizon + t * (1 - scene.horizon)  # noqa: E731
    left = [px(_road_x(scene, t, -1.1), y(t)) for t in depths]
    right = [px(_road_x(scene, t, 1.1), y(t)) for t in depths[::-1]]
    draw.polygon(left + right, fill=ROAD[scene.time_of_day])
    if scene.lane_markings == "none":
        return
    colour = _dim((230, 225, 200), max(0.6, DAYLIGHT[scene.time_of_day]))
    for k in range(12):
        t0, t1 = k / 12, (k + 1) / 12
        if scene.lane_markings == "dashed" and k % 2:
            continue
        width = max(1, int(1 + 4 * t1))
        draw.line([px(_road_x(scene, t0, 0), y(t0)), px(_road_x(scene, t1, 0), y(t1))], fill=colour, width=width)


def light_box(scene: Scene) -> tuple[float, float, float, float]:
    """The traffic light's housing (x0, y0, x1, y1), in fractions of the frame before tilt."""
    h = scene.light_height
    w = h / 2.6
    x, y = scene.light_xy
    return (x - w / 2, y - h / 2, x + w / 2, y + h / 2)


def _draw_traffic_light(draw: ImageDraw.ImageDraw, scene: Scene, px, s: int) -> None:
    if scene.light == "absent":
        return
    x0, y0, x1, y1 = light_box(scene)
    w, h = x1 - x0, y1 - y0
    x = (x0 + x1) / 2
    pole = (45, 45, 48) if scene.time_of_day != "night" else (20, 20, 22)
    if scene.light_position == "overhead":
        draw.rectangle([*px(0, 0.015), *px(1, 0.035)], fill=pole)
        draw.rectangle([*px(x - w / 8, 0.03), *px(x + w / 8, y0)], fill=pole)
    elif scene.light_position == "top":
        draw.line([px(x, 0), px(x, y0)], fill=pole, width=max(1, int(0.004 * s)))
    else:
        draw.rectangle([*px(x - w / 10, y1), *px(x + w / 10, scene.horizon + 0.1)], fill=pole)
    draw.rectangle([*px(x0, y0), *px(x1, y1)], fill=(20, 20, 22))
    r = w * 0.33
    for i, state in enumerate(ATTRIBUTES["light_state"]):
        cy = y0 + h * (i + 0.5) / 3
        if state == scene.light_state:
            if scene.time_of_day != "day":  # a halo around the lit lamp in low light
                glow = tuple(int(0.45 * c) for c in LAMP_ON[state])
                draw.ellipse([*px(x - 1.9 * r, cy - 1.9 * r), *px(x + 1.9 * r, cy + 1.9 * r)], fill=glow)
            colour = LAMP_ON[state]
        else:
            colour = LAMP_OFF[state]
        draw.ellipse([*px(x - r, cy - r), *px(x + r, cy + r)], fill=colour)


COUNT = {"one": 1, "two": 2, "three": 3}
# The digits of the speed limits, as the seven segments that draw each (a top, b top right, c bottom right,
# d bottom, e bottom left, f top left, g middle): drawn, so no font is needed.
SEGMENTS = {"0": "abcdef", "3": "abcdg", "5": "acdfg", "7": "abc"}


# How far below the horizon the first pedestrian's feet are (fractions of the frame); the others of a group stand
# further up the road, each this much higher and this much smaller than the one before.
FEET_BELOW_HORIZON = 0.3
GROUP_STEP, GROUP_SHRINK = 0.09, 0.8


def pedestrian_places(scene: Scene) -> list[tuple[float, float, float]]:
    """(x, feet, height) of each pedestrian, the nearest first. Each stands relative to the road's edge at its own
    depth: outside it on the pavement, or a step inside it when crossing (the relation is to the road, wherever its
    bend puts the edge); a group's others stand further up the road, one behind the other, so that their heads
    can be counted."""
    u, h = scene.pedestrian_offset, scene.pedestrian_height
    side = -1.1 if scene.pedestrian_side == "left" else 1.1
    outward = -1 if scene.pedestrian_side == "left" else 1
    step = 0.05 + 0.05 * u if scene.pedestrian_action == "pavement" else -(0.04 + 0.04 * u)
    places = []
    for k in range(COUNT[scene.pedestrian_count]):
        feet = scene.horizon + FEET_BELOW_HORIZON - GROUP_STEP * k
        edge = _road_x(scene, (feet - scene.horizon) / (1 - scene.horizon), side)
        places.append((edge + outward * step * GROUP_SHRINK**k, feet, h * GROUP_SHRINK**k))
    return places


def pedestrian_boxes(scene: Scene) -> list[tuple[float, float, float, float]]:
    """Each pedestrian's box (x0, y0, x1, y1), in fractions of the frame before tilt."""
    return [(x - 0.16 * h, feet - h, x + 0.16 * h, feet + 0.01) for x, feet, h in pedestrian_places(scene)]


def _draw_pedestrians(draw: ImageDraw.ImageDraw, scene: Scene, px, s: int) -> None:
    for x, feet, h in reversed(pedestrian_places(scene)):  # the furthest first, so the nearest is in front
        _draw_pedestrian(draw, scene, px, s, x, feet, h)


def _draw_pedestrian(draw: ImageDraw.ImageDraw, scene: Scene, px, s: int, x: float, feet: float, h: float) -> None:
    shade = DAYLIGHT[scene.time_of_day]
    head = h * 0.14
    body_top, hip = feet - h + 2 * head, feet - h * 0.45
    limb = max(1, int(h * 0.07 * s))
    # Crossing: mid-stride towards the road's centre; on the pavement: standing.
    stride = 0.14 if scene.pedestrian_action == "crossing" else 0.05
    inward = 1 if scene.pedestrian_side == "left" else -1
    draw.ellipse([*px(x - head, feet - h), *px(x + head, feet - h + 2 * head)], fill=_dim((225, 180, 150), shade))
    draw.rectangle([*px(x - h * 0.11, body_top), *px(x + h * 0.11, hip)], fill=_dim(scene.shirt_rgb, shade))
    legs = _dim((40, 40, 60), shade)
    draw.line([px(x - h * 0.04, hip), px(x - inward * h * stride, feet)], fill=legs, width=limb)
    draw.line([px(x + h * 0.04, hip), px(x + inward * h * stride, feet)], fill=legs, width=limb)


def car_width(scene: Scene) -> float:
    """The car ahead's width: near, it fills much of the lane; far, it is a third of that further up the road."""
    return 0.4 + 0.12 * scene.car_size if scene.car_distance == "near" else 0.17 + 0.07 * scene.car_size


def car_bottom(scene: Scene) -> float:
    return 0.93 if scene.car_distance == "near" else scene.horizon + 0.25


def car_box(scene: Scene) -> tuple[float, float, float, float]:
    w, bottom = car_width(scene), car_bottom(scene)
    cx = 0.5 + scene.car_shift
    return (cx - w / 2, bottom - w * 0.62, cx + w / 2, bottom + w * 0.07)


def _draw_car(
    draw, px, s: int, colour: str, scale: float, centre: float, bottom: float, tod: str, facing: str = "away"
) -> None:
    """A car seen from behind (tail lights, rear window, number plate) or from the front (headlights, windscreen,
    grille)."""
    w, cx = scale, centre
    h = w * 0.62
    body = _dim(CAR_RGB[colour], DAYLIGHT[tod])
    draw.rectangle([*px(cx - w / 2, bottom - h * 0.6), *px(cx + w / 2, bottom)], fill=body)
    draw.polygon(
        [
            px(cx - w * 0.38, bottom - h * 0.6),
            px(cx - w * 0.3, bottom - h),
            px(cx + w * 0.3, bottom - h),
            px(cx + w * 0.38, bottom - h * 0.6),
        ],
        fill=body,
    )
    towards = facing == "towards"
    glass = (125, 150, 170) if towards else (60, 75, 90)  # a windscreen catches the sky; a rear window is dark
    draw.polygon(
        [
            px(cx - w * 0.34, bottom - h * 0.62),
            px(cx - w * 0.27, bottom - h * 0.95),
            px(cx + w * 0.27, bottom - h * 0.95),
            px(cx + w * 0.34, bottom - h * 0.62),
        ]
        if towards
        else [
            px(cx - w * 0.32, bottom - h * 0.62),
            px(cx - w * 0.26, bottom - h * 0.93),
            px(cx + w * 0.26, bottom - h * 0.93),
            px(cx + w * 0.32, bottom - h * 0.62),
        ],
        fill=_dim(glass, DAYLIGHT[tod]),
    )
    if towards:  # headlights are lit after dark, pale by day
        lamp = (255, 250, 215) if tod != "day" else (235, 235, 215)
    else:  # tail lights are on after dark
        lamp = (255, 40, 40) if tod == "night" else (200, 20, 20)
    for side in (-1, 1):
        lx = cx + side * w * 0.4
        draw.rectangle([*px(lx - w * 0.07, bottom - h * 0.5), *px(lx + w * 0.07, bottom - h * 0.38)], fill=lamp)
        wx = cx + side * w * 0.36
        draw.rectangle([*px(wx - w * 0.08, bottom - h * 0.02), *px(wx + w * 0.08, bottom + h * 0.1)], fill=(15, 15, 15))
    if towards:  # the grille between the headlights
        draw.rectangle(
            [*px(cx - w * 0.26, bottom - h * 0.5), *px(cx + w * 0.26, bottom - h * 0.36)],
            fill=_dim((35, 35, 38), DAYLIGHT[tod]),
        )
    draw.rectangle(
        [*px(cx - w * 0.12, bottom - h * 0.3), *px(cx + w * 0.12, bottom - h * 0.2)],
        fill=_dim((230, 230, 220), DAYLIGHT[tod]),
    )


def sign_centre(scene: Scene) -> tuple[float, float]:
    """The speed-limit sign's centre: beside the road, its lower edge just above the horizon."""
    x = 0.22 + 0.08 * scene.sign_offset
    return (x if scene.sign_side == "left" else 1 - x, scene.horizon - 0.03 - scene.sign_radius)


def sign_box(scene: Scene) -> tuple[float, float, float, float]:
    (x, y), r = sign_centre(scene), scene.sign_radius
    return (x - r, y - r, x + r, y + r)


def _draw_speed_sign(draw: ImageDraw.ImageDraw, scene: Scene, px, s: int) -> None:
    """A round speed-limit sign (red ring, white face, black digits), its number drawn as seven-segment digits."""
    (x, y), r = sign_centre(scene), scene.sign_radius
    shade = max(0.5, DAYLIGHT[scene.time_of_day])  # signs are retroreflective: dimmed less than the scene
    pole = (110, 110, 115) if scene.time_of_day == "day" else (50, 50, 55)
    draw.rectangle([*px(x - r * 0.08, y + r), *px(x + r * 0.08, scene.horizon + 0.04)], fill=pole)
    draw.ellipse([*px(x - r, y - r), *px(x + r, y + r)], fill=_dim((200, 20, 25), shade))
    face = r * 0.78
    draw.ellipse([*px(x - face, y - face), *px(x + face, y + face)], fill=_dim((245, 245, 240), shade))
    width = max(1, int(round(0.2 * r * s)))
    for digit, left in zip(scene.speed_limit, (x - r * 0.5, x + r * 0.06), strict=True):
        _draw_digit(draw, px, digit, left, y - r * 0.42, r * 0.44, r * 0.84, width)


def _draw_digit(draw, px, digit: str, x0: float, y0: float, w: float, h: float, width: int) -> None:
    x1, y1, ym = x0 + w, y0 + h, y0 + h / 2
    ends = {
        "a": ((x0, y0), (x1, y0)),
        "b": ((x1, y0), (x1, ym)),
        "c": ((x1, ym), (x1, y1)),
        "d": ((x0, y1), (x1, y1)),
        "e": ((x0, ym), (x0, y1)),
        "f": ((x0, y0), (x0, ym)),
        "g": ((x0, ym), (x1, ym)),
    }
    for segment in SEGMENTS[digit]:
        start, end = ends[segment]
        draw.line([px(*start), px(*end)], fill=(15, 15, 15), width=width)


def lane_box(scene: Scene) -> tuple[float, float, float, float]:
    """The centre line's extent: from the horizon to the bottom edge, along the bend."""
    xs = [_road_x(scene, t, 0) for t in np.linspace(0, 1, 25)]
    return (min(xs) - 0.03, scene.horizon - 0.01, max(xs) + 0.03, 1.02)
