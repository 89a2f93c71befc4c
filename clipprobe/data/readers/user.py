"""The shared machinery of the schemes over users' files (imagefolder, csv, parquet, hf): each lists its rows
cheaply (`read()`), and shares the rest: split names mapped to train / validation / test, labels turned into a
ClassLabel, every image decoded once (unreadable ones skipped and counted, or an error with `strict`), missing splits
carved out by label with a fixed seed. The fingerprint comes from the content, never from paths or clocks, so the
feature cache is reused until the data changes.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

import datasets
import numpy as np

from ...core import paths
from ...core.errors import RunError, UsageError
from ...core.progress import err_console, progress_bar
from ...core.storage import file_sha256, stable_hash, write_json
from ..safety import image_problem, max_image_pixels
from ..splits import SplitFractions, apply_plan, plan_splits, split_note
from ..task import PROBE_SPLITS
from .base import DataSource

# Bump when listing, checking or splitting changes which rows a source yields, so old features are not reused.
SOURCE_FORMAT = 2
# Unreadable files named in warnings and in the result file (all of them are counted).
LISTED_BAD_FILES = 5


@dataclass(frozen=True)
class Listing:
    """A source's rows before any checking: raw splits, what identifies the content, where it lives."""

    data: dict[str, datasets.Dataset]
    content: Any  # JSON-able; equal content, equal value
    where: str  # absolute location, so two copies of the same data in one process are kept apart
    root: Path | None = None  # file names in messages are relative to this


@dataclass
class _Prepared:
    data: datasets.DatasetDict
    classes: tuple[str, ...]
    bad: list[dict[str, Any]]
    duplicates: int = 0  # images in validation or test whose content is also in another split (allowed)


_PREPARED: dict[str, _Prepared] = {}
_FILE_HASHES: dict[tuple, str] = {}


