"""Sensitivity scores on counterfactual pairs: ~0 for an embedding that cannot see the attribute, clearly above
0 for one that can, 1 for an embedding of the attribute alone however its values are spaced, unchanged by scale;
pairs that cover every value change; a deterministic bootstrap; the command's errors and result file."""

import inspect
import itertools
import json
import warnings

import datasets
import numpy as np
import pytest
from typer.testing import CliRunner

from clipprobe.cli import dashcam as dashcam_cli
from clipprobe.cli.app import app
from clipprobe.core.defaults import SENSITIVITY_DIR
from clipprobe.core.errors import UsageError
from clipprobe.dashcam.pairs import COUNTERFACTUALS, PAIRS_VERSION, make_pairs, region_mask
from clipprobe.dashcam.scene import ATTRIBUTES, sample_scene, scene_rng
from clipprobe.dashcam.sensitivity import (
    SCHEMA_VERSION,
    cosine_distances,
    measure_sensitivity,
    sensitivity_score,
    sensitivity_statistics,
)
from clipprobe.dashcam.world import WorldConfig, scene_at
from clipprobe.features.config import ExtractorConfig
from clipprobe.features.extractors import EXTRACTORS, PixelsExtractor
from clipprobe.results import read_results

WORLD = WorldConfig(image_size=64, sizes={})
N = 24


def _jpeg_blocks(mask: np.ndarray, block: int = 8) -> np.ndarray:
    """Grow a mask to whole JPEG blocks, +2 px for blur (as in test_world, where pairs are checked to differ only there)."""
    h, w = mask.shape
    grown = np.zeros_like(mask)
    for y in range(0, h, block):
        for x in range(0, w, block):
            if mask[max(0, y - 2) : y + block + 2, max(0, x - 2) : x + block + 2].any():
                grown[y : y + block, x : x + block] = True
    return grown


class MaskedPixels(PixelsExtractor):
    """Raw pixels with the traffic light's region (everything a flip of the light may change) painted grey:
    by construction it cannot see the light."""

    def identity(self):
        return {**super().identity(), "extractor": "masked-pixels"}

    def encode(self, split, description, image_column="image"):
        counterfactual = COUNTERFACTUALS.get("traffic-light")
        images = []
        for row in split:
            scene, _ = scene_at(WORLD, "test", row["index"])
            mask = _jpeg_blocks(region_mask(scene, counterfactual.region(scene), WORLD.image_size))
            pixels = np.asarray(row[image_column].convert("RGB")).copy()
            pixels[mask] = 128
            images.append(pixels)
        masked = datasets.Dataset.from_dict({"image": images}, features=datasets.Features({"image": datasets.Image()}))
        return super().encode(masked, description, "image")


@pytest.fixture
def masked_pixels():
    EXTRACTORS.register("masked-pixels", MaskedPixels)
    yield ExtractorConfig(extractor="masked-pixels")
    EXTRACTORS.unregister("masked-pixels")


def test_an_embedding_blind_to_the_attribute_scores_zero(masked_pixels):
    stats, _ = sensitivity_score("traffic-light", masked_pixels, n=N, world=WORLD, seed=0)
    assert stats.n_pairs == N
    assert stats.mean_pair_distance < 1e-6 and stats.mean_unrelated_distance > 0.05
    assert stats.score < 0.02


def test_raw_pixels_see_the_light(masked_pixels):
    """The same pixels unmasked: the light's few pixels move the embedding, far less than another scene does (one
    scene differs from another in much: its car's distance, its sign, its people)."""
    stats, _ = sensitivity_score("traffic-light", ExtractorConfig(extractor="pixels"), n=N, world=WORLD, seed=0)
    blind, _ = sensitivity_score("traffic-light", masked_pixels, n=N, world=WORLD, seed=0)
    low, high = stats.interval
    assert stats.score > 0.01 and low > 0.005
    assert stats.score > 20 * blind.score
    assert high < 0.5  # a light is not a whole scene


def test_bootstrap_interval_contains_the_score_and_is_deterministic():
    stats, _ = sensitivity_score(
        "traffic-light", ExtractorConfig(extractor="pixels"), n=N, world=WORLD, seed=3, resamples=500
    )
    low, high = stats.interval
    assert low <= stats.score <= high and low < high
    again, embedded = sensitivity_score(
        "traffic-light", ExtractorConfig(extractor="pixels"), n=N, world=WORLD, seed=3, resamples=500
    )
    assert again.interval == stats.interval and again.score == stats.score
    assert embedded.computed == []  # the second call read the cached embeddings
    other, _ = sensitivity_score(
        "traffic-light", ExtractorConfig(extractor="pixels"), n=N, world=WORLD, seed=4, resamples=500
    )
    assert other.interval != stats.interval


