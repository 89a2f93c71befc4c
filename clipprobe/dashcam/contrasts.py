"""The experiment's rows over seeds and the differences between them, with the seed as the unit.

`Series` is one headline row while the experiment runs (a representation read one way, at each of its seeds);
`row_cell` summarises it on a task; `primary_contrasts` evaluates the pre-registered plan
(clipprobe.dashcam.preregistration), `exploratory_contrasts` every other planned-for-curiosity difference, each
family with its own correction (Holm; Benjamini-Hochberg)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..core.kinds import RowKind
from ..probes.intervals import bootstrap_intervals, confusion_counts, image_variance, metrics_from_counts
from ..probes.registry import get_probe
from ..results import Result
from ..stats.multiplicity import benjamini_hochberg, holm
from ..stats.seeds import SeedEstimate, paired_difference, unpaired_difference, within_range
from .preregistration import ALPHA, FAMILIES, Contrast, Side
from .records import Contrast as ContrastRecord
from .records import SensitivityCell, TaskCell

BALANCED_ACCURACY = "balanced accuracy"
# The family of every comparison the plan did not name (Benjamini-Hochberg q-values, labelled exploratory).
EXPLORATORY = "exploratory"


@dataclass
class Series:
    """One headline row while the experiment runs: a representation (all its seeds), a method, a layer, and per
    task the result of each seed (its test predictions kept for the seed-level statistics). `paired`: its seeds
    are the pretraining seeds (a policy's model, random weights), so it pairs seed by seed with another such row;
    a row with seeds of its own (a trained network, pixels) does not."""

    label: str
    method: str
    kind: RowKind
    baseline: str | None
    policy: str | None
    layer: str | None
    paired: bool
    # The probe that reads the row, by its registered name ("linear", "linear-pca:128"); None for a trained row.
    probe: str | None = None
    order: tuple[int, ...] = ()
    results: dict[str, dict[int, tuple[Result, Path]]] = field(default_factory=dict)
    sensitivity: dict[int, dict[str, SensitivityCell]] = field(default_factory=dict)

    def add(self, task: str, record: Result, path: Path) -> None:
        self.results.setdefault(task, {}).setdefault(record.seed, (record, path))

    def seeds(self, task: str) -> list[int]:
        return sorted(self.results.get(task, {}))

    def predictions(self, task: str, seeds: list[int] | None = None) -> list[np.ndarray]:
        kept = self.results[task]
        return [np.asarray(kept[s][0].predictions) for s in (seeds if seeds is not None else self.seeds(task))]

    def n_classes(self, task: str) -> int:
        return len(next(iter(self.results[task].values()))[0].classes)

    def scores(self, task: str, y: np.ndarray, seeds: list[int] | None = None) -> list[float]:
        """Balanced accuracy of each seed (in `seeds`' order) on the test labels `y`."""
        k = self.n_classes(task)
        return [
            float(metrics_from_counts(confusion_counts(y, p, k))["balanced_accuracy"])
            for p in self.predictions(task, seeds)
        ]

    def matches(self, side: Side) -> bool:
        """Whether this row is the one a pre-registered side names (by its policy or baseline, layer and probe)."""
        name = self.policy if self.policy is not None else self.baseline
        if name != side.row or self.kind is RowKind.ZERO_SHOT:
            return False
        if side.probe is None:
            return self.kind is RowKind.TRAINED
        return self.layer == side.layer and self.probe == side.probe


def row_cell(series: Series, task: str, y: np.ndarray) -> TaskCell:
    """A row on a task: the mean over seeds, their sd, and the mean's 95 % interval with the seed as the unit (the
    test images' share added, clipprobe.stats.seeds), kept within 0 to 1 (`within_range`); with one seed, the
    result's own percentile bootstrap over the test images (what `clipprobe probe` prints for it)."""
    seeds = series.seeds(task)
    per_seed = series.scores(task, y, seeds)
    first = series.results[task][seeds[0]][0]
    predictions = series.predictions(task, seeds)
    interval: list[float] | None
    if len(per_seed) == 1:  # one seed: no spread between seeds to show; the interval covers the test images only
        interval = bootstrap_intervals(y, predictions[0], series.n_classes(task))["balanced_accuracy"]
    else:
        estimate = paired_difference(per_seed, image_variance(y, predictions, series.n_classes(task)))
        interval = within_range(estimate.interval)
    return TaskCell(
        balanced_accuracy=float(np.mean(per_seed)),
        sd=float(np.std(per_seed, ddof=1)) if len(per_seed) > 1 else None,
        interval=interval,
        per_seed=per_seed,
        seeds=seeds,
        chance=1 / len(first.classes),
        n_test=first.metrics.n if first.metrics is not None else 0,
        results=[str(series.results[task][s][1]) for s in seeds],
        representations=[series.results[task][s][0].representation for s in seeds],
    )


def difference(row: Series, against: Series, task: str, y: np.ndarray) -> tuple[SeedEstimate, list[float], list[float]]:
    """Row minus reference on a task, in balanced accuracy: paired over the seeds both have when both rows' seeds
    are the pretraining seeds, Welch's over each row's own seeds otherwise; the test images' share added. Returns
    the estimate and the per-seed scores of each side."""
    k = row.n_classes(task)
    if row.paired and against.paired:
        seeds = sorted(set(row.seeds(task)) & set(against.seeds(task)))
        a, b = row.scores(task, y, seeds), against.scores(task, y, seeds)
        variance = image_variance(y, row.predictions(task, seeds), k, against.predictions(task, seeds))
        return paired_difference(np.subtract(a, b), variance), a, b
    a, b = row.scores(task, y), against.scores(task, y)
    variance = image_variance(y, row.predictions(task), k, against.predictions(task))
    return unpaired_difference(a, b, variance), a, b


def _record(
    family: str,
    name: str,
    claim: str | None,
    measure: str,
    task: str | None,
    row: Series,
    against: Series,
    estimate: SeedEstimate,
    a: list[float],
    b: list[float],
    margin: float | None = None,
) -> ContrastRecord:
    return ContrastRecord(
        family=family,
        name=name,
        claim=claim,
        measure=measure,
        task=task,
        row=row.label,
        layer=row.layer,
        against=against.label,
        against_layer=against.layer,
        paired=estimate.paired,
        estimate=estimate.estimate,
        se=estimate.se,
        df=estimate.df,
        interval=list(estimate.interval) if estimate.interval is not None else None,
        image_se=estimate.image_se,
        p=estimate.p,
        adjusted=None,
        equivalence=estimate.equivalence_p(margin) if margin is not None else None,
        margin=margin,
        verdict="",
        per_seed=list(a),
        per_seed_against=list(b),
    )


def primary_contrasts(rows: list[Series], labels: dict[str, np.ndarray]) -> list[ContrastRecord]:
    """The pre-registered contrasts that this run can evaluate (a contrast whose rows or task the run left out is
    skipped), family by family (clipprobe.dashcam.preregistration.FAMILIES: the primary contrasts, then the layer
    family), each family Holm-adjusted across its own contrasts, with their verdicts."""
    return [c for family, plan in FAMILIES.items() for c in _family(family, plan, rows, labels)]


def _family(
    family: str, plan: tuple[Contrast, ...], rows: list[Series], labels: dict[str, np.ndarray]
) -> list[ContrastRecord]:
    out = []
    for contrast in plan:
        pair = _find(rows, contrast)
        if pair is None or contrast.task not in labels:
            continue
        row, against = pair
        estimate, a, b = difference(row, against, contrast.task, labels[contrast.task])
        out.append(
            _record(
                family,
                contrast.name,
                contrast.claim,
                BALANCED_ACCURACY,
                contrast.task,
                row,
                against,
                estimate,
                a,
                b,
                contrast.margin,
            )
        )
    adjusted = holm([c.p for c in out])
    equivalent = holm([c.equivalence for c in out])
    for c, p, e in zip(out, adjusted, equivalent):
        c.adjusted, c.equivalence = p, e
        c.verdict = primary_verdict(p, e, c.margin)
    return out


def primary_verdict(adjusted: float | None, equivalence: float | None, margin: float | None) -> str:
    if adjusted is None:
        return "one seed: no seed-level test"
    if adjusted < ALPHA:
        return "resolved"
    if equivalence is not None and equivalence < ALPHA:
        return f"equivalent within ±{margin:g}"
    return "not resolved"


def _find(rows: list[Series], contrast: Contrast) -> tuple[Series, Series] | None:
    row = next((r for r in rows if r.matches(contrast.row) and contrast.task in r.results), None)
    against = next((r for r in rows if r.matches(contrast.against) and contrast.task in r.results), None)
    return None if row is None or against is None else (row, against)


def _exploratory_pairs(rows: list[Series]) -> Iterator[tuple[Series, Series]]:
    """Every comparison the tables show beyond the plan. Linear probes: each policy against salient captions at
    the same layer, each frozen row against random weights at its layer, against each trained network and against
    pixels, and each layer against the embedding within a policy. Other probes (the PCA-matched linear probe, the
    MLP): against the embedding's linear probe within the policy, and against random weights read the same way."""
    linear = get_probe("linear").method
    frozen = [r for r in rows if r.kind is RowKind.PROBE]
    controls = [r for r in rows if r.kind is RowKind.CONTROL]
    trained = [r for r in rows if r.kind is RowKind.TRAINED]
    pixels = [r for r in controls if r.baseline == "pixels" and r.method == linear]
    random = [r for r in controls if r.baseline == "random"]
    for row in frozen:
        plain = row.method == linear
        for other in frozen:
            if plain and other.policy == "salient" and row.policy not in (None, "salient"):
                if (other.layer, other.method) == (row.layer, row.method):
                    yield row, other
            if other.label == row.label and other.method == linear and other.layer == "embedding":
                if other is not row:
                    yield row, other
        for other in random:
            if (other.layer, other.method) == (row.layer, row.method):
                yield row, other
        if plain:
            for other in (*trained, *pixels):
                yield other, row
    for row in random:
        if row.method == linear:
            for other in (*trained, *pixels):
                yield other, row


def exploratory_contrasts(
    rows: list[Series], labels: dict[str, np.ndarray], primary: list[ContrastRecord]
) -> list[ContrastRecord]:
    """Every other comparison on every task (the primary ones left out), and each policy's sensitivity against
    salient captions', with Benjamini-Hochberg q-values over them all. Exploratory: a q-value under 5 % is a lead
    for a later, pre-registered run, not a conclusion."""
    taken = {(c.task, c.row, c.layer, c.against, c.against_layer) for c in primary}
    out = []
    seen = set()
    for row, against in _exploratory_pairs(rows):
        for task in labels:
            if task not in row.results or task not in against.results:
                continue
            key = (task, row.label, row.layer, row.method, against.label, against.layer, against.method)
            if key in seen or (task, row.label, row.layer, against.label, against.layer) in taken:
                continue
            seen.add(key)
            estimate, a, b = difference(row, against, task, labels[task])
            name = f"{task}: {_side_name(row)} - {_side_name(against)}"
            out.append(_record(EXPLORATORY, name, None, BALANCED_ACCURACY, task, row, against, estimate, a, b))
    out.extend(_sensitivity_contrasts(rows))
    for c, q in zip(out, benjamini_hochberg([c.p for c in out])):
        c.adjusted = q
        c.verdict = (
            "one seed: no seed-level test"
            if q is None
            else ("exploratory: q < 0.05" if q < ALPHA else "exploratory: not resolved")
        )
    return out


def _side_name(row: Series) -> str:
    where = f" @{row.layer}" if row.layer is not None else ""
    probe = "" if row.kind is RowKind.TRAINED or row.method == get_probe("linear").method else f" ({row.method})"
    return f"{row.label}{where}{probe}"


def _sensitivity_contrasts(rows: list[Series]) -> list[ContrastRecord]:
    """Each policy's sensitivity score minus salient captions', per attribute, paired seed by seed (the pairs are
    the same for every model: their own variation is not in the interval)."""
    policies = [r for r in rows if r.kind is RowKind.PROBE and r.sensitivity and r.policy is not None]
    salient = next((r for r in policies if r.policy == "salient"), None)
    out: list[ContrastRecord] = []
    if salient is None:
        return out
    for row in policies:
        if row is salient:
            continue
        seeds = sorted(set(row.sensitivity) & set(salient.sensitivity))
        attributes = list(next(iter(row.sensitivity.values()))) if seeds else []
        for attribute in attributes:
            a = [row.sensitivity[s][attribute].score for s in seeds]
            b = [salient.sensitivity[s][attribute].score for s in seeds]
            if any(v is None for v in (*a, *b)):
                continue
            fa, fb = [float(v) for v in a if v is not None], [float(v) for v in b if v is not None]
            estimate = paired_difference(np.subtract(fa, fb))
            name = f"sensitivity to {attribute}: {row.label} - {salient.label}"
            out.append(
                _record(EXPLORATORY, name, None, f"sensitivity: {attribute}", None, row, salient, estimate, fa, fb)
            )
    return out
