"""One line per row under test: what its table means, generated from paired comparisons.

For every probe of pretrained weights on all of a task's training data (kind `probe`), the answer compares it
with each network trained on the labels (the CNN, the orbit CNN), each control read by the same probe (random
weights, raw pixels) at the same layer, and chance, in balanced accuracy on the same test images:

    NAME (METHOD): SCORE; below cnn/from-scratch by GAP [LOW, HIGH]; not resolved from mini-clip/random
    (DIFFERENCE [LOW, HIGH]); above chance (1/K) by GAP [LOW, HIGH].

The statistics are those of the curation experiment (clipprobe.stats.seeds), with the seed as the unit where
seeds vary: when both rows have several seeds, Welch's interval over their seeds with the test images' shared
part added; when a row has one seed, its spread between seeds is unknown, so the interval covers the test images
(a paired bootstrap: both rows are scored on the same resampled images) and the other row's seeds, and the
answer says so. The comparisons of a task are one family: a verdict ("above", "below") needs its Holm-adjusted
p-value under ALPHA; otherwise the difference is "not resolved", which is not "equal" (no equivalence margin is
declared for these comparisons, so none is claimed). A task that an experiment covers is answered by the
experiment's own contrasts instead (clipprobe.report.build). Only rows whose records hold their test labels and
predictions can be compared; rows made before records kept labels get no answer, and the answer says why."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..core.kinds import RowKind
from ..probes.intervals import confusion_counts, metrics_from_counts, resampled_scores, shared_variance
from ..results import Result, distinct_precision
from ..stats.multiplicity import holm
from ..stats.seeds import SeedEstimate, paired_difference, single_seed_difference, unpaired_difference

# The family-wise error rate of a task's comparisons (Holm), fixed before any run.
ALPHA = 0.05
CHANCE = "chance"


@dataclass(frozen=True)
class Comparison:
    """The row under test minus one reference, in balanced accuracy: the estimate, its 95 % interval, the p-value
    against no difference and its Holm adjustment within the task, the verdict, and over what the interval runs."""

    reference: str  # the reference row's name as the tables print it, or "chance"
    kind: str  # the reference's RowKind value, or "chance"
    reference_score: float
    difference: float
    interval: list[float] | None
    p: float | None
    p_holm: float | None
    verdict: str  # "above", "below" or "not resolved"
    seeds: list[int]  # seeds of the row under test and of the reference
    unit: str  # "seeds and test images" or "test images"


@dataclass(frozen=True)
class Answer:
    """A row under test on a task: its mean balanced accuracy over its seeds, and its comparisons (empty, with
    `note`, when they cannot be made)."""

    task: str
    representation: str
    method: str
    score: float
    seeds: int
    comparisons: list[Comparison]
    note: str | None = None
    precision: str | None = None  # the features' precision when it is not fp32 (a row of its own)

    def sentence(self) -> str:
        """The one line: "NAME (METHOD): SCORE; below X by GAP [LOW, HIGH]; ...; above chance (1/K) by ..." """
        how = self.method if self.precision is None else f"{self.method}, {self.precision}"
        head = f"{self.representation} ({how}): {self.score:.3f}"
        if not self.comparisons:
            return f"{head}; {self.note}" if self.note else head
        return "; ".join([head, *(_clause(c) for c in self.comparisons)]) + "."


def footnote(found: Sequence[Answer]) -> str:
    """What a task's intervals run over and how its verdicts were made, in one line ("" without comparisons)."""
    comparisons = [c for answer in found for c in answer.comparisons]
    if not comparisons:
        return ""
    text = (
        "Differences in balanced accuracy with 95 % intervals over the test images (paired) and the seeds of "
        f"rows that have several; a verdict needs p < {ALPHA:g} after Holm over the task's {len(comparisons)} "
        "comparisons"
    )
    if any(1 in c.seeds for c in comparisons if c.kind != CHANCE):
        text += "; a row of one seed adds no spread between seeds (--seeds 3 adds it)"
    return text + "."


def _clause(c: Comparison) -> str:
    name = f"chance ({c.reference_score:.3f})" if c.kind == CHANCE else c.reference
    if c.verdict == "not resolved":
        interval = f" [{c.interval[0]:+.3f}, {c.interval[1]:+.3f}]" if c.interval is not None else ""
        return f"not resolved from {name} ({c.difference:+.3f}{interval})"
    # The gap's size and its interval, both positive: "below X by 0.307 [0.178, 0.436]".
    low, high = sorted(abs(v) for v in c.interval) if c.interval is not None else (None, None)
    interval = f" [{low:.3f}, {high:.3f}]" if low is not None else ""
    return f"{c.verdict} {name} by {abs(c.difference):.3f}{interval}"


def _name(result: Result) -> str:
    precision = distinct_precision(result.precision)
    return result.representation + (f" ({precision})" if precision is not None else "")


@dataclass
class _Row:
    """One row of a task's table over its seeds: the records, in seed order."""

    kind: RowKind
    name: str  # as the tables name it, with a precision other than fp32: "ViT-B-32/openai (bf16)"
    representation: str
    precision: str | None
    method: str
    records: list[Result]
    _resampled: np.ndarray | None = None

    def predictions(self) -> list[np.ndarray]:
        return [np.asarray(r.predictions) for r in self.records]

    def scores(self, y: np.ndarray, k: int) -> list[float]:
        return [float(metrics_from_counts(confusion_counts(y, p, k))["balanced_accuracy"]) for p in self.predictions()]

    def resampled(self, y: np.ndarray, k: int) -> np.ndarray:
        """Its seeds' scores on the test-image resamples every row shares (computed once per row)."""
        if self._resampled is None:
            self._resampled = resampled_scores(y, self.predictions(), k)
        return self._resampled