@dataclass(frozen=True, kw_only=True)
class UserSource(DataSource):
    """Shared by the schemes over users' files: column and split names, how to split, how unreadable images are
    handled. A subclass gives `scheme`, `from_spec()`, `task_name()` and `read()`, which lists its rows.

    `label` None leaves labels as the data has them (then the data must have its splits). `splits` maps a
    probe split to the data's name for it, e.g. {"validation": "val"}. With `strict`, the first unreadable
    image is an error instead of being skipped."""

    labelled: ClassVar[bool] = False  # the scheme itself makes the label column (named "label" unless given)

    name: str = ""
    image_column: str = "image"
    label: str | None = None
    classes: tuple[str, ...] | None = None
    splits: tuple[tuple[str, str], ...] = ()
    fractions: SplitFractions = SplitFractions()
    strict: bool = False
    # A manifest's image paths must lie inside its folder (no ../ or absolute path out of it) unless this is set.
    allow_outside_root: bool = False
    # An image whose content is in two splits is refused (a probe scored on what it trained on) unless this is set.
    allow_duplicates: bool = False

    def __post_init__(self):
        if self.label is None and self.labelled:
            object.__setattr__(self, "label", "label")
        splits = self.splits.items() if isinstance(self.splits, dict) else self.splits
        object.__setattr__(self, "splits", tuple(sorted((str(k), str(v)) for k, v in splits)))
        unknown = [k for k, _ in self.splits if k not in PROBE_SPLITS]
        if unknown:
            raise UsageError(f"Unknown split '{unknown[0]}' in the split names. Available: {', '.join(PROBE_SPLITS)}")
        if self.classes is not None:
            object.__setattr__(self, "classes", tuple(str(c) for c in self.classes))
        if not self.name:
            object.__setattr__(self, "name", self.task_name())

    def strictly(self) -> UserSource:
        """The same source, failing on the first unreadable image instead of skipping it."""
        return replace(self, strict=True)

    # --- what each scheme provides -------------------------------------------------------------------

    def read(self) -> Listing:
        """The rows, their splits as the data names them, before any checking; cheap (no image decoded)."""
        raise NotImplementedError

    def task_name(self) -> str:
        """A task over this source alone is named after its path."""
        return self.scheme

    # --- the DataSource members ----------------------------------------------------------------------

    def load(self) -> datasets.DatasetDict:
        return self._prepare().data

    def fingerprint(self) -> str:
        """From the content and the options that decide which rows land in which split (not from paths)."""
        listing = self.read()
        _, plan = plan_splits(listing.data, self.splits, self.name)
        identity = {
            "format": SOURCE_FORMAT,
            "content": listing.content,
            "image_column": self.image_column,
            "splits": self.splits,
            "plan": plan,
        }
        if plan[0] != "keep":
            identity["split_by"] = {"label": self.label, "classes": self.classes, "fractions": asdict(self.fractions)}
        return f"{self.scheme}-{stable_hash(identity)}"

    def class_names(self) -> tuple[str, ...]:
        """The classes: as given, else the data's ClassLabel names, else its label values in sorted order."""
        if self.classes is not None:
            return self.classes
        return self._normalise(self.read())[1]

    def skipped(self) -> dict[str, Any]:
        """Unreadable images left out: how many, and the first few by name with the reason."""
        bad = self._prepare().bad
        return {
            "count": len(bad),
            "files": [{"file": b["file"], "reason": b["reason"]} for b in bad[:LISTED_BAD_FILES]],
        }

    def location(self) -> str:
        """Where the data lives (scheme and absolute location): two sources at one location are the same data."""
        return f"{self.scheme}:{self.read().where}"

    # --- shared machinery ----------------------------------------------------------------------------

    def _check_inside(self, file: Path, root: Path, where: str) -> None:
        """The rule for manifests: the images they name lie inside their folder, unless allow_outside_root."""
        if self.allow_outside_root or file.resolve().is_relative_to(root.resolve()):
            return
        raise UsageError(
            f"{where}: image {file} lies outside the manifest's folder {root}; move it inside, or allow this "
            "with --allow-outside-root (in a task file: allow_outside_root = true)"
        )

    def _options(self) -> dict[str, Any]:
        return {
            "image_column": self.image_column,
            "label": self.label,
            "classes": self.classes,
            "splits": self.splits,
            "fractions": asdict(self.fractions),
            "allow_duplicates": self.allow_duplicates,
        }

    def _prepare(self) -> _Prepared:
        listing = self.read()
        key = stable_hash({"where": listing.where, "content": listing.content, "options": self._options()})
        prepared = _PREPARED.get(key)
        if prepared is None:
            prepared = _PREPARED[key] = self._build(listing)
        if self.strict and prepared.bad:
            raise self._strict_error(prepared.bad[0])
        return prepared

    def _normalise(self, listing: Listing) -> tuple[dict[str, datasets.Dataset], tuple[str, ...], tuple[str, ...]]:
        """The used splits with an Image column and a ClassLabel label column, their classes, and the plan."""
        data, plan = plan_splits(listing.data, self.splits, self.name)
        for split_name, split in data.items():
            columns = split.column_names
            if self.image_column not in columns:
                raise UsageError(f"No image column '{self.image_column}'. Columns: {', '.join(columns)}")
            if self.label is not None and self.label not in columns:
                raise UsageError(f"No label column '{self.label}'. Columns: {', '.join(columns)}")
            feature = split.features[self.image_column]
            if not isinstance(feature, datasets.Image) or not feature.decode:
                try:
                    data[split_name] = split.cast_column(self.image_column, datasets.Image())
                except Exception:  # ints, lists...: not something that holds an image
                    raise UsageError(
                        f"Column '{self.image_column}' of {self.name} does not hold images (it holds {feature})"
                    ) from None
        if self.label is None:
            if plan[0] != "keep":
                raise UsageError(
                    f"{self.name} has no train, validation and test splits; "
                    f"give its label column so that it can be split by label"
                )
            return data, tuple(self.classes or ()), plan
        data, classes = self._labels(data)
        return data, classes, plan

    def _labels(self, data: dict[str, datasets.Dataset]) -> tuple[dict[str, datasets.Dataset], tuple[str, ...]]:
        """Label values -> class indices. Values are class names, or 0-based indices into the given classes."""
        label = self.label
        feature = next(iter(data.values())).features[label]
        if isinstance(feature, datasets.ClassLabel):
            theirs = tuple(feature.names)
            if self.classes is None or self.classes == theirs:
                given = {s: np.asarray(d[label], dtype=np.int64) for s, d in data.items()}
                for split_name, given_ids in given.items():
                    if (given_ids < 0).any():
                        row = int(np.flatnonzero(given_ids < 0)[0])
                        raise UsageError(f"{self.name}: {split_name} row {row} has no label in column '{label}'")
                return data, theirs
            values: dict[str, Sequence[Any]] = {
                s: [theirs[i] if i >= 0 else None for i in d[label]] for s, d in data.items()
            }
        else:
            values = {s: d[label] for s, d in data.items()}
        # Names are taken as given (no strip: "red" and "red " are two classes). The missing-value tokens ("none",
        # "nan", "") apply to label values read from a column, never to class folders' names, which are classes.
        missing = _missing_label if self.label_column else (lambda value: value is None)
        names = self.classes
        if names is None:
            by_split = {s: {str(v) for v in column if not missing(v)} for s, column in values.items()}
            numeric = {s: all(re.fullmatch(r"-?\d+", v) for v in found) for s, found in by_split.items() if found}
            if len(set(numeric.values())) > 1:
                numbers = next(s for s, n in numeric.items() if n)
                text = next(s for s, n in numeric.items() if not n)
                raise UsageError(
                    f"{self.name}: the labels in column '{label}' are numbers in the {numbers} split and names in "
                    f"the {text} split; give every split the same kind (or the class names in a task file's classes)"
                )
            found = set().union(*by_split.values())
            names = tuple(sorted(found, key=int) if all(re.fullmatch(r"-?\d+", v) for v in found) else sorted(found))
        if self.classes is None and len(names) < 2:
            shown = f"only the class '{names[0]}'" if names else "no labels at all"
            raise UsageError(f"{self.name} has {shown} in column '{label}'; a probe needs at least two classes")
        index = {n: i for i, n in enumerate(names)}
        out = {}
        for split_name, column in values.items():
            ids = np.empty(len(column), dtype=np.int64)
            for row, value in enumerate(column):
                if missing(value):
                    raise UsageError(
                        f"{self.name}: {split_name} row {row} has no label in column '{label}' (got {value!r}); "
                        "give every image a label, or drop it"
                    )
                text = str(value)
                if text in index:
                    ids[row] = index[text]
                elif self.classes is not None and _is_index(value) and 0 <= int(value) < len(names):
                    ids[row] = int(value)
                else:
                    raise UsageError(
                        f"{self.name}: label '{text}' ({split_name} row {row}) is not one of the classes: "
                        f"{', '.join(names)}"
                    )
            out[split_name] = (
                data[split_name]
                .remove_columns([label])
                .add_column(label, ids, feature=datasets.ClassLabel(names=list(names)))
            )
        return out, names

    def _build(self, listing: Listing) -> _Prepared:
        data, classes, plan = self._normalise(listing)
        bad = self._check(listing, data)
        before, original = self._class_counts(data, classes), dict(data)
        for split_name in data:
            drop = [b["index"] for b in bad if b["split"] == split_name]
            if drop:
                data[split_name] = data[split_name].select(np.setdiff1d(np.arange(len(data[split_name])), drop))
        after = self._class_counts(data, classes)
        for name, count in before.items():
            if count and not after[name]:  # never a task silently trained and reported without one of its classes
                index = classes.index(name)
                example = next((b for b in bad if original[b["split"]][self.label][b["index"]] == index), bad[0])
                raise UsageError(
                    f"{self.name}: all {count} images of class '{name}' are unreadable (e.g. {example['file']}: "
                    f"{example['reason']}); fix or remove them, or leave the class out of the data"
                )
        splits = apply_plan(data, plan, self.label, self.fractions, classes, self.name)
        if plan[0] != "keep":
            err_console.print(split_note(self.name, plan, self.fractions, splits), markup=False, highlight=False)
        if self.label is not None and classes:
            # A declared class without training images would still count in chance level and macro-F1.
            counts = np.bincount(np.asarray(splits["train"][self.label]), minlength=len(classes))
            empty = [name for name, count in zip(classes, counts, strict=True) if not count]
            if empty:
                raise UsageError(
                    f"{self.name}: class '{empty[0]}' has no training images"
                    + (f" (nor {', '.join(repr(e) for e in empty[1:])})" if len(empty) > 1 else "")
                    + f"; every class needs some. Classes: {', '.join(classes)}"
                )
        duplicates = self._check_duplicates(splits)
        return _Prepared(datasets.DatasetDict(splits), classes, bad, duplicates)

    def _check_duplicates(self, splits: dict[str, datasets.Dataset]) -> int:
        """How many validation and test images have the content of an image in another split: refused (a UsageError
        with the count and one example) unless `allow_duplicates`; then the count, recorded with every result."""
        seen: dict[str, tuple[str, str]] = {}  # content hash -> (split, file) of its first appearance
        repeated, example = 0, None
        for split in PROBE_SPLITS:
            images = splits[split].cast_column(self.image_column, datasets.Image(decode=False))[self.image_column]
            for row, value in enumerate(images):
                digest, file = _content_hash(value), value.get("path") or f"{split} row {row}"
                if digest is None:
                    continue
                first = seen.setdefault(digest, (split, file))
                if first[0] != split:
                    repeated += 1
                    example = example or (first, (split, file))
        if repeated and not self.allow_duplicates:
            assert example is not None
            (split_a, file_a), (split_b, file_b) = example
            raise UsageError(
                f"{self.name}: {repeated} image{'' if repeated == 1 else 's'} in one split have the content of an image "
                f"in another (e.g. {Path(file_b).name} in {split_b} is {Path(file_a).name} in {split_a}): a probe would "
                "be scored on what it trained on. Remove them, or allow this in a task file: allow_duplicates = true"
            )
        return repeated

    def duplicates(self) -> int:
        """Images in validation or test with the content of an image in another split (0 unless allowed)."""
        return self._prepare().duplicates

    def _class_counts(self, data: dict[str, datasets.Dataset], classes: tuple[str, ...]) -> dict[str, int]:
        """Images per class over every used split (none counted for data without a label column)."""
        if self.label is None or not classes:
            return {}
        counts = sum(
            (np.bincount(np.asarray(d[self.label], dtype=np.int64), minlength=len(classes)) for d in data.values()),
            np.zeros(len(classes), dtype=np.int64),
        )
        return {name: int(n) for name, n in zip(classes, counts)}

    def _check(self, listing: Listing, data: dict[str, datasets.Dataset]) -> list[dict[str, Any]]:
        """Decode every image once (as extraction will); the verdicts are cached by content."""
        key = stable_hash(
            {
                "format": SOURCE_FORMAT,
                "content": listing.content,
                "image_column": self.image_column,
                "splits": self.splits,
                "used": list(data),
                "max_pixels": max_image_pixels(),
            }
        )
        cached = paths.home() / "sources" / "checks" / f"{key}.json"
        bad = None
        if cached.is_file():
            try:
                bad = json.loads(cached.read_text())["bad"]
            except (ValueError, KeyError, TypeError):
                bad = None  # damaged: check again
        if bad is None:
            bad = []
            column = self.image_column
            with progress_bar(transient=True) as progress:
                job = progress.add_task(f"Checking the images of {self.name}", total=sum(len(d) for d in data.values()))
                for split_name, split in data.items():
                    view = split.select_columns([column]).cast_column(column, datasets.Image(decode=False))
                    row = 0
                    for batch in view.iter(batch_size=256):
                        for value in batch[column]:
                            reason = image_problem(value)
                            if reason is not None:
                                entry = {
                                    "split": split_name,
                                    "index": row,
                                    "reason": reason,
                                    "file": self._file_name(listing, split_name, row, value),
                                }
                                if self.strict:
                                    raise self._strict_error(entry)
                                bad.append(entry)
                            row += 1
                        progress.advance(job, len(batch[column]))
            write_json(cached, {"bad": bad, "checked": sum(len(d) for d in data.values())})
        if bad and self.strict:
            raise self._strict_error(bad[0])
        for entry in bad[:LISTED_BAD_FILES]:
            err_console.print(
                f"Warning: skipped unreadable image {entry['file']} in {self.name} ({entry['reason']})",
                markup=False,
                highlight=False,
            )
        if len(bad) > LISTED_BAD_FILES:
            err_console.print(
                f"Warning: skipped {len(bad) - LISTED_BAD_FILES} more unreadable images in {self.name} "
                f"({len(bad)} in all, counted in the result file)",
                markup=False,
                highlight=False,
            )
        return bad

    def _file_name(self, listing: Listing, split: str, row: int, value: dict[str, Any]) -> str:
        path = value.get("path")
        if path and listing.root is not None:
            try:
                return Path(path).relative_to(listing.root).as_posix()
            except ValueError:
                return str(path)
        return f"{split} row {row}" + (f" ({Path(path).name})" if path else "")

    def _strict_error(self, entry: dict[str, Any]) -> RunError:
        return RunError(
            f"Unreadable image {entry['file']} in {self.name} ({entry['reason']}); "
            f"without --strict, unreadable images are skipped and counted"
        )


