"""The csv scheme: a CSV manifest of image files and their labels."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from ...core.errors import UsageError
from ...core.storage import stable_hash
from .registry import SCHEMES
from .user import Listing, UserSource, file_hash, path_images, resolve_path


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
        return cls(path=resolve_path(path, base), **options)

    def task_name(self) -> str:
        return Path(self.path).stem

    def read(self) -> Listing:
        manifest = Path(self.path)
        if not manifest.is_file():
            raise UsageError(f"No CSV file at {self.path}")
        manifest = manifest.resolve()
        with open(manifest, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            rows = list(reader)
            columns = list(reader.fieldnames or [])
        repeated = sorted({c for c in columns if columns.count(c) > 1})
        if repeated:  # DictReader would keep the last one silently
            raise UsageError(f"{self.path} has the column '{repeated[0]}' more than once; give each column one name")
        path_column = self.image_column if self.image_column in columns else "path"
        label = self.label
        assert label is not None, "a labelled scheme always has a label column (UserSource.__post_init__)"
        for column, what in (
            (path_column, f"image column '{self.image_column}' (or 'path')"),
            (label, f"label column '{label}'"),
        ):
            if column not in columns:
                raise UsageError(f"No {what} in {self.path}. Columns: {', '.join(columns) or 'none'}")
        base = manifest.parent
        by_split: dict[str, tuple[list[Path], list[str]]] = {}
        content: list[Any] = [file_hash(manifest)]
        for number, row in enumerate(rows, start=2):  # line 1 is the header
            file = base / (row[path_column] or "").strip()
            self._check_inside(file, base, f"{self.path} line {number}")
            split = (row.get("split") or "").strip() or "all"
            files, labels = by_split.setdefault(split, ([], []))
            files.append(file)
            labels.append(row[label])
            content.append(file_hash(file) if file.is_file() else None)
        if not rows:
            raise UsageError(f"{self.path} lists no images")
        data = {
            split: path_images(files, labels, self.image_column, label) for split, (files, labels) in by_split.items()
        }
        return Listing(data, stable_hash(content, 32), str(manifest), base)