def _rows(results: Sequence[Result], task: str) -> list[_Row]:
    """The task's full-data rows with metrics, each over its seeds, in the order first met."""
    rows: dict[tuple, _Row] = {}
    for result in results:
        if result.task != task or result.metrics is None or result.shots is not None:
            continue
        key = (result.representation, distinct_precision(result.precision), result.method)
        row = rows.setdefault(key, _Row(result.kind, _name(result), result.representation, key[1], result.method, []))
        row.records.append(result)
    for row in rows.values():
        row.records.sort(key=lambda r: r.seed)
    return list(rows.values())


def _layer(row: _Row) -> str | None:
    features = row.records[0].features
    return features.layer if features is not None else None


def _same_reading(control: _Row, row: _Row) -> bool:
    """A control is a row's reference when it is read the same way: the same probe, at the same layer (random
    weights at `tokens` for a model's `tokens`; raw pixels, whose only layer is `embedding`, for the embedding)."""
    return control.kind is RowKind.CONTROL and control.method == row.method and _layer(control) == _layer(row)


def _labels(rows: list[_Row]) -> np.ndarray | None:
    """The task's test labels from any record that kept them (every record of a task is scored on one test split:
    the rows that disagree on them, or lack predictions, are not compared)."""
    for row in rows:
        for record in row.records:
            if record.labels is not None:
                return np.asarray(record.labels)
    return None


def _comparable(row: _Row, y: np.ndarray) -> bool:
    return all(
        r.predictions is not None
        and len(r.predictions) == len(y)
        and (r.labels is None or np.array_equal(np.asarray(r.labels), y))
        for r in row.records
    )


def _estimate(row: _Row, reference: _Row | None, y: np.ndarray, k: int) -> tuple[SeedEstimate, float]:
    """Row minus reference (None: chance) on the test labels `y`, and the reference's score."""
    a = row.scores(y, k)
    if reference is None:
        chance = 1.0 / k
        variance = shared_variance(row.resampled(y, k))
        if len(a) > 1:
            return paired_difference(np.subtract(a, chance), variance), chance
        return single_seed_difference(a, [chance], variance), chance
    b = reference.scores(y, k)
    variance = shared_variance(row.resampled(y, k), reference.resampled(y, k))
    if len(a) > 1 and len(b) > 1:
        return unpaired_difference(a, b, variance), float(np.mean(b))
    return single_seed_difference(a, b, variance), float(np.mean(b))


def task_answers(results: Sequence[Result], task: str) -> list[Answer]:
    """The answers for `task`'s rows under test, their comparisons Holm-corrected together."""
    rows = _rows(results, task)
    under_test = [row for row in rows if row.kind is RowKind.PROBE]
    if not under_test:
        return []
    y = _labels(rows)
    k = len(under_test[0].records[0].classes)
    answers: list[Answer] = []
    for row in under_test:
        if y is None or not _comparable(row, y):
            score = float(np.mean([r.metrics.balanced_accuracy for r in row.records if r.metrics is not None]))
            note = "no comparison: its records hold no test labels (made by an earlier clipprobe; --refresh)"
            answers.append(
                Answer(task, row.representation, row.method, score, len(row.records), [], note, row.precision)
            )
            continue
        # The networks trained on the labels first, then the controls, each by name; chance last.
        references = sorted(
            (other for other in rows if other.kind is RowKind.TRAINED or _same_reading(other, row)),
            key=lambda other: (other.kind is not RowKind.TRAINED, other.name),
        )
        comparisons = [_compare(row, r, y, k) for r in [*(r for r in references if _comparable(r, y)), None]]
        score = float(np.mean(row.scores(y, k)))
        answers.append(
            Answer(task, row.representation, row.method, score, len(row.records), comparisons, None, row.precision)
        )
    # One family per task: every answer's comparisons, Holm-adjusted together, then their verdicts.
    adjusted = iter(holm([c.p for answer in answers for c in answer.comparisons]))
    return [
        dataclasses.replace(answer, comparisons=[_verdict(c, next(adjusted)) for c in answer.comparisons])
        for answer in answers
    ]


def _compare(row: _Row, reference: _Row | None, y: np.ndarray, k: int) -> Comparison:
    """Row minus `reference` (None: chance), before the family's correction (no verdict yet)."""
    estimate, score = _estimate(row, reference, y, k)
    seeds = [len(row.records), len(reference.records) if reference is not None else 0]
    name, kind = (reference.name, reference.kind.value) if reference is not None else (CHANCE, CHANCE)
    return Comparison(
        reference=name,
        kind=kind,
        reference_score=score,
        difference=estimate.estimate,
        interval=list(estimate.interval) if estimate.interval is not None else None,
        p=estimate.p,
        p_holm=None,
        verdict="not resolved",
        seeds=seeds,
        unit="seeds and test images" if max(seeds) > 1 else "test images",
    )


def _verdict(comparison: Comparison, p_holm: float | None) -> Comparison:
    """The comparison with its Holm-adjusted p-value and what may be said: above, below or not resolved."""
    resolved = p_holm is not None and p_holm < ALPHA
    verdict = ("above" if comparison.difference > 0 else "below") if resolved else "not resolved"
    return dataclasses.replace(comparison, p_holm=p_holm, verdict=verdict)


def answers(results: Sequence[Result], tasks: Sequence[str]) -> dict[str, list[Answer]]:
    """Every task's answers, in `tasks`' order (a task without rows under test has none)."""
    return {task: task_answers(results, task) for task in tasks}
