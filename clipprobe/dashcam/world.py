"""Generate the dashcam world once as a Hugging Face `datasets` DatasetDict, with a dataset card, and reuse it."""

from __future__ import annotations

import io
import json
import os
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path

import datasets
import numpy as np

from ..core import paths
from ..core.errors import RunError
from ..core.locks import exclusive
from ..core.progress import err_console, progress_bar
from ..core.storage import atomic_dir, atomic_path, stable_hash, write_json
from .captions import caption_for, policy_card
from .scene import ATTRIBUTES, Knobs, Scene, render_scene, sample_scene, scene_rng

# Bump when rendering or sampling changes, so stale worlds and their features are never reused.
# 3: the blind-pattern suite's attributes (the car's facing and distance, the pedestrians' count, lane markings, a
# speed-limit sign). 4: a group's people one behind the other up the road, each placed relative to the road's edge
# (on the pavement or a step into the road), a larger sign with thicker digits: on version 3 the CNN's validation
# balanced accuracy stayed at chance for the count, and rose slowly for the place and the sign.
GENERATOR_VERSION = 4
# Each split draws from its own stream so changing one split's size leaves the others unchanged.
SPLIT_STREAMS = {"pretrain": 0, "train": 1, "validation": 2, "test": 3}
DEFAULT_SIZES = {"pretrain": 4000, "train": 1000, "validation": 500, "test": 1000}
CHUNK = 250


@dataclass(frozen=True)
class WorldConfig:
    """What decides the generated world: same config, same bytes."""

    seed: int = 0
    image_size: int = 224
    sizes: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_SIZES))
    knobs: Knobs = Knobs()

    def fingerprint(self) -> str:
        return stable_hash({"generator_version": GENERATOR_VERSION, **asdict(self)})


def world_features() -> datasets.Features:
    columns = {
        "image": datasets.Image(),
        "caption": datasets.Value("string"),
        "index": datasets.Value("int64"),
        **{name: datasets.ClassLabel(names=list(classes)) for name, classes in ATTRIBUTES.items()},
        "scene": datasets.Value("string"),
    }
    return datasets.Features(columns)


def world_path(config: WorldConfig) -> Path:
    return paths.worlds_dir() / f"dashcam-v{GENERATOR_VERSION}-{config.fingerprint()}"


def scene_at(config: WorldConfig, split: str, index: int) -> tuple[Scene, np.random.Generator]:
    rng = scene_rng(config.seed, SPLIT_STREAMS[split], index)
    return sample_scene(rng, config.knobs), rng


def encode(scene: Scene, config: WorldConfig) -> bytes:
    """Render and JPEG-encode, as a dashcam would store it (quality is one of the scene's draws)."""
    buffer = io.BytesIO()
    render_scene(scene, config.image_size, config.knobs.noise).save(
        buffer, format="JPEG", quality=scene.jpeg_quality, subsampling=0
    )
    return buffer.getvalue()


def render_row(config: WorldConfig, split: str, index: int) -> dict:
    """Render image `index` of `split` alone; the stored row is exactly this."""
    scene, rng = scene_at(config, split, index)
    return {
        "image": {"bytes": encode(scene, config), "path": None},
        "caption": caption_for(scene, "salient", rng),
        "index": index,
        **scene.labels(),
        "scene": json.dumps(scene.to_dict(), sort_keys=True),
    }


def _render_chunk(job: tuple[WorldConfig, str, int, int]) -> list[dict]:
    config, split, start, stop = job
    return [render_row(config, split, i) for i in range(start, stop)]


