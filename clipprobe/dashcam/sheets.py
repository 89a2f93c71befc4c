"""A contact sheet of a task's images with their labels and captions, so a person sees what the model sees."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..core.errors import UsageError
from ..core.storage import atomic_path
from ..data.depth import to_rgb
from ..data.task import Task
from .captions import caption_for
from .scene import Scene

SHEET_POLICIES = ("salient", "descriptive", "mixed:0.5")
TILE = 224
TEXT_LINES = 11
LINE_HEIGHT = 13


def contact_sheet(task: Task, out: Path, n: int = 12, split: str = "train", seed: int = 0, columns: int = 4) -> Path:
    """Write a PNG of `n` random images of `task` (seeded) with labels and, for the dashcam world, captions."""
    if n < 1:
        raise UsageError(f"--n must be at least 1, got {n}")
    data = task.source.load()[split]
    rows = task.rows(data)
    labels = task.labels(data)
    chosen = np.sort(np.random.default_rng(seed).choice(len(rows), size=min(n, len(rows)), replace=False))
    font = ImageFont.load_default(size=11)
    rows_needed = -(-len(chosen) // columns)
    tile_h = TILE + TEXT_LINES * LINE_HEIGHT + 6
    sheet = Image.new("RGB", (columns * TILE, rows_needed * tile_h), "white")
    draw = ImageDraw.Draw(sheet)
    for k, pick in enumerate(chosen):
        row = data[int(rows[pick])]
        x, y = (k % columns) * TILE, (k // columns) * tile_h
        image = to_rgb(row[task.source.image_column])
        image.thumbnail((TILE, TILE))
        sheet.paste(image, (x + (TILE - image.width) // 2, y + (TILE - image.height) // 2))
        lines = [f"{task.label}: {task.classes[labels[pick]]}"]
        if "scene" in row:  # the dashcam world: show what each curation policy would say
            scene = Scene.from_dict(json.loads(row["scene"]))
            for policy in SHEET_POLICIES:
                caption = caption_for(scene, policy, np.random.default_rng([seed, int(row["index"])]))
                lines += textwrap.wrap(f"{policy}: {caption}", width=40)
        for i, line in enumerate(lines[:TEXT_LINES]):
            draw.text((x + 4, y + TILE + 3 + i * LINE_HEIGHT), line, fill="black", font=font)
    with atomic_path(Path(out)) as tmp:
        sheet.save(tmp, format="PNG")
    return Path(out)


def pairs_sheet(pairs: Path, out: Path, n: int = 8, columns: int = 2) -> Path:
    """Write a PNG of the first `n` counterfactual pairs in the folder `pairs` (from `make_pairs`): each pair side
    by side, the changed region outlined, with the attribute's value in each image."""
    import datasets

    if n < 1:
        raise UsageError(f"--n must be at least 1, got {n}")
    data = datasets.load_from_disk(str(pairs))
    chosen = range(min(n, len(data)))
    font = ImageFont.load_default(size=11)
    tile, label = TILE // 2 * 2, 2 * LINE_HEIGHT
    width, height = 2 * tile + 8, tile + label + 8
    rows_needed = -(-len(chosen) // columns)
    sheet = Image.new("RGB", (columns * width, rows_needed * height), "white")
    draw = ImageDraw.Draw(sheet)
    for k in chosen:
        row = data[k]
        x, y = (k % columns) * width, (k // columns) * height
        for side, (image, value) in enumerate(((row["image_a"], row["value_a"]), (row["image_b"], row["value_b"]))):
            image = to_rgb(image).resize((tile, tile))
            left = x + side * tile
            sheet.paste(image, (left, y))
            corners = [float(v) * tile for v in row["region"]]
            for x0, y0, x1, y1 in zip(*[iter(corners)] * 4, strict=True):  # one box or more
                draw.rectangle((left + x0, y + y0, left + x1, y + y1), outline="red", width=2)
            draw.text((left + 4, y + tile + 3), f"{'ab'[side]}: {value}", fill="black", font=font)
        draw.text((x + 4, y + tile + 3 + LINE_HEIGHT), f"scene {row['index']}", fill="gray", font=font)
    with atomic_path(Path(out)) as tmp:
        sheet.save(tmp, format="PNG")
    return Path(out)
