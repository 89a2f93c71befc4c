"""A new dataset scheme needs no change to the package: a DataSource subclass registered under a prefix is read
through the same path as `--dataset SCHEME:PATH` and a task file's `source`, as every built-in scheme is."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import datasets
import numpy as np
import pytest
from PIL import Image

from clipprobe.cli.options import choose_task
from clipprobe.core.errors import UsageError
from clipprobe.data.readers import SCHEMES, DataSource, list_schemes, parse_dataset
from clipprobe.data.task import PROBE_SPLITS, Task, overview
from clipprobe.data.taskfile import resolve_task

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}


@dataclass(frozen=True)
class JsonListSource(DataSource):
    """The toy scheme: a JSON file {"train": [[FILE, LABEL], ...], "validation": [...], "test": [...]}, with FILE a
    PNG relative to the JSON file's folder."""

    scheme: ClassVar[str] = "toy"

    path: str
    name: str = ""
    image_column: str = "image"
    label: str = "label"

    @classmethod
    def from_spec(cls, path: str, base: Path | None = None, **options: Any) -> JsonListSource:
        if base is not None and not Path(path).is_absolute():
            path = str(base / path)
        return cls(path=path, **{k: v for k, v in options.items() if k in ("name", "image_column", "label")})

    def _listing(self) -> dict[str, list[tuple[Path, str]]]:
        manifest = Path(self.path)
        if not manifest.is_file():
            raise UsageError(f"No JSON list at {self.path}")
        rows = json.loads(manifest.read_text())
        return {split: [(manifest.parent / file, label) for file, label in rows[split]] for split in PROBE_SPLITS}

    def class_names(self) -> tuple[str, ...]:
        return tuple(sorted({label for rows in self._listing().values() for _, label in rows}))

    def task_name(self) -> str:
        return Path(self.path).stem

    def load(self) -> datasets.DatasetDict:
        classes = list(self.class_names())
        features = datasets.Features(
            {self.image_column: datasets.Image(), self.label: datasets.ClassLabel(names=classes)}
        )
        return datasets.DatasetDict(
            {
                split: datasets.Dataset.from_dict(
                    {
                        self.image_column: [{"path": str(file), "bytes": None} for file, _ in rows],
                        self.label: [classes.index(label) for _, label in rows],
                    },
                    features=features,
                )
                for split, rows in self._listing().items()
            }
        )

    def fingerprint(self) -> str:
        digest = hashlib.sha256(Path(self.path).read_bytes())
        for rows in self._listing().values():
            for file, _ in rows:
                digest.update(file.read_bytes())
        return f"toy-{digest.hexdigest()[:16]}"

    def location(self) -> str:
        return f"toy:{Path(self.path).resolve()}"


@pytest.fixture
def toy_scheme():
    SCHEMES.register("toy", JsonListSource)
    yield JsonListSource
    SCHEMES.unregister("toy")


def write_toy(root: Path, per_split: dict[str, int] | None = None) -> Path:
    """PNGs of three colours, listed per split in lights.json; the JSON file's path."""
    per_split = per_split or {"train": 6, "validation": 3, "test": 3}
    listing = {}
    for split, n in per_split.items():
        rows = []
        for i in range(n):
            colour = list(COLOURS)[i % len(COLOURS)]
            file = Path("png") / split / f"{i}.png"
            (root / file).parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (12, 12), tuple(min(255, c + i) for c in COLOURS[colour])).save(root / file)
            rows.append([file.as_posix(), colour])
        listing[split] = rows
    manifest = root / "lights.json"
    manifest.write_text(json.dumps(listing))
    return manifest


def test_a_toy_scheme_is_a_task_through_the_command_lines_path(toy_scheme, tmp_path):
    """`--dataset toy:PATH` (choose_task, as the CLI calls it), then resolve_task as the runner does."""
    manifest = write_toy(tmp_path)
    assert "toy" in list_schemes()
    task = choose_task(None, f"toy:{manifest}")
    assert isinstance(task, Task) and isinstance(task.source, toy_scheme)
    assert (task.name, task.label, task.classes) == ("lights", "label", ("blue", "green", "red"))
    assert task.source.name == f"toy:{manifest}"

    resolved = resolve_task(task, strict=True)
    assert resolved.source == task.source  # a source that never skips images is its own strict self
    data = resolved.source.load()
    assert {split: len(data[split]) for split in PROBE_SPLITS} == {"train": 6, "validation": 3, "test": 3}
    assert np.array_equal(task.labels(data["train"]), [2, 1, 0, 2, 1, 0])
    assert np.asarray(data["test"][0]["image"]).shape == (12, 12, 3)
    assert task.summary()["class_counts"]["train"] == {"blue": 2, "green": 2, "red": 2}
    assert overview(task)["exact"] and task.source.skipped() == {"count": 0, "files": []}
    assert task.source.location() == f"toy:{manifest.resolve()}"

    fingerprint = task.source.fingerprint()
    assert parse_dataset(f"toy:{manifest}").fingerprint() == fingerprint
    Image.new("RGB", (12, 12), (0, 0, 0)).save(tmp_path / "png" / "test" / "0.png")
    assert task.source.fingerprint() != fingerprint  # other pixels, other features


def test_a_toy_scheme_in_a_task_file(toy_scheme, tmp_path):
    """A task file's `source = "toy:lights.json"` resolves relative to the file, as for the built-in schemes."""
    write_toy(tmp_path)
    (tmp_path / "lights.toml").write_text('name = "toy-lights"\nsource = "toy:lights.json"\n')
    task = resolve_task(str(tmp_path / "lights.toml"))
    assert task.name == "toy-lights" and isinstance(task.source, toy_scheme)
    assert task.source.path == str(tmp_path / "lights.json") and task.classes == ("blue", "green", "red")
    assert sum(task.summary()["splits"].values()) == 12


def test_an_unregistered_scheme_lists_the_registered_ones_with_the_toy(toy_scheme, tmp_path):
    with pytest.raises(
        UsageError,
        match=r"^Unknown dataset scheme 'toys'\. Did you mean toy\? Available: csv, hf, imagefolder, parquet, toy$",
    ):
        choose_task(None, f"toys:{tmp_path}")
