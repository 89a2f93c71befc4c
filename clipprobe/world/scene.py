"""Sample a dashcam scene's attributes from a seed and render it with PIL."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

# Every attribute a task or caption may use, with its classes in label order.
ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "car_colour": ("black", "white", "red", "blue", "silver"),
    "light_state": ("red", "amber", "green"),
    "pedestrian": ("absent", "present"),
}

CAR_RGB = {
    "black": (25, 25, 28),
    "white": (235, 235, 232),
    "red": (190, 30, 30),
    "blue": (35, 70, 170),
    "silver": (160, 164, 170),
}
# Lit and unlit lamp colours, top to bottom.
LAMP_ON = {"red": (255, 40, 30), "amber": (255, 170, 0), "green": (40, 230, 90)}
LAMP_OFF = {"red": (70, 20, 20), "amber": (70, 50, 10), "green": (15, 60, 30)}
# Amber is rarer than red or green, as on real roads: balanced accuracy matters.
LIGHT_STATE_PROBS = (0.4, 0.2, 0.4)
PEDESTRIAN_PROB = 0.35


@dataclass(frozen=True)
class Scene:
    """Everything that decides one image: labels first, then nuisance draws."""

    car_colour: str
    light_state: str
    pedestrian: str
    car_scale: float
    car_shift: float
    light_side: str
    light_x: float
    light_y: float
    light_height: float
    pedestrian_side: str
    pedestrian_x: float
    pedestrian_height: float
    shirt_rgb: tuple[int, int, int]
    horizon: float
    vanishing_x: float
    sky_rgb: tuple[int, int, int]
    clouds: tuple[tuple[float, float, float], ...]
    noise_seed: int

    def labels(self) -> dict[str, str]:
        return {name: getattr(self, name) for name in ATTRIBUTES}

    def to_dict(self) -> dict:
        return asdict(self)


def scene_rng(seed: int, stream: int, index: int) -> np.random.Generator:
    """One generator per image, so any image can be re-rendered alone from (seed, stream, index)."""
    return np.random.default_rng([seed, stream, index])


def sample_scene(rng: np.random.Generator) -> Scene:
    light_side = str(rng.choice(["left", "right"]))
    pedestrian_side = str(rng.choice(["left", "right"]))
    lx = rng.uniform(0.07, 0.2)
    px = rng.uniform(0.05, 0.13)
    return Scene(
        car_colour=str(rng.choice(ATTRIBUTES["car_colour"])),
        light_state=str(rng.choice(ATTRIBUTES["light_state"], p=LIGHT_STATE_PROBS)),
        pedestrian="present" if rng.random() < PEDESTRIAN_PROB else "absent",
        car_scale=float(rng.uniform(0.34, 0.5)),
        car_shift=float(rng.uniform(-0.06, 0.06)),
        light_side=light_side,
        light_x=float(lx if light_side == "left" else 1 - lx),
        light_y=float(rng.uniform(0.12, 0.24)),
        light_height=float(rng.uniform(0.2, 0.26)),
        pedestrian_side=pedestrian_side,
        pedestrian_x=float(px if pedestrian_side == "left" else 1 - px),
        pedestrian_height=float(rng.uniform(0.2, 0.3)),
        shirt_rgb=tuple(int(c) for c in rng.integers(30, 230, size=3)),
        horizon=float(rng.uniform(0.42, 0.5)),
        vanishing_x=float(rng.uniform(0.4, 0.6)),
        sky_rgb=(int(rng.integers(90, 150)), int(rng.integers(150, 190)), int(rng.integers(210, 250))),
        clouds=tuple(
            (float(rng.uniform(0, 1)), float(rng.uniform(0.02, 0.3)), float(rng.uniform(0.06, 0.16)))
            for _ in range(int(rng.integers(0, 4)))
        ),
        noise_seed=int(rng.integers(0, 2**31)),
    )


def render_scene(scene: Scene, size: int = 224) -> Image.Image:
    """Draw the scene as an RGB image of `size` x `size` pixels."""
    s = size
    img = Image.new("RGB", (s, s), scene.sky_rgb)
    draw = ImageDraw.Draw(img)
    horizon = scene.horizon * s

    for cx, cy, r in scene.clouds:
        draw.ellipse([(cx - r) * s, (cy - r / 2) * s, (cx + r) * s, (cy + r / 2) * s], fill=(240, 242, 245))

    # Ground, road converging on the vanishing point, and dashed centre markings.
    draw.rectangle([0, horizon, s, s], fill=(95, 120, 80))
    vx = scene.vanishing_x * s
    draw.polygon([(vx - 0.01 * s, horizon), (vx + 0.01 * s, horizon), (1.0 * s, s), (0, s)], fill=(80, 80, 84))
    for k in range(6):
        t0, t1 = (k + 0.3) / 6, (k + 0.6) / 6
        y0, y1 = horizon + t0 * (s - horizon), horizon + t1 * (s - horizon)
        x0, x1 = vx + t0 * (0.5 * s - vx), vx + t1 * (0.5 * s - vx)
        draw.line([(x0, y0), (x1, y1)], fill=(230, 225, 200), width=max(1, int(0.004 * s + t1 * 0.01 * s)))

    _draw_traffic_light(draw, scene, s)
    if scene.pedestrian == "present":
        _draw_pedestrian(draw, scene, s)
    _draw_car(draw, scene, s)

    # Sensor noise and a touch of blur, seeded so the image is reproducible.
    img = img.filter(ImageFilter.BoxBlur(0.5 * s / 224))
    noise = np.random.default_rng(scene.noise_seed).integers(-6, 7, size=(s, s, 3), dtype=np.int16)
    pixels = np.asarray(img, dtype=np.int16) + noise
    return Image.fromarray(np.clip(pixels, 0, 255, out=pixels).astype(np.uint8))


def _draw_traffic_light(draw: ImageDraw.ImageDraw, scene: Scene, s: int) -> None:
    h = scene.light_height * s
    w = h / 2.6
    x, y = scene.light_x * s, scene.light_y * s
    pole_w = max(1.0, w / 5)
    draw.rectangle([x - pole_w / 2, y + h / 2, x + pole_w / 2, scene.horizon * s + 0.1 * s], fill=(50, 50, 50))
    draw.rectangle([x - w / 2, y - h / 2, x + w / 2, y + h / 2], fill=(20, 20, 22))
    r = w * 0.33
    for i, state in enumerate(ATTRIBUTES["light_state"]):
        cy = y - h / 2 + h * (i + 0.5) / 3
        colour = LAMP_ON[state] if state == scene.light_state else LAMP_OFF[state]
        draw.ellipse([x - r, cy - r, x + r, cy + r], fill=colour)


def _draw_pedestrian(draw: ImageDraw.ImageDraw, scene: Scene, s: int) -> None:
    h = scene.pedestrian_height * s
    x = scene.pedestrian_x * s
    feet = scene.horizon * s + 0.3 * s
    head = h * 0.14
    body_top, hip = feet - h + 2 * head, feet - h * 0.45
    limb = max(1, int(h * 0.07))
    draw.ellipse([x - head, feet - h, x + head, feet - h + 2 * head], fill=(225, 180, 150))
    draw.rectangle([x - h * 0.11, body_top, x + h * 0.11, hip], fill=scene.shirt_rgb)
    draw.line([(x - h * 0.05, hip), (x - h * 0.1, feet)], fill=(40, 40, 60), width=limb)
    draw.line([(x + h * 0.05, hip), (x + h * 0.1, feet)], fill=(40, 40, 60), width=limb)


def _draw_car(draw: ImageDraw.ImageDraw, scene: Scene, s: int) -> None:
    w = scene.car_scale * s
    h = w * 0.62
    cx = (0.5 + scene.car_shift) * s
    bottom = s * 0.93
    body = CAR_RGB[scene.car_colour]
    draw.rectangle([cx - w / 2, bottom - h * 0.6, cx + w / 2, bottom], fill=body)
    draw.polygon(
        [(cx - w * 0.38, bottom - h * 0.6), (cx - w * 0.3, bottom - h), (cx + w * 0.3, bottom - h), (cx + w * 0.38, bottom - h * 0.6)],
        fill=body,
    )
    draw.polygon(
        [(cx - w * 0.32, bottom - h * 0.62), (cx - w * 0.26, bottom - h * 0.93), (cx + w * 0.26, bottom - h * 0.93), (cx + w * 0.32, bottom - h * 0.62)],
        fill=(60, 75, 90),
    )
    for side in (-1, 1):
        lx = cx + side * w * 0.4
        draw.rectangle([lx - w * 0.07, bottom - h * 0.5, lx + w * 0.07, bottom - h * 0.38], fill=(200, 20, 20))
        wx = cx + side * w * 0.36
        draw.rectangle([wx - w * 0.08, bottom - h * 0.02, wx + w * 0.08, bottom + h * 0.1], fill=(15, 15, 15))
    draw.rectangle([cx - w * 0.12, bottom - h * 0.3, cx + w * 0.12, bottom - h * 0.2], fill=(230, 230, 220))
