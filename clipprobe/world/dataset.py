"""Generate the dashcam world once as a Hugging Face `datasets` DatasetDict and reuse it."""

from __future__ import annotations

import io
import json
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import datasets
import numpy as np

from .. import paths
from ..errors import RunError
from ..progress import progress_bar
from ..storage import atomic_dir, stable_hash, write_json
from .captions import caption_for
from .scene import ATTRIBUTES, render_scene, sample_scene, scene_rng

# Bump when rendering or sampling changes, so stale worlds and their features are never reused.
GENERATOR_VERSION = 1
# Each split draws from its own stream so changing one split's size leaves the others unchanged.
SPLIT_STREAMS = {"pretrain": 0, "train": 1, "validation": 2, "test": 3}
DEFAULT_SIZES = {"pretrain": 4000, "train": 2000, "validation": 500, "test": 1000}


@dataclass(frozen=True)
class WorldConfig:
    """What decides the generated world: same config, same bytes."""

    seed: int = 0
    image_size: int = 224
    sizes: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_SIZES))

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


def render_row(config: WorldConfig, split: str, index: int) -> dict:
    """Render image `index` of `split` alone; the stored row is exactly this."""
    rng = scene_rng(config.seed, SPLIT_STREAMS[split], index)
    scene = sample_scene(rng)
    buffer = io.BytesIO()
    render_scene(scene, config.image_size).save(buffer, format="JPEG", quality=90, subsampling=0)
    return {
        "image": {"bytes": buffer.getvalue(), "path": None},
        "caption": caption_for(scene, "salient", rng),
        "index": index,
        **scene.labels(),
        "scene": json.dumps(scene.to_dict(), sort_keys=True),
    }


def load_world(config: WorldConfig | None = None) -> datasets.DatasetDict:
    """Load the world for `config`, generating it first if this machine has not yet."""
    config = config or WorldConfig()
    unknown = set(config.sizes) - set(SPLIT_STREAMS)
    if unknown:
        raise RunError(f"Unknown world split(s) {sorted(unknown)}. Available: {', '.join(SPLIT_STREAMS)}")
    path = world_path(config)
    if not (path / "dataset_dict.json").exists():
        _generate(config, path)
    try:
        return datasets.load_from_disk(str(path))
    except Exception as exc:  # a damaged folder: say which and how to recover
        raise RunError(f"Cannot read the generated world at {path} ({exc}); delete that folder to regenerate it") from exc


def _generate(config: WorldConfig, path: Path) -> None:
    features = world_features()
    total = sum(config.sizes.values())
    splits = {}
    with progress_bar() as progress:
        job = progress.add_task("Rendering the dashcam world", total=total)
        for split, size in config.sizes.items():
            rows = []
            for index in range(size):
                rows.append(render_row(config, split, index))
                progress.advance(job)
            columns = {name: [row[name] for row in rows] for name in features}
            splits[split] = datasets.Dataset.from_dict(columns, features=features, split=split)
    with atomic_dir(path) as tmp, _quiet_datasets():
        datasets.DatasetDict(splits).save_to_disk(str(tmp))
        write_json(
            tmp / "world.json",
            {"generator_version": GENERATOR_VERSION, "fingerprint": config.fingerprint(), **asdict(config)},
        )


@contextmanager
def _quiet_datasets():
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
    return {name: int(c) for name, c in zip(names, counts)}
