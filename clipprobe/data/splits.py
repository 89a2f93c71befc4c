"""Splitting users' data into train / validation / test: which splits a source has, and those it lacks carved
out by label with a fixed seed (sklearn's stratified split), the same rows on every run."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core.errors import UsageError
from .task import PROBE_SPLITS

if TYPE_CHECKING:
    import datasets


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


def plan_splits(
    raw: dict[str, datasets.Dataset], names: tuple[tuple[str, str], ...], source: str
) -> tuple[dict[str, datasets.Dataset], tuple[str, ...]]:
    """The splits used, by probe name, and what to do: ("keep",), ("carve", split) or ("pool",).

    `names` maps a probe split to the data's name for it; `source` names the data in errors."""
    mapping = dict(names)
    named = {}
    used: dict[str, str] = {}
    for split in PROBE_SPLITS:
        theirs = mapping.get(split, split)
        if theirs in raw and theirs in used:
            # A probe scored on its training rows (or C chosen on them) would read as a result.
            raise UsageError(
                f"{source}: the probe's {used[theirs]} and {split} splits are both the data's split '{theirs}'; "
                "each must be a split of its own (or leave a split out to have it carved from train)"
            )
        if theirs in raw:
            used[theirs] = split
            named[split] = raw[theirs]
        elif split in mapping:
            raise UsageError(f"{source} has no split '{theirs}' (named for {split}). Splits: {', '.join(raw)}")
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
            f"{source} has {' and '.join(named)} splits but no train split; "
            f"name its splits in a task file's [splits] table"
        )
    raise UsageError(
        f"{source} has splits {', '.join(raw)} and none is called train, validation or test; "
        f'name them in a task file\'s [splits] table, e.g. train = "{next(iter(raw))}"'
    )


def apply_plan(
    data: dict[str, datasets.Dataset],
    plan: tuple[str, ...],
    label: str | None,
    fractions: SplitFractions,
    classes: tuple[str, ...],
    source: str,
) -> dict[str, datasets.Dataset]:
    """The train, validation and test splits of `plan_splits`' splits: kept, or the missing ones carved by label
    (`label` None only with the plan "keep": data without a label column cannot be carved)."""
    if plan[0] == "keep":
        splits = {s: data[s] for s in PROBE_SPLITS}
        return {s: splits[s] for s in PROBE_SPLITS}
    assert label is not None, "only data with a label column is carved by label (the readers check)"
    if plan[0] == "carve":
        train = data["train"]
        parts = split_by_label(np.asarray(train[label]), ("train", plan[1]), fractions, classes, source)
        splits = {**data, **{s: train.select(idx) for s, idx in parts.items()}}
    else:
        (pool,) = data.values()
        parts = split_by_label(np.asarray(pool[label]), PROBE_SPLITS, fractions, classes, source)
        splits = {s: pool.select(idx) for s, idx in parts.items()}
    return {s: splits[s] for s in PROBE_SPLITS}


def split_note(source: str, plan: tuple[str, ...], fractions: SplitFractions, splits: dict[str, Any]) -> str:
    """The one line that announces an automatic split: which splits were made, how, and their sizes."""
    sizes = ", ".join(f"{s} {len(splits[s]):,}" for s in PROBE_SPLITS)
    if plan[0] == "carve":
        share = fractions.carve(plan[1])
        return (
            f"{source} has no {plan[1]} split: {share:.0%} of its train split carved out by label (seed "
            f"{fractions.seed}); images: {sizes}"
        )
    shares = "/".join(f"{getattr(fractions, s):.0%}" for s in PROBE_SPLITS)
    return (
        f"{source} has no train, validation and test splits: split by label {shares} (seed {fractions.seed}); "
        f"images: {sizes}"
    )


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
