"""The parquet scheme: a parquet file, or a folder of them, with an image column and a label column."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import datasets

from ...core.errors import RunError, UsageError
from ...core.storage import stable_hash
from ..task import PROBE_SPLITS
from .registry import SCHEMES
from .user import Listing, UserSource, file_hash, resolve_path, visible


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
        return cls(path=resolve_path(path, base), **options)

    def task_name(self) -> str:
        return Path(self.path).resolve().stem

    def read(self) -> Listing:
        import pyarrow.parquet as pq

        location = Path(self.path)
        if location.is_file():
            root, files = location.parent, [location]
        elif location.is_dir():
            root, files = location, sorted(p for p in location.rglob("*.parquet") if visible(p, location))
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
        content = [(f.relative_to(root).as_posix(), file_hash(f)) for f in files]
        return Listing(data, stable_hash(content, 32), str(location.resolve()), root)
