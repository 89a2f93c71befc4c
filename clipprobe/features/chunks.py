"""Chunked extraction: features written in fixed row ranges, so a killed run resumes and shards can share the work.

A split of n rows is cut into chunks of `chunk_rows` rows (the last one shorter). Each chunk is encoded on its
own, written atomically as CHUNK.npy, then CHUNK.json with its row range and checksum, into a parts folder
beside the final cache entry. A chunk whose .json is missing (the process died while encoding or writing it)
does not exist as far as any later run is concerned, so a re-run computes exactly the chunks that lack one.
When every chunk is present, they are copied one at a time into the final array through a memory map, so
the peak memory of extraction is one chunk's features, whatever the size of the split.

Shards split the chunks of every missing split, enumerated split by split, round-robin: shard I of N takes
the chunks whose position in that enumeration is I modulo N. The assignment depends only on the data and
`chunk_rows`, so N processes on N machines (a Slurm array, torchrun) each compute their own chunks into the
shared cache, and `merge` (or the first `probe`) assembles them after checking that the chunks cover every
row exactly once.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import overload

import numpy as np

from ..core.errors import RunError, UsageError
from ..core.storage import atomic_path, file_sha256, write_json

DEFAULT_CHUNK_ROWS = 4096
SHARD_FORM = "I/N with 0 <= I < N, e.g. 0/4"


@dataclass(frozen=True)
class Shard:
    """Shard `index` of `count` (0-based)."""

    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def takes(self, position: int) -> bool:
        return position % self.count == self.index


@overload
def parse_shard(spec: str, environ: Mapping[str, str] = ...) -> Shard: ...


@overload
def parse_shard(spec: str | None, environ: Mapping[str, str] = ...) -> Shard | None: ...


def parse_shard(spec: str | None, environ: Mapping[str, str] = os.environ) -> Shard | None:
    """`--shard I/N`; without it, RANK and WORLD_SIZE as torchrun (or any launcher) sets them; else None.

    A malformed spec, or RANK/WORLD_SIZE that are not integers with 0 <= RANK < WORLD_SIZE, is a UsageError."""
    if spec is None:
        world = environ.get("WORLD_SIZE")
        if world is None or world.strip() == "1":
            return None
        rank = environ.get("RANK", "")
        if not (rank.isdigit() and world.isdigit() and int(rank) < int(world)):
            raise UsageError(
                f"RANK={rank!r} and WORLD_SIZE={world!r} do not name a shard: expected integers with "
                "0 <= RANK < WORLD_SIZE (or pass --shard I/N)"
            )
        return Shard(int(rank), int(world))
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", spec)
    if not match or not int(match[1]) < int(match[2]):
        raise UsageError(f"--shard expects {SHARD_FORM}; got '{spec}'")
    return Shard(int(match[1]), int(match[2]))


def chunk_ranges(rows: int, chunk_rows: int) -> list[tuple[int, int]]:
    if chunk_rows < 1:
        raise UsageError(f"--chunk-rows must be at least 1, got {chunk_rows}")
    return [(start, min(start + chunk_rows, rows)) for start in range(0, rows, chunk_rows)]


class ChunkStore:
    """The parts folder of one cache entry: CHUNK.npy / CHUNK.json files, one per row range."""

    def __init__(self, folder: Path, rows: int, chunk_rows: int):
        self.folder = Path(folder)
        self.rows = rows
        self.ranges = chunk_ranges(rows, chunk_rows)

    def _paths(self, start: int, stop: int) -> tuple[Path, Path]:
        name = f"rows-{start:010d}-{stop:010d}"
        return self.folder / f"{name}.npy", self.folder / f"{name}.json"

    def done(self, start: int, stop: int) -> bool:
        """A chunk counts once its .json (written last, with the array's checksum) is there."""
        return self._paths(start, stop)[1].exists()

    def missing(self) -> list[tuple[int, int]]:
        return [r for r in self.ranges if not self.done(*r)]

    def write(self, start: int, stop: int, array: np.ndarray) -> None:
        if array.shape[0] != stop - start:
            raise RunError(f"Chunk rows {start}-{stop} came out with {array.shape[0]} rows")
        array_path, meta_path = self._paths(start, stop)
        with atomic_path(array_path) as tmp, open(tmp, "wb") as f:
            np.save(f, np.ascontiguousarray(array, dtype=np.float32))
        write_json(
            meta_path, {"start": start, "stop": stop, "shape": list(array.shape), "sha256": file_sha256(array_path)}
        )

    def check(self) -> None:
        """Every row exactly once: each expected chunk present and intact, no chunk of another layout overlapping.

        A RunError names what is missing or overlapping (and with shards, which shard owed it)."""
        expected = {self._paths(*r)[1].name for r in self.ranges}
        found = {p.name for p in self.folder.glob("rows-*.json")} if self.folder.is_dir() else set()
        extra = sorted(found - expected)
        if extra:
            raise RunError(
                f"{self.folder} holds chunks of another layout ({', '.join(extra[:3])}"
                f"{', ...' if len(extra) > 3 else ''}), which would cover some rows twice: delete the folder "
                "and extract again with one --chunk-rows"
            )
        missing = [r for r in self.ranges if self._paths(*r)[1].name not in found]
        if missing:
            raise RunError(
                f"{len(missing)} of {len(self.ranges)} chunks missing in {self.folder} (rows "
                + ", ".join(f"{a}-{b}" for a, b in missing[:4])
                + (", ..." if len(missing) > 4 else "")
                + ")"
            )
        for start, stop in self.ranges:
            array_path, meta_path = self._paths(start, stop)
            meta = json.loads(meta_path.read_text())
            if (
                (meta["start"], meta["stop"]) != (start, stop)
                or not array_path.exists()
                or file_sha256(array_path) != meta["sha256"]
            ):
                raise RunError(
                    f"Chunk {array_path} is damaged (its checksum or row range does not match); delete it and "
                    "extract again: only that chunk is recomputed"
                )

    def assemble(self, target: Path) -> np.ndarray:
        """Copy the chunks, one at a time, into `target` (an .npy written through a memory map); returns it mapped."""
        self.check()
        if not self.ranges:  # an empty split: nothing to map (mmap refuses empty files)
            with atomic_path(target) as tmp, open(tmp, "wb") as f:
                np.save(f, np.empty((0, 0), dtype=np.float32))
            return np.load(target)
        width = np.load(self._paths(*self.ranges[0])[0], mmap_mode="r").shape[1]
        with atomic_path(target) as tmp:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(self.rows, width))
            for start, stop in self.ranges:
                out[start:stop] = np.load(self._paths(start, stop)[0], mmap_mode="r")
            out.flush()
            del out
        return np.load(target, mmap_mode="r")

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def shard_plan(splits: Iterable[tuple[str, ChunkStore]], shard: Shard | None) -> list[tuple[str, int, int]]:
    """(split, start, stop) of the chunks this process computes: the missing ones of its shard (all without one)."""
    plan, position = [], 0
    for split, store in splits:
        for start, stop in store.ranges:
            if (shard is None or shard.takes(position)) and not store.done(start, stop):
                plan.append((split, start, stop))
            position += 1
    return plan


def encode_chunks(
    plan: list[tuple[str, int, int]], stores: Mapping[str, ChunkStore], encode: Callable[[str, int, int], np.ndarray]
) -> None:
    """Encode and write each planned chunk in order (a kill loses at most the chunk being encoded)."""
    for split, start, stop in plan:
        stores[split].write(start, stop, encode(split, start, stop))
