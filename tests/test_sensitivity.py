"""Sensitivity scores on counterfactual pairs: ~0 for an embedding that cannot see the attribute, clearly above
0 for one that can; a deterministic bootstrap; the command's errors and result file."""

import inspect
import json

import datasets
import numpy as np
import pytest
from typer.testing import CliRunner

from clipprobe.cli import dashcam as dashcam_cli
from clipprobe.cli.app import app
from clipprobe.core.defaults import SENSITIVITY_DIR
from clipprobe.core.errors import UsageError
from clipprobe.dashcam.pairs import COUNTERFACTUALS, region_mask
from clipprobe.dashcam.sensitivity import derangement, measure_sensitivity, sensitivity_score, sensitivity_statistics
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
    """The same pixels unmasked: the light's few pixels move the embedding, far less than another scene does."""
    stats, _ = sensitivity_score("traffic-light", ExtractorConfig(extractor="pixels"), n=N, world=WORLD, seed=0)
    blind, _ = sensitivity_score("traffic-light", masked_pixels, n=N, world=WORLD, seed=0)
    low, high = stats.interval
    assert stats.score > 0.04 and low > 0.01
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
    assert stats.score == pytest.approx(0, abs=1e-12) and stats.interval[1] == pytest.approx(0, abs=1e-12)
    stats = sensitivity_statistics(a, -a, seed=0, resamples=50)  # each pair opposite: distance 2
    assert stats.mean_pair_distance == pytest.approx(2)
    constant = sensitivity_statistics(np.ones((6, 3)), np.ones((6, 3)), seed=0)
    assert constant.score == 0.0  # blind to the attribute (and to everything else)
    moved = sensitivity_statistics(a, -a, seed=0, values=(["x"] * 10, ["x"] * 10))
    assert moved.n_unrelated_differing == 0 and moved.score is None and "undefined" in moved.error
    j = derangement(7, np.random.default_rng(1))
    assert sorted(j) == list(range(7)) and (j != np.arange(7)).all()
    with pytest.raises(UsageError, match=r"^--n must be at least 2"):
        derangement(1, np.random.default_rng(0))


def test_bad_input_fails_before_any_work():
    with pytest.raises(
        UsageError,
        match=r"^Unknown counterfactual attribute 'weather'\. Available: car-colour, pedestrian, time-of-day, traffic-light$",
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
        "Error: Unknown counterfactual attribute 'weather'. Available: car-colour, pedestrian, time-of-day, traffic-light"
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