# Label values that mean "no label" in CSV and parquet files (pandas and spreadsheets write NaN for empty cells).
MISSING_LABELS = ("", "nan", "none", "null")


def _missing_label(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and value.strip().lower() in MISSING_LABELS


def _is_index(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, (int, np.integer)) or (isinstance(value, str) and value.isdigit())


def _content_hash(value: dict[str, Any]) -> str | None:
    """An image's content hash: of its bytes, or of the file it names (None when there is neither)."""
    if value.get("bytes") is not None:
        return hashlib.sha256(value["bytes"]).hexdigest()
    return file_hash(Path(value["path"])) if value.get("path") else None


def file_hash(path: Path) -> str | None:
    """Content hash of a file, remembered for this process while its size and mtime stay the same."""
    try:
        stat = path.stat()
    except OSError:
        return None
    key = (str(path), stat.st_size, stat.st_mtime_ns, stat.st_ino)
    if key not in _FILE_HASHES:
        _FILE_HASHES[key] = file_sha256(path)
    return _FILE_HASHES[key]


def image_extensions() -> set[str]:
    """The file extensions of the image formats PIL can open (lower case, with the dot)."""
    from PIL import Image

    return {ext.lower() for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN}


def visible(path: Path, root: Path) -> bool:
    """Whether `path` lies in no hidden folder under `root` and is not hidden itself."""
    return not any(part.startswith(".") for part in path.relative_to(root).parts)


def resolve_path(path: str, base: Path | None) -> str:
    """A spec's PATH, against `base` (a task file's folder) when relative and a base is given."""
    if base is None or Path(path).is_absolute():
        return path
    return str(base / path)


def path_images(paths_: list[Path], labels: list[str], image_column: str, label: str) -> datasets.Dataset:
    """Images by path (decoded only when used) with their label values."""
    return datasets.Dataset.from_dict(
        {image_column: [{"path": str(p), "bytes": None} for p in paths_], label: labels},
        features=datasets.Features({image_column: datasets.Image(), label: datasets.Value("string")}),
    )