def test_statistics_by_hand():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(10, 5))
    stats = sensitivity_statistics(a, a.copy(), seed=0, resamples=50)
    assert stats.score == 0 and stats.interval == [0, 0] and stats.numerator == 0
    stats = sensitivity_statistics(a, -a, seed=0, resamples=50)  # each pair opposite: distance 2
    assert stats.mean_pair_distance == pytest.approx(2) and stats.numerator == pytest.approx(2)
    # Without values every pair and every unrelated image pair make one change: the score is the ratio.
    assert stats.score == pytest.approx(stats.ratio) and stats.n_unrelated == 4 * 10 * 9
    assert stats.denominator == pytest.approx(stats.mean_unrelated_distance)
    # Two values, each pair's change made by no unrelated image pair: undefined, not a division by zero.
    lonely = sensitivity_statistics(a[:2], -a[:2], seed=0, values=(["x", "y"], ["p", "q"]))
    assert lonely.n_matched_pairs == 0 and lonely.score is None and "undefined" in lonely.error
    zero_or_not = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    assert cosine_distances(np.zeros((2, 3)), zero_or_not).tolist() == [0.0, 1.0]  # zero vectors: no direction
    with pytest.raises(UsageError, match=r"^--n must be at least 2"):
        sensitivity_statistics(a[:1], a[:1])


# --- the score's scale: matched value changes ------------------------------------------------------------------

# The car's colours at unequally spaced angles around a circle: a change of value moves an embedding of the colour
# alone by an amount that depends on the change (red-blue 50 degrees, black-blue 160).
COLOURS = ATTRIBUTES["car_colour"]
ANGLES = {"black": 0, "white": 60, "red": 150, "blue": 200, "silver": 290}


def _colour_alone(values, noise=0.0, rng=None):
    """An embedding of the car's colour alone: a point on the unit circle at the colour's angle."""
    angles = np.radians([ANGLES[v] for v in values])
    points = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    return points + (noise * rng.normal(size=points.shape) if noise else 0.0)


def _cycle_pairs(n, seed=0):
    """value_a, value_b of n pairs made as before PAIRS_VERSION 2: each colour moved to the next in a fixed cycle,
    so only 5 of the 10 colour changes are measured."""
    a = np.random.default_rng(seed).integers(0, len(COLOURS), n)
    return [COLOURS[i] for i in a], [COLOURS[(i + 1) % len(COLOURS)] for i in a]


def _old_score(a, b, values):
    """The earlier normaliser: within-pair distance over every unrelated pair that differs in the attribute, with
    no regard to which change it makes."""
    n = len(a)
    j = np.roll(np.arange(n), 1)
    differs = np.asarray(values[0]) != np.asarray(values[1])[j]
    return cosine_distances(a, b).mean() / cosine_distances(a, b[j])[differs].mean()


@pytest.mark.parametrize("pairs", ["fixed cycle", "uniform"])
def test_an_embedding_of_one_unequally_spaced_attribute_alone_scores_one(pairs):
    if pairs == "fixed cycle":
        value_a, value_b = _cycle_pairs(200)
    else:  # as make_pairs draws them now
        scenes = [sample_scene(scene_rng(0, 2, index)) for index in range(200)]
        flipped = [COUNTERFACTUALS.get("car-colour").flip(s, np.random.default_rng(i)) for i, s in enumerate(scenes)]
        value_a, value_b = [s.car_colour for s in scenes], [s.car_colour for s in flipped]
    a, b = _colour_alone(value_a), _colour_alone(value_b)
    stats = sensitivity_statistics(a, b, seed=0, resamples=200, values=(value_a, value_b))
    assert stats.score == pytest.approx(1.0) and stats.interval == pytest.approx([1.0, 1.0])
    assert stats.n_matched_pairs == 200 and stats.numerator == pytest.approx(stats.mean_pair_distance)
    assert stats.score == pytest.approx(stats.numerator / stats.denominator)
    # Different changes move it by different amounts, each matched by its own unrelated pairs.
    distances = [change.pair_distance for change in stats.changes]
    assert max(distances) > 2 * min(distances)
    for change in stats.changes:
        assert change.unrelated_distance == pytest.approx(change.pair_distance)
    if pairs == "fixed cycle":
        # The old normaliser is not 1 for the same embedding and the same pairs: the test can fail.
        assert abs(_old_score(a, b, (value_a, value_b)) - 1) > 0.1
        assert len(stats.changes) == 5
    else:
        assert len(stats.changes) == 10


