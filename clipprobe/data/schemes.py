"""Users' own data as tasks: dataset schemes, splits by label, unreadable images, task files.

`--dataset SCHEME:PATH` and a task file's `source = "SCHEME:PATH"` name a source through the SCHEMES
registry (hf, imagefolder, parquet, csv). Every scheme lists its rows cheaply (`_read`), and shares the
rest: split names mapped to train / validation / test, labels turned into a ClassLabel, every image
decoded once (unreadable ones skipped and counted, or an error with `strict`), missing splits carved
out by label with a fixed seed. The fingerprint comes from the content, never from paths or clocks,
so the feature cache is reused until the data changes.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import math
import os
import re
from contextlib import nullcontext
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

import datasets
import numpy as np

from ..core import paths
from ..core.errors import RunError, UsageError
from ..core.progress import err_console, progress_bar
from ..core.registry import Registry
from ..core.storage import file_sha256, stable_hash, write_json
from .task import PROBE_SPLITS

# Bump when listing, checking or splitting changes which rows a source yields, so old features are not reused.
SOURCE_FORMAT = 2
# Unreadable files named in warnings and in the result file (all of them are counted).
LISTED_BAD_FILES = 5


@dataclass(frozen=True)
class SplitFractions:
    """How a source without train / validation / test splits is split, by label, with a fixed seed.

    A source with train and test but no validation split gets validation carved from train in the same
    proportion (validation / (train + validation), 1/8 with the defaults)."""

    train: float = 0.7
    validation: float = 0.1
    test: float = 0.2
    seed: int = 0

    def __post_init__(self):
        values = [getattr(self, split) for split in PROBE_SPLITS]
        numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        if not numbers or not all(0 < v < 1 for v in values) or abs(sum(values) - 1) > 1e-6:
            shown = ", ".join(f"{split}={getattr(self, split)!r}" for split in PROBE_SPLITS)
            raise UsageError(f"Split fractions must each lie between 0 and 1 and add up to 1, got {shown}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise UsageError(f"The split seed must be an integer, got {self.seed!r}")

    def carve(self, split: str) -> float:
        """The share of train that becomes `split` when only that split is missing."""
        return getattr(self, split) / (self.train + getattr(self, split))


@dataclass(frozen=True)
class _Listing:
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


SCHEMES: Registry[type] = Registry("dataset scheme")
_PREPARED: dict[str, _Prepared] = {}
_FILE_HASHES: dict[tuple, str] = {}


def list_schemes() -> list[str]:
    return SCHEMES.names()


@dataclass(frozen=True, kw_only=True)
class UserSource:
    """Shared by every scheme: column and split names, how to split, how unreadable images are handled.

    `label` None leaves labels as the data has them (then the data must have its splits). `splits` maps a
    probe split to the data's name for it, e.g. {"validation": "val"}. With `strict`, the first unreadable
    image is an error instead of being skipped."""

    scheme: ClassVar[str] = ""
    labelled: ClassVar[bool] = False  # the scheme itself makes the label column (named "label" unless given)
    label_column: ClassVar[bool] = True  # the data has label columns to choose from (not so for class folders)

    name: str = ""
    image_column: str = "image"
    label: str | None = None
    classes: tuple[str, ...] | None = None
    splits: tuple[tuple[str, str], ...] = ()
    fractions: SplitFractions = SplitFractions()
    strict: bool = False
    # A manifest's image paths must lie inside its folder (no ../ or absolute path out of it) unless this is set.
    allow_outside_root: bool = False

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

    def _read(self) -> _Listing:
        raise NotImplementedError

    def task_name(self) -> str:
        """A task over this source alone is named after its path."""
        return self.scheme

    # --- the DataSource protocol ---------------------------------------------------------------------

    def load(self) -> datasets.DatasetDict:
        return self._prepare().data

    def fingerprint(self) -> str:
        """From the content and the options that decide which rows land in which split (not from paths)."""
        listing = self._read()
        _, plan = self._plan(listing.data)
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
        return self._normalise(self._read())[1]

    def skipped(self) -> dict[str, Any]:
        """Unreadable images left out: how many, and the first few by name with the reason."""
        bad = self._prepare().bad
        return {
            "count": len(bad),
            "files": [{"file": b["file"], "reason": b["reason"]} for b in bad[:LISTED_BAD_FILES]],
        }

    def location(self) -> str:
        """Where the data lives (scheme and absolute location): two sources at one location are the same data."""
        return f"{self.scheme}:{self._read().where}"

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
        }

    def _prepare(self) -> _Prepared:
        listing = self._read()
        key = stable_hash({"where": listing.where, "content": listing.content, "options": self._options()})
        prepared = _PREPARED.get(key)
        if prepared is None:
            prepared = _PREPARED[key] = self._build(listing)
        if self.strict and prepared.bad:
            raise self._strict_error(prepared.bad[0])
        return prepared

    def _plan(self, raw: dict[str, datasets.Dataset]) -> tuple[dict[str, datasets.Dataset], tuple[str, ...]]:
        """The splits used, by probe name, and what to do: ("keep",), ("carve", split) or ("pool",)."""
        mapping = dict(self.splits)
        named = {}
        for split in PROBE_SPLITS:
            theirs = mapping.get(split, split)
            if theirs in raw:
                named[split] = raw[theirs]
            elif split in mapping:
                raise UsageError(f"{self.name} has no split '{theirs}' (named for {split}). Splits: {', '.join(raw)}")
        if len(named) == 3:
            return named, ("keep",)
        if len(named) == 2 and "train" in named:
            missing = next(s for s in PROBE_SPLITS if s not in named)
            return named, ("carve", missing)
        if len(named) == 1:
            return named, ("pool",)
        if not named and len(raw) == 1:
            return dict(raw), ("pool",)
        if named:
            raise UsageError(
                f"{self.name} has {' and '.join(named)} splits but no train split; "
                f"name its splits in a task file's [splits] table"
            )
        raise UsageError(
            f"{self.name} has splits {', '.join(raw)} and none is called train, validation or test; "
            f'name them in a task file\'s [splits] table, e.g. train = "{next(iter(raw))}"'
        )

    def _normalise(self, listing: _Listing) -> tuple[dict[str, datasets.Dataset], tuple[str, ...], tuple[str, ...]]:
        """The used splits with an Image column and a ClassLabel label column, their classes, and the plan."""
        data, plan = self._plan(listing.data)
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
                ids = {s: np.asarray(d[label], dtype=np.int64) for s, d in data.items()}
                for split_name, values in ids.items():
                    if (values < 0).any():
                        row = int(np.flatnonzero(values < 0)[0])
                        raise UsageError(f"{self.name}: {split_name} row {row} has no label in column '{label}'")
                return data, theirs
            values = {s: [theirs[i] if i >= 0 else None for i in d[label]] for s, d in data.items()}
        else:
            values = {s: d[label] for s, d in data.items()}
        names = self.classes
        if names is None:
            found = {str(v).strip() for column in values.values() for v in column if not _missing_label(v)}
            names = tuple(sorted(found, key=int) if all(re.fullmatch(r"-?\d+", v) for v in found) else sorted(found))
        if self.classes is None and len(names) < 2:
            shown = f"only the class '{names[0]}'" if names else "no labels at all"
            raise UsageError(f"{self.name} has {shown} in column '{label}'; a probe needs at least two classes")
        index = {n: i for i, n in enumerate(names)}
        out = {}
        for split_name, column in values.items():
            ids = np.empty(len(column), dtype=np.int64)
            for row, value in enumerate(column):
                if _missing_label(value):
                    raise UsageError(
                        f"{self.name}: {split_name} row {row} has no label in column '{label}' (got {value!r}); "
                        "give every image a label, or drop it"
                    )
                text = str(value).strip()
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

    def _build(self, listing: _Listing) -> _Prepared:
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
        if plan[0] == "keep":
            splits = {s: data[s] for s in PROBE_SPLITS}
        elif plan[0] == "carve":
            train = data["train"]
            parts = split_by_label(
                np.asarray(train[self.label]), ("train", plan[1]), self.fractions, classes, self.name
            )
            splits = {**data, **{s: train.select(idx) for s, idx in parts.items()}}
        else:
            (pool,) = data.values()
            parts = split_by_label(np.asarray(pool[self.label]), PROBE_SPLITS, self.fractions, classes, self.name)
            splits = {s: pool.select(idx) for s, idx in parts.items()}
        return _Prepared(datasets.DatasetDict({s: splits[s] for s in PROBE_SPLITS}), classes, bad)

    def _class_counts(self, data: dict[str, datasets.Dataset], classes: tuple[str, ...]) -> dict[str, int]:
        """Images per class over every used split (none counted for data without a label column)."""
        if self.label is None or not classes:
            return {}
        counts = sum(
            np.bincount(np.asarray(d[self.label], dtype=np.int64), minlength=len(classes)) for d in data.values()
        )
        return {name: int(n) for name, n in zip(classes, counts)}

    def _check(self, listing: _Listing, data: dict[str, datasets.Dataset]) -> list[dict[str, Any]]:
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

    def _file_name(self, listing: _Listing, split: str, row: int, value: dict[str, Any]) -> str:
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


# Images above this many pixels are refused unread (a decompression bomb decodes a few KB into gigabytes).
DEFAULT_MAX_IMAGE_PIXELS = 64_000_000
MAX_PIXELS_VARIABLE = "CLIPPROBE_MAX_IMAGE_PIXELS"


def max_image_pixels() -> int:
    """The pixel limit: $CLIPPROBE_MAX_IMAGE_PIXELS, else DEFAULT_MAX_IMAGE_PIXELS."""
    text = os.environ.get(MAX_PIXELS_VARIABLE)
    if text is None:
        return DEFAULT_MAX_IMAGE_PIXELS
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise UsageError(f"{MAX_PIXELS_VARIABLE} must be a positive number of pixels, got '{text}'")
    return value


def image_problem(value: dict[str, Any]) -> str | None:
    """Why this image (datasets' {"bytes", "path"}) cannot be used, or None if it decodes to RGB."""
    from PIL import Image, UnidentifiedImageError

    data, path = value.get("bytes"), value.get("path")
    cap = max_image_pixels()
    try:
        if data is None:
            if not path:
                return "no image"
            if Path(path).exists() and not Path(path).is_file():
                return "not a regular file"  # a FIFO or a device would block a read forever
            data = Path(path).read_bytes()
        if not data:
            return "empty file"
        with Image.open(io.BytesIO(data)) as image:
            if image.width * image.height > cap:  # read from the header: nothing decoded yet
                return (
                    f"too large: {image.width}x{image.height} pixels, over the limit of {cap:,} "
                    f"(set {MAX_PIXELS_VARIABLE} to allow more)"
                )
            image.draft("RGB", (64, 64))  # JPEG: decode at reduced scale; every byte is still read
            image.load()
            image.convert("RGB")
    except FileNotFoundError:
        return "file not found"
    except UnidentifiedImageError:
        return "not an image PIL can read"
    except Exception as exc:  # PIL raises OSError, SyntaxError, ValueError, struct.error...
        text = re.sub(r"\s+", " ", re.sub(r" at 0x[0-9a-fA-F]+", "", str(exc))).strip()
        return text or type(exc).__name__
    return None


def split_by_label(
    labels: np.ndarray, parts: tuple[str, ...], fractions: SplitFractions, classes: tuple[str, ...], source: str
) -> dict[str, np.ndarray]:
    """Row indices for each of `parts` (train first), stratified by label, the same on every run."""
    from sklearn.model_selection import train_test_split

    counts = np.bincount(labels, minlength=len(classes))
    for name, count in zip(classes, counts):
        if 0 < count < len(parts):
            raise UsageError(
                f"Class '{name}' has only {count} example{'' if count == 1 else 's'} in {source}; "
                f"a stratified {'/'.join(parts)} split needs at least {len(parts)} per class"
            )
    present = int((counts > 0).sum())
    # Each step takes its split out of the rows left (test first); train is what remains.
    if len(parts) == 3:
        steps = [("test", fractions.test), ("validation", fractions.carve("validation"))]
    else:
        steps = [(parts[1], fractions.carve(parts[1]))]
    rows, out = np.arange(len(labels)), {}
    for split, share in steps:
        # sklearn's rounding (up), immune to float error: 0.2 * 35 is 7.000000000000001, which means 7 rows.
        n = max(1, math.ceil(share * len(rows) - 1e-9))
        if n < present or len(rows) - n < present:
            raise UsageError(
                f"{source} has {len(labels)} examples, too few for a stratified {'/'.join(parts)} split "
                f"of {present} classes: the {split} split would get {n}"
            )
        try:
            rows, out[split] = train_test_split(rows, test_size=n, stratify=labels[rows], random_state=fractions.seed)
        except ValueError as exc:
            raise UsageError(f"Cannot split {source} by label into {'/'.join(parts)}: {exc}") from None
    out["train"] = rows
    return {split: np.sort(out[split]) for split in parts}


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


def _file_hash(path: Path) -> str | None:
    """Content hash of a file, remembered for this process while its size and mtime stay the same."""
    try:
        stat = path.stat()
    except OSError:
        return None
    key = (str(path), stat.st_size, stat.st_mtime_ns, stat.st_ino)
    if key not in _FILE_HASHES:
        _FILE_HASHES[key] = file_sha256(path)
    return _FILE_HASHES[key]


def _image_extensions() -> set[str]:
    from PIL import Image

    return {ext.lower() for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN}


def _visible(path: Path, root: Path) -> bool:
    return not any(part.startswith(".") for part in path.relative_to(root).parts)


def _resolve(path: str, base: Path | None) -> str:
    if base is None or Path(path).is_absolute():
        return path
    return str(base / path)


def _path_images(paths_: list[Path], labels: list[str], image_column: str, label: str) -> datasets.Dataset:
    """Images by path (decoded only when used) with their label values."""
    return datasets.Dataset.from_dict(
        {image_column: [{"path": str(p), "bytes": None} for p in paths_], label: labels},
        features=datasets.Features({image_column: datasets.Image(), label: datasets.Value("string")}),
    )


@SCHEMES.register("imagefolder")
@dataclass(frozen=True)
class ImageFolderSource(UserSource):
    """A folder with one sub-folder of images per class (`root/red/x.jpg`), optionally inside split folders
    (`root/train/red/x.jpg`; split folders are train, validation, test or the names in `splits`)."""

    scheme: ClassVar[str] = "imagefolder"
    labelled: ClassVar[bool] = True
    label_column: ClassVar[bool] = False
    root: str

    @classmethod
    def from_spec(cls, path: str, base: Path | None = None, **options) -> ImageFolderSource:
        return cls(root=_resolve(path, base), **options)

    def task_name(self) -> str:
        return Path(self.root).resolve().name

    def folder(self) -> Path:
        root = Path(self.root)
        if not root.is_dir():
            raise UsageError(f"No image folder at {self.root}")
        return root

    def _read(self) -> _Listing:
        root = self.folder().resolve()  # rows hold absolute paths: they stay valid if the working folder changes
        extensions = _image_extensions()

        def images(folder: Path) -> list[Path]:
            return sorted(
                p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in extensions and _visible(p, root)
            )

        def has_images(folder: Path) -> bool:
            return any(p.suffix.lower() in extensions and p.is_file() and _visible(p, root) for p in folder.rglob("*"))

        def folders(parent: Path) -> list[Path]:  # folders without any image (e.g. __pycache__) do not count
            return [d for d in sorted(parent.iterdir()) if d.is_dir() and not d.name.startswith(".") and has_images(d)]

        def loose(parent: Path) -> None:
            files = [
                p
                for p in sorted(parent.iterdir())
                if p.is_file() and p.suffix.lower() in extensions and _visible(p, root)
            ]
            if files:
                raise UsageError(
                    f"{self.name}: {files[0].relative_to(root).as_posix()} is not inside a class folder "
                    f"(expected {self.root}/CLASS/IMAGE or {self.root}/SPLIT/CLASS/IMAGE)"
                )

        split_names = set(PROBE_SPLITS) | {theirs for _, theirs in self.splits}
        top = folders(root)
        split_dirs = [d for d in top if d.name in split_names]
        if split_dirs and len(split_dirs) < len(top):
            others = [d.name for d in top if d.name not in split_names]
            raise UsageError(
                f"{self.name} mixes split folders ({', '.join(d.name for d in split_dirs)}) and other folders "
                f"({', '.join(others)}); name every split folder in a task file's [splits] table"
            )
        loose(root)
        layout = {d.name: d for d in split_dirs} if split_dirs else {"all": root}
        label = self.label
        data, content = {}, []
        for split_name, split_dir in layout.items():
            if split_dir is not root:
                loose(split_dir)
            files, labels = [], []
            for class_dir in folders(split_dir):
                for path in images(class_dir):
                    files.append(path)
                    labels.append(class_dir.name)
                    content.append((split_name, class_dir.name, path.relative_to(root).as_posix(), _file_hash(path)))
            data[split_name] = _path_images(files, labels, self.image_column, label)
        if not content:
            raise UsageError(
                f"No images in {self.root} (expected {self.root}/CLASS/IMAGE, e.g. {self.root}/red/0001.jpg)"
            )
        return _Listing(data, stable_hash(content, 32), str(root), root)


@SCHEMES.register("csv")
@dataclass(frozen=True)
class CsvSource(UserSource):
    """A CSV manifest with a header: a `path` column (or one named like the image column) of image files,
    relative to the CSV's folder, a label column, and optionally a `split` column."""

    scheme: ClassVar[str] = "csv"
    labelled: ClassVar[bool] = True
    path: str

    @classmethod
    def from_spec(cls, path: str, base: Path | None = None, **options) -> CsvSource:
        return cls(path=_resolve(path, base), **options)

    def task_name(self) -> str:
        return Path(self.path).stem

    def _read(self) -> _Listing:
        manifest = Path(self.path)
        if not manifest.is_file():
            raise UsageError(f"No CSV file at {self.path}")
        manifest = manifest.resolve()
        with open(manifest, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            rows = list(reader)
            columns = list(reader.fieldnames or [])
        path_column = self.image_column if self.image_column in columns else "path"
        label = self.label
        for column, what in (
            (path_column, f"image column '{self.image_column}' (or 'path')"),
            (label, f"label column '{label}'"),
        ):
            if column not in columns:
                raise UsageError(f"No {what} in {self.path}. Columns: {', '.join(columns) or 'none'}")
        base = manifest.parent
        by_split: dict[str, tuple[list[Path], list[str]]] = {}
        content: list[Any] = [_file_hash(manifest)]
        for number, row in enumerate(rows, start=2):  # line 1 is the header
            file = base / (row[path_column] or "").strip()
            self._check_inside(file, base, f"{self.path} line {number}")
            split = (row.get("split") or "").strip() or "all"
            files, labels = by_split.setdefault(split, ([], []))
            files.append(file)
            labels.append(row[label])
            content.append(_file_hash(file) if file.is_file() else None)
        if not rows:
            raise UsageError(f"{self.path} lists no images")
        data = {
            split: _path_images(files, labels, self.image_column, label) for split, (files, labels) in by_split.items()
        }
        return _Listing(data, stable_hash(content, 32), str(manifest), base)


@SCHEMES.register("parquet")
@dataclass(frozen=True)
class ParquetSource(UserSource):
    """A parquet file, or a folder of them, with an image column (bytes, a path, or datasets' Image) and a
    label column. In a folder, files whose name starts with a split name (train-0000.parquet) or that lie in
    a split folder (train/x.parquet) form that split."""

    scheme: ClassVar[str] = "parquet"
    path: str

    @classmethod
    def from_spec(cls, path: str, base: Path | None = None, **options) -> ParquetSource:
        return cls(path=_resolve(path, base), **options)

    def task_name(self) -> str:
        return Path(self.path).resolve().stem

    def _read(self) -> _Listing:
        import pyarrow.parquet as pq

        location = Path(self.path)
        if location.is_file():
            root, files = location.parent, [location]
        elif location.is_dir():
            root, files = location, sorted(p for p in location.rglob("*.parquet") if _visible(p, location))
        else:
            raise UsageError(f"No parquet file or folder at {self.path}")
        if not files:
            raise UsageError(f"No .parquet files in {self.path}")
        split_names = sorted(set(PROBE_SPLITS) | {theirs for _, theirs in self.splits}, key=len, reverse=True)

        def split_of(file: Path) -> str | None:
            relative = file.relative_to(root)
            if len(relative.parts) > 1 and relative.parts[0] in split_names:
                return relative.parts[0]
            return next((s for s in split_names if re.match(rf"{re.escape(s)}([-_.]|$)", file.stem)), None)

        groups: dict[str | None, list[Path]] = {}
        for file in files:
            groups.setdefault(split_of(file) if location.is_dir() else None, []).append(file)
        if None in groups and len(groups) > 1:
            raise UsageError(
                f"{self.name}: {groups[None][0].relative_to(root).as_posix()} belongs to no split, "
                f"while other files do (name files train-*.parquet, test-*.parquet, ...)"
            )
        data = {}
        for split, members in groups.items():
            try:
                parts = [datasets.Dataset(pq.read_table(str(f), memory_map=True)) for f in members]
            except Exception as exc:  # pyarrow raises its own types
                raise RunError(f"Cannot read parquet data in {self.path}: {exc}") from exc
            data[split or "all"] = parts[0] if len(parts) == 1 else datasets.concatenate_datasets(parts)
        content = [(f.relative_to(root).as_posix(), _file_hash(f)) for f in files]
        return _Listing(data, stable_hash(content, 32), str(location.resolve()), root)


@SCHEMES.register("hf")
@dataclass(frozen=True)
class HuggingFaceSource(UserSource):
    """A `datasets` dataset: a folder written by `save_to_disk`, a local data folder, or a hub name
    (ORG/NAME, read from the local cache when the hub is unreachable)."""

    scheme: ClassVar[str] = "hf"
    path: str
    config_name: str | None = None

    @classmethod
    def from_spec(cls, spec: str, base: Path | None = None, **options) -> HuggingFaceSource:
        path, _, config = spec.partition(":")
        if base is not None and not Path(path).is_absolute() and (base / path).exists():
            path = str(base / path)
        return cls(path, config or None, **options)

    def task_name(self) -> str:
        name = Path(self.path).name or self.path
        return f"{name}-{self.config_name}" if self.config_name else name

    def _load(self) -> datasets.DatasetDict | datasets.Dataset:
        from ..core.hub import hub_offline, hub_reachable

        local = Path(self.path)
        offline = False
        try:
            if (local / "dataset_dict.json").is_file() or (local / "state.json").is_file():
                return datasets.load_from_disk(self.path)
            if local.exists():
                return datasets.load_dataset(self.path, self.config_name)
            offline = not hub_reachable()
            with hub_offline() if offline else nullcontext():
                return datasets.load_dataset(self.path, self.config_name)
        except Exception as exc:  # datasets raises many types; the user needs the path and the reason
            if offline:
                raise RunError(
                    f"Cannot load dataset {self.path}: the Hugging Face hub is unreachable and it is not in "
                    f"the local cache. Save it with save_to_disk where there is network and use hf:FOLDER"
                ) from exc
            raise RunError(f"Cannot load dataset {self.path}: {exc}") from exc

    def _read(self) -> _Listing:
        data = self._load()
        if isinstance(data, datasets.Dataset):
            data = {"all": data}
        # `datasets` fingerprints every split from its content and history.
        content = {split: data[split]._fingerprint for split in sorted(data)}
        local = Path(self.path)
        return _Listing(dict(data), content, str(local.resolve()) if local.exists() else self.path)


@dataclass(frozen=True)
class PackagedImageFolder(ImageFolderSource):
    """An image folder shipped inside an installed Python package (found without importing the package)."""

    package: str = ""
    requirement: str = ""

    def folder(self) -> Path:
        package = _package_folder(self.package)
        if package is None:
            raise RunError(f"{self.name} needs the package {self.requirement}: pip install '{self.requirement}'")
        folder = package / self.root
        if not folder.is_dir():
            raise RunError(
                f"The installed {self.package} has no {self.root} folder; "
                f"pip install --force-reinstall '{self.requirement}'"
            )
        return folder

    def task_name(self) -> str:
        return self.package


def _package_folder(package: str) -> Path | None:
    """Where an installed package lives, found without importing it (importing may fail or be slow)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(spec.submodule_search_locations[0])
