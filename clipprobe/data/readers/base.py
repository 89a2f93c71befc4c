"""The base of every data source: what tasks, extraction, runs and result records use of one, declared here."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    import datasets


class DataSource(ABC):
    """Images plus labels in train / validation / test splits, with a stable fingerprint.

    A subclass gives `name`, `image_column`, `load()` and `fingerprint()`; the other members have defaults that
    suit a source which never skips images and is at hand at once. A source registered as a dataset scheme
    (`SCHEMES`, the SCHEME of `--dataset SCHEME:PATH`) also gives `scheme`, `from_spec()` and `class_names()`.
    """

    # The scheme's name in SCHEMES ("" for a source that is no scheme, e.g. the dashcam world).
    scheme: ClassVar[str] = ""
    # Whether the data has label columns to choose from, so that `--label` applies (not so for class folders).
    label_column: ClassVar[bool] = True

    name: str
    """What the source is called in messages, task listings and result records."""
    image_column: str
    """The column of `load()`'s splits that holds the images."""

    @classmethod
    def from_spec(cls, path: str, base: Path | None = None, **options: Any) -> DataSource:
        """The source at `path`, the PATH of `SCHEME:PATH`, resolved against `base` (a task file's folder) when
        relative. `options` are what the command line and task files give: name, image_column, label, classes,
        splits (probe split -> the data's name), fractions (a SplitFractions), strict, allow_outside_root."""
        raise NotImplementedError(f"{cls.__name__} is not a dataset scheme: it is not built from SCHEME:PATH")

    @abstractmethod
    def load(self) -> datasets.DatasetDict:
        """The train, validation and test splits, each with `image_column` and the label columns."""

    @abstractmethod
    def fingerprint(self) -> str:
        """A string that changes when the images, labels or splits do, and only then (never from paths or
        clocks): it keys the feature cache, so equal fingerprints must mean equal data."""

    def location(self) -> str:
        """Where the data lives, so that two sources at one location are known to be the same data; a source
        without a path answers its name."""
        return self.name

    def class_names(self) -> tuple[str, ...]:
        """The classes of the label column, for a task over this source alone (given by every scheme)."""
        raise NotImplementedError(f"{type(self).__name__} does not name the classes of a label column")

    def task_name(self) -> str:
        """What a task over this source alone is called when the user names none."""
        return self.name

    def strictly(self) -> DataSource:
        """The same source, failing on the first unreadable image instead of skipping it (itself, for a source
        that never skips any)."""
        return self

    def skipped(self) -> dict[str, Any]:
        """Unreadable images left out: {"count": how many, "files": the first few as {"file", "reason"}}."""
        return {"count": 0, "files": []}

    def duplicates(self) -> int:
        """Images in validation or test with the content of an image in another split, allowed by the user (a
        source that refuses them, or cannot have them, has 0)."""
        return 0

    def ready(self) -> bool:
        """Whether the data is at hand, so that counting its rows is quick (False: it is still to be made)."""
        return True

    def planned_sizes(self) -> dict[str, int]:
        """Rows per split, known without making the data (asked only of a source that is not `ready()`)."""
        return {split: len(rows) for split, rows in self.load().items()}