def load_world(config: WorldConfig | None = None) -> datasets.DatasetDict:
    """Load the world for `config`, generating it first if this machine has not yet."""
    config = config or WorldConfig()
    unknown = set(config.sizes) - set(SPLIT_STREAMS)
    if unknown:
        raise RunError(f"Unknown world split(s) {sorted(unknown)}. Available: {', '.join(SPLIT_STREAMS)}")
    path = world_path(config)
    if not (path / "dataset_dict.json").exists():
        with exclusive(path, "rendering the same dashcam world"):  # the second process waits, then loads it
            if not (path / "dataset_dict.json").exists():
                err_console.print(
                    f"Rendering the dashcam world on first use: {sum(config.sizes.values())} images (the progress "
                    f"measures the time left); kept in {path}",
                    highlight=False,
                )
                _generate(config, path)
    try:
        return datasets.load_from_disk(str(path))
    except Exception as exc:  # a damaged folder: say which and how to recover
        raise RunError(
            f"Cannot read the generated world at {path} ({exc}); delete that folder to regenerate it"
        ) from exc


def _generate(config: WorldConfig, path: Path) -> None:
    features = world_features()
    jobs = [
        (config, split, start, min(start + CHUNK, size))
        for split, size in config.sizes.items()
        for start in range(0, size, CHUNK)
    ]
    rows: dict[str, list[dict]] = {split: [] for split in config.sizes}
    workers = min(len(jobs), os.cpu_count() or 1)
    # Rows depend only on (seed, split, index), so rendering in parallel gives the same bytes.
    with progress_bar() as progress, ProcessPoolExecutor(workers) if workers > 1 else nullcontext() as pool:
        task = progress.add_task("Rendering the dashcam world", total=sum(config.sizes.values()))
        chunks = pool.map(_render_chunk, jobs) if pool is not None else map(_render_chunk, jobs)
        for (_, split, _, _), chunk in zip(jobs, chunks, strict=True):
            rows[split].extend(chunk)
            progress.advance(task, len(chunk))
    splits = {
        split: datasets.Dataset.from_dict(
            {name: [row[name] for row in split_rows] for name in features}, features=features, split=split
        )
        for split, split_rows in rows.items()
    }
    with atomic_dir(path) as tmp, quiet_datasets():
        datasets.DatasetDict(splits).save_to_disk(str(tmp))
        write_json(
            tmp / "world.json",
            {"generator_version": GENERATOR_VERSION, "fingerprint": config.fingerprint(), **asdict(config)},
        )
        with atomic_path(tmp / "README.md") as card:
            card.write_text(dataset_card(config, splits))


def dataset_card(config: WorldConfig, splits: dict[str, datasets.Dataset]) -> str:
    """A Markdown card: generator version, seed, sizes, attribute marginals per split, caption templates."""
    lines = [
        "# Dashcam world (generated by clipprobe)",
        "",
        f"- generator version: {GENERATOR_VERSION}",
        f"- seed: {config.seed}",
        f"- image size: {config.image_size} px",
        f"- difficulty knobs: {json.dumps(asdict(config.knobs))}",
        f"- sizes: {json.dumps(config.sizes)}",
        "",
        "Every image is rendered from `(seed, split, index)` alone; `caption` is the salient (web-style) caption.",
        "",
        "## Attribute marginals",
        "",
        "| attribute | " + " | ".join(splits) + " |",
        "| --- | " + " | ".join("---" for _ in splits) + " |",
    ]
    for name in ATTRIBUTES:
        cells = [" · ".join(f"{k} {v}" for k, v in class_counts(split, name).items()) for split in splits.values()]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    card = policy_card()
    lines += ["", "## Caption policies", "", "Salient templates:", ""]
    lines += [f"- `{t}`" for t in card["salient_templates"]]
    lines += ["", f"Descriptive captions mention: {', '.join(card['descriptive_attributes'])}.", ""]
    return "\n".join(lines)


@contextmanager
def quiet_datasets():
    """Hide `datasets`' own tqdm bars while saving: clipprobe shows one rich bar for the whole job."""
    was_disabled = datasets.are_progress_bars_disabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if not was_disabled:
            datasets.enable_progress_bars()


def class_counts(split: datasets.Dataset, column: str) -> dict[str, int]:
    names = split.features[column].names
    counts = np.bincount(np.asarray(split[column]), minlength=len(names))
    return {name: int(c) for name, c in zip(names, counts, strict=True)}
