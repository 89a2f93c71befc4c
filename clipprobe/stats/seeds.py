"""A difference between two rows, estimated with the seed as the unit.

The observations are per-seed scores. When two rows share their seeds (a policy's model and another policy's, or
the random-weights tower drawn with the same seed, pretrained from the same initialisation and batch order), the
seeds' differences are paired and the interval is Student's t over them. When they do not (a network trained
with seeds of its own), the two rows' seeds are independent samples and the interval is Welch's.

Every row of the experiment is scored on the same test images, so the choice of test images is shared by all
seeds and does not show in the spread between them. Its contribution is added to the variance of the estimate:
`image_variance`, the variance of the seed-averaged difference over test-image resamples (a paired bootstrap,
clipprobe.probes.intervals.image_variance). The two parts overlap a little (each seed's scores also vary with its
own test images), so the interval is, if anything, conservative; the null simulation
(clipprobe.stats.simulate) shows the error rates that follow. With `image_variance=0` the results equal
`scipy.stats.ttest_1samp` and `scipy.stats.ttest_ind(equal_var=False)` exactly (tested).

Degrees of freedom are the seeds' alone (n - 1 paired; Welch-Satterthwaite over the two rows' seeds unpaired), the
test-image part (from hundreds of images and a thousand resamples) being treated as known. Whatever the split
between the two parts, the statistic's null distribution then lies between the normal and that t, so the test
keeps its level; crediting the image part with degrees of freedom of its own (Satterthwaite over both parts) was
tried and rejected: at 5 seeds it called 7 % of null families resolved under Holm, where the nominal rate is 5 %. One seed gives no seed-level inference (the estimate is reported,
its interval and p-values are None)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

CONFIDENCE = 0.95


@dataclass(frozen=True)
class SeedEstimate:
    """A difference (row minus reference) over seeds: the estimate, its standard error and degrees of freedom, a
    two-sided interval, the two-sided p-value against no difference, and how it was formed."""

    estimate: float
    se: float | None
    df: float | None
    interval: tuple[float, float] | None
    p: float | None
    paired: bool
    seeds: tuple[int, int]  # seeds of the row and of the reference (equal when paired)
    image_se: float  # the test-image part of `se`

    def equivalence_p(self, margin: float) -> float | None:
        """Two one-sided tests (TOST) of |difference| < margin: the larger of the two one-sided p-values. Small
        means the difference lies within ±margin; None without a seed-level standard error."""
        if margin <= 0:
            raise ValueError(f"an equivalence margin must be positive, got {margin}")
        if self.se is None or self.df is None:
            return None
        if self.se == 0:
            return 0.0 if abs(self.estimate) < margin else 1.0
        lower = float(stats.t.sf((self.estimate + margin) / self.se, self.df))  # H0: difference <= -margin
        upper = float(stats.t.cdf((self.estimate - margin) / self.se, self.df))  # H0: difference >= +margin
        return max(lower, upper)


def satterthwaite(parts: Sequence[tuple[float, float]], known: float = 0.0) -> float:
    """Welch-Satterthwaite degrees of freedom of a variance sum: `parts` are (variance, its degrees of freedom),
    `known` a part with infinite degrees of freedom."""
    total = sum(v for v, _ in parts) + known
    denominator = sum(v**2 / df for v, df in parts if v > 0)
    return float("inf") if denominator == 0 else total**2 / denominator


def _finish(
    estimate: float,
    parts: Sequence[tuple[float, float]] | None,
    image_variance: float,
    paired: bool,
    seeds: tuple[int, int],
    confidence: float,
) -> SeedEstimate:
    if image_variance < 0:
        raise ValueError(f"image_variance must be 0 or more, got {image_variance}")
    image_se = float(np.sqrt(image_variance))
    if parts is None:
        return SeedEstimate(estimate, None, None, None, None, paired, seeds, image_se)
    seed_var = sum(v for v, _ in parts)
    se = float(np.sqrt(seed_var + image_variance))
    if seed_var > 0:
        df = satterthwaite(parts)
    else:  # seeds that agree exactly: the image part alone, or nothing varies
        df = float("inf") if image_variance > 0 else float(sum(d for _, d in parts))
    if se == 0:
        p = 1.0 if estimate == 0 else 0.0
        return SeedEstimate(estimate, 0.0, df, (estimate, estimate), p, paired, seeds, 0.0)
    half = float(stats.t.ppf(0.5 + confidence / 2, df)) * se
    p = float(2 * stats.t.sf(abs(estimate) / se, df))
    return SeedEstimate(estimate, se, df, (estimate - half, estimate + half), p, paired, seeds, image_se)


def paired_difference(
    differences: Sequence[float] | np.ndarray, image_variance: float = 0.0, confidence: float = CONFIDENCE
) -> SeedEstimate:
    """The mean of per-seed differences (row minus reference, seed by seed), Student's t over the seeds."""
    d = np.asarray(differences, dtype=np.float64)
    if d.ndim != 1 or len(d) == 0:
        raise ValueError("paired_difference needs one difference per seed")
    n = len(d)
    parts = [(float(d.var(ddof=1)) / n, n - 1.0)] if n > 1 else None
    return _finish(float(d.mean()), parts, image_variance, True, (n, n), confidence)


