"""Seed-level inference (clipprobe.stats): the difference estimates against scipy.stats, the corrections against
their definitions and scipy, and the simulation that shows the error rates the experiment claims."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from conftest import stored_result
from scipy import stats

from clipprobe.core.kinds import RowKind
from clipprobe.dashcam.contrasts import Series, row_cell
from clipprobe.probes.intervals import bootstrap_intervals
from clipprobe.probes.metrics import score_predictions
from clipprobe.results import Selection
from clipprobe.stats.multiplicity import benjamini_hochberg, holm, holm_matrix
from clipprobe.stats.seeds import paired_difference, paired_p_values, unpaired_difference, within_range
from clipprobe.stats.simulate import SEED_SD, Levels, family_error, image_level_rule, power


def test_paired_difference_is_students_t_over_the_seeds():
    d = [0.262, 0.043, 0.073]
    got = paired_difference(d)
    want = stats.ttest_1samp(d, 0.0)
    assert got.p == pytest.approx(want.pvalue, rel=1e-12)
    low, high = want.confidence_interval(0.95)
    assert got.interval == pytest.approx((low, high), rel=1e-12)
    assert got.df == 2 and got.paired
    # The example: descriptive minus salient on the light, seed-level p = 0.21.
    assert round(got.p, 2) == 0.21


def test_unpaired_difference_is_welchs_t():
    a, b = [0.61, 0.58, 0.66, 0.60, 0.63], [0.71, 0.74, 0.69]
    got = unpaired_difference(a, b)
    want = stats.ttest_ind(a, b, equal_var=False)
    assert got.p == pytest.approx(want.pvalue, rel=1e-10)
    assert got.interval == pytest.approx(tuple(want.confidence_interval(0.95)), rel=1e-10)
    assert got.df == pytest.approx(want.df, rel=1e-10)
    assert not got.paired and got.seeds == (5, 3)


def test_the_image_part_widens_the_interval_and_keeps_the_seeds_degrees_of_freedom():
    d = [0.05, 0.02, 0.08, 0.04, 0.06]
    plain, widened = paired_difference(d), paired_difference(d, image_variance=0.02**2)
    assert widened.se == pytest.approx(np.sqrt(plain.se**2 + 0.02**2))
    assert widened.df == plain.df == 4
    assert widened.p > plain.p and widened.image_se == pytest.approx(0.02)


def test_equivalence_is_two_one_sided_t_tests():
    d = [0.004, -0.01, 0.012, 0.0, -0.003]
    margin = 0.03
    got = paired_difference(d).equivalence_p(margin)
    lower = stats.ttest_1samp(d, -margin, alternative="greater").pvalue
    upper = stats.ttest_1samp(d, margin, alternative="less").pvalue
    assert got == pytest.approx(max(lower, upper), rel=1e-10)
    assert got < 0.05  # small, well-measured differences are equivalent within the margin
    assert paired_difference([0.2, 0.0, 0.1]).equivalence_p(margin) > 0.5
    with pytest.raises(ValueError, match="positive"):
        paired_difference(d).equivalence_p(0)


def test_one_seed_gives_no_seed_level_inference():
    one = paired_difference([0.1])
    assert one.estimate == 0.1 and one.p is None and one.interval is None and one.equivalence_p(0.03) is None
    assert unpaired_difference([0.5], [0.4, 0.45]).p is None


def test_vectorised_p_values_equal_the_scalar_rule():
    rng = np.random.default_rng(1)
    d = rng.normal(0.01, 0.05, size=(50, 5))
    for variance in (0.0, 0.017**2):
        want = [paired_difference(row, variance).p for row in d]
        assert paired_p_values(d, variance) == pytest.approx(want, rel=1e-10)


def _holm_by_closed_testing(p):
    """Holm's adjusted p-values from their definition: the closure of Bonferroni tests over every subset."""
    m = len(p)
    out = []
    for i in range(m):
        worst = 0.0
        for size in range(1, m + 1):
            for subset in itertools.combinations(range(m), size):
                if i in subset:
                    worst = max(worst, min(1.0, size * min(p[j] for j in subset)))
        out.append(worst)
    return out


def test_holm_equals_its_closed_testing_definition():
    rng = np.random.default_rng(0)
    for _ in range(20):
        p = list(rng.uniform(0, 0.2, size=rng.integers(1, 7)))
        assert holm(p) == pytest.approx(_holm_by_closed_testing(p), rel=1e-12)
    assert holm([0.01, None, 0.04]) == [0.02, None, 0.04]
    assert holm_matrix(np.array([[0.01, 0.04], [0.5, 0.01]])).tolist() == [[0.02, 0.04], [0.5, 0.02]]