def test_an_embedding_of_one_attribute_alone_scores_one_within_noise():
    """Noise that moves every image (both images of a pair too) is in the numerator and the denominator alike."""
    rng = np.random.default_rng(3)
    value_a, value_b = _cycle_pairs(300, seed=1)
    a, b = _colour_alone(value_a, 0.05, rng), _colour_alone(value_b, 0.05, rng)
    stats = sensitivity_statistics(a, b, seed=0, resamples=300, values=(value_a, value_b))
    low, high = stats.interval
    assert 0.9 < stats.score < 1.1 and low < 1 < high


def test_a_constant_embedding_scores_zero_without_dividing_by_zero():
    value_a, value_b = _cycle_pairs(40)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a division by zero would warn
        for constant in (np.ones((40, 4)), np.zeros((40, 4)), np.full((40, 4), 1e-300)):
            stats = sensitivity_statistics(constant, constant, seed=0, values=(value_a, value_b))
            assert stats.score == 0.0 and stats.interval == [0.0, 0.0] and stats.numerator == 0.0
            assert stats.error is None


@pytest.mark.parametrize("scale", [1e-4, 3.0, 1e5])
def test_the_score_does_not_change_when_the_embedding_is_scaled(scale):
    rng = np.random.default_rng(2)
    value_a, value_b = _cycle_pairs(60, seed=2)
    scenes = rng.normal(size=(60, 6))  # what else is in the scene: the same within a pair
    a = np.hstack([scenes, _colour_alone(value_a)])
    b = np.hstack([scenes, _colour_alone(value_b)])
    stats = sensitivity_statistics(a, b, seed=5, resamples=100, values=(value_a, value_b))
    scaled = sensitivity_statistics(scale * a, scale * b, seed=5, resamples=100, values=(value_a, value_b))
    assert 0 < stats.score < 1
    assert scaled.score == pytest.approx(stats.score, rel=1e-9)
    assert scaled.interval == pytest.approx(stats.interval, rel=1e-9)
    assert scaled.numerator == pytest.approx(stats.numerator, rel=1e-9)


def _by_hand(a, b, value_a, value_b):
    """The score spelt out, loop by loop: each pair over the unrelated image pairs that make its change."""
    images = [(x[i], v[i], i) for x, v in ((a, value_a), (b, value_b)) for i in range(len(a))]
    numerator, denominator, matched = 0.0, 0.0, 0
    for i in range(len(a)):
        change = {value_a[i], value_b[i]}
        reference = [
            cosine_distances(p[None], q[None])[0]
            for (p, vp, sp), (q, vq, sq) in itertools.product(images, images)
            if sp != sq and {vp, vq} == change and vp != vq
        ]
        if reference:
            numerator += cosine_distances(a[i : i + 1], b[i : i + 1])[0]
            denominator += np.mean(reference)
            matched += 1
    return numerator / matched, denominator / matched, matched


def test_the_matched_score_agrees_with_a_computation_by_hand():
    rng = np.random.default_rng(4)
    value_a = ["red", "amber", "green", "red", "green", "amber", "red", "blue"]
    value_b = ["green", "red", "amber", "amber", "red", "green", "green", "white"]  # blue-white: no reference
    a, b = rng.normal(size=(8, 3)), rng.normal(size=(8, 3))
    stats = sensitivity_statistics(a, b, seed=0, resamples=20, values=(value_a, value_b))
    numerator, denominator, matched = _by_hand(a, b, value_a, value_b)
    assert stats.n_matched_pairs == matched == 7
    assert stats.numerator == pytest.approx(numerator) and stats.denominator == pytest.approx(denominator)
    assert stats.score == pytest.approx(numerator / denominator)
    assert stats.mean_pair_distance == pytest.approx(cosine_distances(a, b).mean())


def test_pairs_cover_every_value_change():
    """Each counterfactual moves its attribute to any other value, not only the next one in a cycle."""
    for name in COUNTERFACTUALS.names():
        counterfactual = COUNTERFACTUALS.get(name)
        values = ATTRIBUTES[counterfactual.attribute]
        seen = set()
        for index in range(200):
            scene = sample_scene(scene_rng(0, 2, index))
            if counterfactual.applies(scene):
                flipped = counterfactual.flip(scene, np.random.default_rng(index))
                seen.add((getattr(scene, counterfactual.attribute), getattr(flipped, counterfactual.attribute)))
        assert seen == {(x, y) for x in values for y in values if x != y}, name


