"""Few-shot samples: k training examples per class, stratified and seeded, nested across k."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Union

import numpy as np

from ..core.errors import UsageError

ALL = "all"
Shots = Union[int, str]  # k examples per class, or "all" (the whole train split)
SHOTS_FORM = "positive integers and/or 'all' separated by commas, e.g. 1,2,4,8,16,all"


def parse_shots(spec: str | Sequence[Shots]) -> tuple[Shots, ...]:
    """ "1,2,4,all" -> (1, 2, 4, "all"): sorted, duplicates dropped; anything else is a UsageError showing the form."""
    parts = [p.strip() for p in spec.split(",")] if isinstance(spec, str) else list(spec)
    chosen: set[Shots] = set()
    for part in parts:
        if str(part).lower() == ALL:
            chosen.add(ALL)
            continue
        try:
            k = int(part)
        except (TypeError, ValueError):
            k = 0
        if k < 1 or str(k) != str(part).strip():
            raise UsageError(f"--shots expects {SHOTS_FORM}; got '{spec}'")
        chosen.add(k)
    if not chosen:
        raise UsageError(f"--shots expects {SHOTS_FORM}; got '{spec}'")
    return tuple(sorted(k for k in chosen if k != ALL)) + ((ALL,) if ALL in chosen else ())


def shots_label(shots: Shots) -> str:
    return f"{shots}-shot"


def shortfall(labels: np.ndarray, classes: tuple[str, ...], shots: Shots) -> str | None:
    """Why `shots` examples per class cannot be drawn from these labels, or None when they can."""
    if shots == ALL:
        return None
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=len(classes))
    short = [f"'{name}' has {int(count)}" for name, count in zip(classes, counts) if count < shots]
    if not short:
        return None
    return f"{shots} per class needs {shots} training examples of every class; " + ", ".join(short)


def sample_per_class(labels: np.ndarray, n_classes: int, shots: Shots, seed: int) -> np.ndarray:
    """Indices (sorted) of `shots` examples of each class, drawn without replacement; "all" keeps every index.

    One permutation per class from the seed, and the first k of it: for a given seed the 1-shot sample lies
    inside the 2-shot one, and so on, so a curve over k moves only by the examples added, not by a fresh draw
    at every k. Call `shortfall` first: a class with fewer than k examples raises ValueError here."""
    labels = np.asarray(labels, dtype=np.int64)
    if isinstance(shots, str):  # ALL
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    chosen = []
    for label in range(n_classes):
        members = np.flatnonzero(labels == label)
        if len(members) < shots:
            raise ValueError(f"class {label} has {len(members)} examples, fewer than {shots}")
        chosen.append(rng.permutation(members)[:shots])
    return np.sort(np.concatenate(chosen))