def test_benjamini_hochberg_is_scipys():
    p = [0.001, 0.008, 0.039, 0.041, 0.042, 0.06, 0.074, 0.205]
    assert benjamini_hochberg(p) == pytest.approx(list(stats.false_discovery_control(p)))
    assert benjamini_hochberg([None, 0.01]) == [None, 0.01]


def test_the_primary_rule_keeps_its_family_wise_error_at_five_percent():
    """Five null contrasts, five seeds, seed and shared test-image noise at the levels measured in the demo; and
    the worst case for the rule's degrees of freedom, no image noise (Student's t exactly)."""
    simulations = 20000
    mc = 3 * np.sqrt(0.05 * 0.95 / simulations)
    for levels in (Levels(), Levels(image_sd=0.0)):
        assert family_error(5, 5, simulations, levels) <= 0.05 + mc
        assert family_error(1, 5, simulations, levels) <= 0.05 + mc
    # The test can fail: the rule used before (an interval over test images, seeds agreeing in sign) does not.
    assert image_level_rule(3, simulations) > 0.15


def test_power_grows_with_the_effect_and_the_seeds():
    weak = power(SEED_SD, 5, simulations=4000)
    assert 0.0 < weak < power(2 * SEED_SD, 5, simulations=4000) <= 1.0
    assert power(SEED_SD, 10, simulations=4000) > weak


def test_a_scores_interval_is_cut_at_the_bounds_the_score_can_take():
    # Three seeds near ceiling: Student's t reaches past 1; cut, the interval ends at 1 and its lower end stays.
    whole = paired_difference([0.997, 0.998, 1.0]).interval
    assert whole is not None and whole[1] > 1
    assert within_range(whole) == [whole[0], 1.0]
    assert within_range((-0.2, 0.4)) == [0.0, 0.4]
    assert within_range((-0.2, 3.5), high=None) == [0.0, 3.5]  # a sensitivity score: 0 or more
    assert within_range((1.2, 1.4)) == [1.0, 1.0]
    assert within_range(None) is None


def test_cutting_keeps_the_coverage_of_a_mean_near_ceiling():
    """Simulation: per-seed scores near 1 (true mean 0.99, clipped at 1 as a score is): the cut interval covers the
    true mean exactly as often as the whole one, and never reaches past 1."""
    rng = np.random.default_rng(0)
    scores = np.minimum(rng.normal(0.99, 0.01, size=(2000, 3)), 1.0)
    truth = float(np.mean(np.minimum(rng.normal(0.99, 0.01, size=2_000_000), 1.0)))
    whole = [paired_difference(row).interval for row in scores]
    cut = [within_range(w) for w in whole]
    covered = [w[0] <= truth <= w[1] for w in whole]
    assert covered == [c[0] <= truth <= c[1] for c in cut]
    assert 0.93 <= np.mean(covered) <= 0.97
    assert max(c[1] for c in cut) <= 1.0 < max(w[1] for w in whole)


def _series(y: np.ndarray, predictions: list[np.ndarray]) -> Series:
    series = Series("model", "linear-probe", RowKind.PROBE, None, "salient", "embedding", paired=True, probe="linear")
    for seed, predicted in enumerate(predictions):
        record = stored_result(
            "t",
            "model",
            "linear-probe",
            seed,
            ("a", "b"),
            score_predictions(y, predicted, ("a", "b")),
            Selection("balanced_accuracy", "validation", "C", 1.0),
        )
        record.predictions = [int(p) for p in predicted]
        series.add("t", record, Path(f"r{seed}.json"))
    return series


def test_a_rows_cell_stays_within_0_and_1_and_one_seed_keeps_its_bootstrap_interval():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 300)
    near = [np.where(rng.random(300) < p, 1 - y, y) for p in (0.0, 0.003, 0.01)]  # 1.0 and just under
    cell = row_cell(_series(y, near), "t", y)
    assert cell.interval is not None and cell.interval[1] == 1.0 and cell.interval[0] < cell.balanced_accuracy
    one = row_cell(_series(y, near[2:]), "t", y)
    assert one.interval == bootstrap_intervals(y, near[2], 2)["balanced_accuracy"]
    assert 0 <= one.interval[0] <= one.balanced_accuracy <= one.interval[1] <= 1