def unpaired_difference(
    row: Sequence[float] | np.ndarray,
    reference: Sequence[float] | np.ndarray,
    image_variance: float = 0.0,
    confidence: float = CONFIDENCE,
) -> SeedEstimate:
    """Mean of `row`'s seeds minus mean of `reference`'s, Welch's t (the two rows' seeds are independent)."""
    a, b = np.asarray(row, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    if a.ndim != 1 or b.ndim != 1 or len(a) == 0 or len(b) == 0:
        raise ValueError("unpaired_difference needs one score per seed for each row")
    estimate = float(a.mean() - b.mean())
    seeds = (len(a), len(b))
    if len(a) < 2 or len(b) < 2:
        return _finish(estimate, None, image_variance, False, seeds, confidence)
    parts = [(float(a.var(ddof=1)) / len(a), len(a) - 1.0), (float(b.var(ddof=1)) / len(b), len(b) - 1.0)]
    return _finish(estimate, parts, image_variance, False, seeds, confidence)


def single_seed_difference(
    row: Sequence[float] | np.ndarray,
    reference: Sequence[float] | np.ndarray,
    image_variance: float,
    confidence: float = CONFIDENCE,
) -> SeedEstimate:
    """`unpaired_difference` where one row or both have a single seed: a side of one seed adds no seed part (its
    spread between seeds is unknown, so the interval covers the test images and the other side's seeds only), and
    `image_variance` must then hold that side's whole test-image part (clipprobe.probes.intervals.image_variance
    keeps it for a row of one seed). Degrees of freedom: the other side's seeds, the image part taken as known
    (normal when both sides have one seed)."""
    a, b = np.asarray(row, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    if a.ndim != 1 or b.ndim != 1 or len(a) == 0 or len(b) == 0:
        raise ValueError("single_seed_difference needs one score per seed for each row")
    if len(a) > 1 and len(b) > 1:
        raise ValueError("both rows have several seeds: use unpaired_difference")
    parts = [(float(x.var(ddof=1)) / len(x), len(x) - 1.0) for x in (a, b) if len(x) > 1]
    return _finish(float(a.mean() - b.mean()), parts, image_variance, False, (len(a), len(b)), confidence)


def within_range(
    interval: Sequence[float] | None, low: float | None = 0.0, high: float | None = 1.0
) -> list[float] | None:
    """A score's interval kept to the values the score can take (a balanced accuracy or a rate: 0 to 1; a
    sensitivity score: 0 or more, `high=None`). Student's t over a few seeds near a bound reaches past it (three
    seeds at 0.997, 0.998 and 1.0 give an upper end above 1). Cutting the interval at the bound keeps its coverage
    exactly: the true value lies inside the range, so it lies in the cut interval whenever it lies in the whole one.
    Differences are not cut (a difference of two scores can take either sign)."""
    if interval is None:
        return None
    return [float(v) for v in np.clip(np.asarray(interval, dtype=np.float64), low, high)]


def paired_p_values(differences: np.ndarray, image_variance: float = 0.0) -> np.ndarray:
    """`paired_difference(row, image_variance).p` for every row of an (..., seeds) array at once (at least 2 seeds;
    for simulations)."""
    d = np.asarray(differences, dtype=np.float64)
    n = d.shape[-1]
    if n < 2:
        raise ValueError("paired_p_values needs at least 2 seeds")
    seed_var = d.var(axis=-1, ddof=1) / n
    total = seed_var + image_variance
    with np.errstate(divide="ignore", invalid="ignore"):
        df = np.where(seed_var > 0, n - 1.0, np.where(image_variance > 0, np.inf, n - 1.0))
        t = np.abs(d.mean(axis=-1)) / np.sqrt(total)
    p = 2 * stats.t.sf(t, df)
    return np.where(total > 0, p, np.where(d.mean(axis=-1) == 0, 1.0, 0.0))
