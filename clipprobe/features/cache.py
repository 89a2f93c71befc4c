"""The feature cache: .npy arrays keyed by a hash of everything that changes them, with checksums."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..core import paths
from ..core.errors import RunError
from ..core.storage import atomic_path, file_sha256, stable_hash, write_json
from .chunks import ChunkStore

# Bump when the extraction code changes what it stores, so old cache entries are not reused.
# 3: images decoded and resized in uint8 by torchvision (clipprobe.features.decode), no longer through PIL.
# 4: 16-bit, 32-bit and float grey images scaled by their mode's range (clipprobe.data.depth), no longer clipped.
CACHE_FORMAT = 4


@dataclass(frozen=True)
class FeatureKey:
    """Everything that decides one cached array, in one value: the extractor's identity (model, weights, precision,
    layer, preprocessing, ...), the data's fingerprint and the split (or, for counterfactual pairs, the column).
    Extraction and the sensitivity score's pairs both key their arrays with it; a new field that changes features
    goes into the extractor's identity, and every key follows."""

    extractor: dict[str, Any]
    data: str
    split: str

    @property
    def digest(self) -> str:
        return stable_hash(
            {"format": CACHE_FORMAT, "extractor": self.extractor, "data": self.data, "split": self.split}, 32
        )


class FeatureCache:
    """Features as .npy files keyed by a hash of everything that changes them.

    The .json beside each array is written last and holds the array's checksum: an array with
    no .json (a killed run) is recomputed; one whose checksum does not match is reported."""

    def __init__(self, root: Path | None = None):
        self.root = Path(root) if root is not None else paths.features_dir()

    def key(self, identity: dict[str, Any], data_fingerprint: str, split: str) -> str:
        """The digest of FeatureKey(identity, data_fingerprint, split): the entry's file name."""
        return FeatureKey(identity, data_fingerprint, split).digest

    def _paths(self, key: str) -> tuple[Path, Path]:
        folder = self.root / key[:2]
        return folder / f"{key}.npy", folder / f"{key}.json"

    def has(self, key: str) -> bool:
        return self._paths(key)[1].exists()

    def meta(self, key: str) -> dict[str, Any]:
        array_path, meta_path = self._paths(key)
        try:
            return json.loads(meta_path.read_text())
        except ValueError as exc:
            raise RunError(
                f"Corrupted feature cache entry {meta_path}: {exc}. Re-run with --refresh to recompute it"
            ) from exc

    def load(self, key: str) -> np.ndarray:
        array_path, meta_path = self._paths(key)
        meta = self.meta(key)
        problem = None
        if not array_path.exists():
            problem = "the array file is missing"
        elif file_sha256(array_path) != meta.get("sha256"):
            problem = "its checksum does not match"
        if problem is None:
            try:
                return np.load(array_path, mmap_mode="r")
            except (ValueError, OSError) as exc:
                problem = str(exc)
        raise RunError(f"Corrupted feature cache file {array_path} ({problem}). Re-run with --refresh to recompute it")

    def save(self, key: str, array: np.ndarray, meta: dict[str, Any]) -> None:
        array_path, meta_path = self._paths(key)
        with atomic_path(array_path) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, np.ascontiguousarray(array, dtype=np.float32))
        write_json(meta_path, {**meta, "shape": list(array.shape), "sha256": file_sha256(array_path)})

    def parts(self, key: str, rows: int, chunk_rows: int) -> ChunkStore:
        """The chunks of an entry still being extracted (see clipprobe.features.chunks), beside where the entry will be."""
        return ChunkStore(self._paths(key)[0].with_suffix(".parts"), rows, chunk_rows)

    def save_chunks(self, key: str, store: ChunkStore, meta: dict[str, Any]) -> None:
        """Assemble a complete ChunkStore into the entry (chunk by chunk, through a memory map), then drop the parts."""
        array_path, meta_path = self._paths(key)
        array = store.assemble(array_path)
        write_json(meta_path, {**meta, "shape": list(array.shape), "sha256": file_sha256(array_path)})
        store.remove()


@dataclass
class FeatureSet:
    """The features of every split of one data source under one extractor."""

    arrays: dict[str, np.ndarray]
    meta: dict[str, Any]
    computed: list[str]