def test_pairs_and_scores_made_before_matched_changes_are_not_reused():
    config = WorldConfig(image_size=32, sizes={})
    path = make_pairs("pedestrian", n=2, config=config)
    assert path.name.startswith(f"pairs-v{PAIRS_VERSION}-pedestrian-") and PAIRS_VERSION >= 2
    assert SCHEMA_VERSION >= 5


def test_bad_input_fails_before_any_work():
    with pytest.raises(
        UsageError,
        match=r"^Unknown counterfactual attribute 'weather'\. Available: car-colour, car-distance, car-facing, lane-markings, pedestrian, pedestrian-action, pedestrian-count, pedestrian-side, speed-limit, time-of-day, traffic-light$",
    ):
        measure_sensitivity(["traffic-light", "weather"], ExtractorConfig(extractor="pixels"), n=4, world=WORLD)
    with pytest.raises(UsageError, match=r"^--n must be at least 2 \(an unrelated pair needs two scenes\), got 1$"):
        measure_sensitivity(["traffic-light"], ExtractorConfig(extractor="pixels"), n=1, world=WORLD)


runner = CliRunner()


def test_cli_unknown_attribute_and_n_are_one_line_usage_errors():
    result = runner.invoke(
        app, ["sensitivity", "--attribute", "traffic-light", "--attribute", "weather", "--extractor", "pixels"]
    )
    assert result.exit_code == 2
    assert result.output.strip() == (
        "Error: Unknown counterfactual attribute 'weather'. Available: car-colour, car-distance, car-facing, lane-markings, pedestrian, pedestrian-action, pedestrian-count, pedestrian-side, speed-limit, time-of-day, traffic-light"
    )
    result = runner.invoke(app, ["sensitivity", "--n", "1", "--extractor", "pixels"])
    assert result.exit_code == 2
    assert result.output.strip() == "Error: --n must be at least 2 (an unrelated pair needs two scenes), got 1"


def test_the_old_invariance_command_says_it_is_now_sensitivity():
    result = runner.invoke(app, ["invariance"])
    assert result.exit_code == 2
    assert result.output.strip() == "Error: `clipprobe invariance` is now `clipprobe sensitivity` (same options)"
    assert "invariance" not in runner.invoke(app, ["--help"]).output  # hidden


def test_cli_writes_one_result_and_the_report_ignores_it(tiny_model, tiny_tasks):
    # The command and the library write to the same default folder.
    assert SENSITIVITY_DIR == dashcam_cli.SENSITIVITY_DIR
    assert inspect.signature(measure_sensitivity).parameters["results_dir"].default == SENSITIVITY_DIR
    assert inspect.signature(dashcam_cli.sensitivity).parameters["results"].default == SENSITIVITY_DIR
    args = [
        "sensitivity",
        "--attribute",
        "traffic-light",
        "--attribute",
        "car-colour",
        "--n",
        "8",
        "--image-size",
        "64",
        "--model",
        tiny_model,
        "--pretrained",
        "random",
        "--resamples",
        "200",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "traffic-light" in result.output and "95% interval" in result.output
    path = (
        SENSITIVITY_DIR
        / f"tiny-clip-random__car-colour+traffic-light__world-{WorldConfig(image_size=64).fingerprint()[:8]}__seed0.json"
    )
    assert result.output.strip().endswith(f"Wrote {path}")
    record = json.loads(path.read_text())
    assert record["kind"] == "sensitivity" and record["attributes"] == ["traffic-light", "car-colour"]
    for scored in record["scores"].values():
        stats = scored["stats"]
        assert stats["n_pairs"] == 8 and stats["interval"][0] <= stats["score"] <= stats["interval"][1]
    # Same seed, same bytes apart from the clock times.
    assert runner.invoke(app, args).exit_code == 0
    again = json.loads(path.read_text())
    assert {k: v for k, v in again.items() if k != "run"} == {k: v for k, v in record.items() if k != "run"}
    # A probe result beside it: `clipprobe report` still reads results/ only, and is not confused.
    assert (
        runner.invoke(
            app,
            ["probe", "--task", "tiny-light", "--model", tiny_model, "--pretrained", "random", "--baselines", "none"],
        ).exit_code
        == 0
    )
    assert [r.task for r in read_results("results")] == ["tiny-light"]
