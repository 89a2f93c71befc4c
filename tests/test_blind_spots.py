"""The blind-pattern suite: an attribute for each of MMVP's nine patterns, with its task, counterfactual pairs,
prompts and caption words; the blind-pair rate; `clipprobe blind-spots` and its table in every report format."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from conftest import TINY_SIZES
from scipy.stats import norm
from typer.testing import CliRunner

from clipprobe.cli.app import app
from clipprobe.dashcam.blindspots import blind_spots_experiment, run_blind_spots
from clipprobe.dashcam.captions import CAPTIONED_ATTRIBUTES, get_caption_policy
from clipprobe.dashcam.pairs import COUNTERFACTUALS
from clipprobe.dashcam.preregistration import PATTERNS_FAMILY
from clipprobe.dashcam.scene import ATTRIBUTES, sample_scene, scene_rng
from clipprobe.dashcam.sensitivity import sensitivity_statistics
from clipprobe.dashcam.tasks import SUITE_TASKS, WORLD_PROMPTS
from clipprobe.dashcam.world import WorldConfig
from clipprobe.data.patterns import PATTERNS
from clipprobe.data.task import get_task, list_tasks
from clipprobe.report.build import build_report

runner = CliRunner()


def test_every_pattern_has_a_task_and_every_suite_task_its_pairs_prompts_and_caption_words():
    patterns = {get_task(name).pattern for name in list_tasks()}
    assert set(PATTERNS) <= patterns
    assert len(SUITE_TASKS) >= len(PATTERNS) and [get_task(t).pattern for t in SUITE_TASKS] == sorted(
        (get_task(t).pattern for t in SUITE_TASKS), key=list(PATTERNS).index
    )
    for name in SUITE_TASKS:
        task = get_task(name)
        assert COUNTERFACTUALS.get(name).attribute == task.label  # the pairs flip what the task reads
        assert set(WORLD_PROMPTS[name]) == set(task.classes) == set(ATTRIBUTES[task.label])
        assert task.label in CAPTIONED_ATTRIBUTES
        get_caption_policy(f"attribute-dropout:{task.label}")
    # The pre-registered pattern family has a contrast for every suite task.
    assert {c.task for c in PATTERNS_FAMILY} == set(SUITE_TASKS)


WORDS = {
    "car_facing": ("away", "towards", "oncoming", "our way"),
    "car_distance": ("close in front", "right ahead", "far ahead", "long way"),
    "pedestrian_count": ("one pedestrian", "single", "two", "three"),
    "pedestrian_action": ("waiting", "standing", "crossing", "stepping"),
    "pedestrian_side": ("on the left", "on the right"),
    "lane_markings": ("line", "lane", "unmarked"),
    "speed_limit": ("limit", "30", "50", "70"),
}


@pytest.mark.parametrize("attribute", sorted(WORDS))
def test_descriptive_captions_name_each_new_attribute_and_its_dropout_names_it_nowhere(attribute):
    named = 0
    for index in range(80):
        scene = sample_scene(scene_rng(0, 0, index))
        full = get_caption_policy("descriptive")(scene, np.random.default_rng(index))
        dropped = get_caption_policy(f"attribute-dropout:{attribute}")(scene, np.random.default_rng(index))
        named += any(word in full for word in WORDS[attribute])
        assert not any(word in dropped for word in WORDS[attribute]), (attribute, dropped)
        assert scene.car_colour in dropped or attribute.startswith("car_colour")
    assert named > 20  # the full caption names it (the pedestrian's words only when there is one)


def test_the_blind_pair_rate_counts_pairs_above_the_threshold_with_a_wilson_interval():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(40, 8))
    b = a.copy()
    b[:10] += 0.01 * rng.normal(size=(10, 8))  # ten pairs nearly identical (cosine > 0.99)
    b[10:] = rng.normal(size=(30, 8))  # the other thirty as far apart as two unrelated images
    stats = sensitivity_statistics(a, b, seed=0, resamples=50, threshold=0.95)
    assert stats.blind_pairs == 10 and stats.blind_pair_rate == 0.25
    # Wilson's score interval, written out: (p + z^2/2n ± z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n).
    n, p, z = 40, 0.25, norm.ppf(0.975)
    centre, half = p + z**2 / (2 * n), z * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
    assert stats.blind_pair_interval == pytest.approx(
        [(centre - half) / (1 + z**2 / n), (centre + half) / (1 + z**2 / n)]
    )
    assert stats.unrelated_blind_rate < 0.05  # random unrelated vectors are not near-identical
    # A stricter threshold counts fewer; an embedding that maps everything alike has every pair blind, and so
    # every unrelated pair: the rate is read beside the unrelated one.
    assert sensitivity_statistics(a, b, resamples=10, threshold=0.99999).blind_pairs < 10
    same = np.ones((40, 8)) + 1e-4 * rng.normal(size=(40, 8))
    alike = sensitivity_statistics(same, same[::-1].copy(), resamples=10)
    assert alike.blind_pair_rate == 1.0 and alike.unrelated_blind_rate == 1.0


def test_blind_spots_writes_a_table_with_intervals_that_the_report_renders_in_every_format(tiny_model, tmp_path):
    import dataclasses

    world = WorldConfig(image_size=64, sizes=dict(TINY_SIZES))
    experiment = blind_spots_experiment(
        (f"{tiny_model}@random",),
        baselines="cnn,random",
        pairs=4,
        world=world,
        precision="fp32",
        tasks=("car-facing", "speed-limit"),
    )
    experiment = dataclasses.replace(experiment, budget={"epochs": 1, "image_size": 16, "batch_size": 16})
    record, path = run_blind_spots(experiment, results_dir=tmp_path / "results", sensitivity_dir=tmp_path / "sens")
    assert path == tmp_path / "results" / "experiments" / "blind-spots__tiny-clip-random.json"
    assert [(row.pattern, row.task) for row in record.rows] == [
        ("orientation and direction", "car-facing"),
        ("text", "speed-limit"),
    ]
    for row in record.rows:
        assert row.trained is not None and row.trained_name.startswith("cnn/")
        assert [cell.representation for cell in row.cells] == ["tiny-clip@random", "tiny-clip/random"]
        for cell in row.cells:  # one seed: intervals over the test images (probe) and over pairs (rate)
            assert cell.probe.interval[0] <= cell.probe.value <= cell.probe.interval[1]
            assert cell.blind_pair_rate.interval is not None and cell.sensitivity is not None
    report = build_report(tmp_path / "results", tmp_path / "reports")
    markdown = report.files["markdown"].read_text()
    assert "### Blind spots: tiny-clip@random (seed 0, fp32)" in markdown
    assert "| orientation and direction | car-facing | tiny-clip@random |" in markdown
    assert "Blind spots: tiny-clip@random" in report.files["html"].read_text()
    stored = json.loads(report.files["json"].read_text())["experiments"]
    assert [e["kind"] for e in stored] == ["blind-spots"] and len(stored[0]["rows"]) == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--model", "mini-clip@dashcam-salient", "--baselines", "pixels"],
            "Error: blind-spots reads baselines cnn, random (or none), got 'pixels'\n",
        ),
        (
            ["--model", "mini-clip@dashcam-salient", "--tasks", "clouds"],
            f"Error: 'clouds' is not a task of the blind-pattern suite. Available: {', '.join(SUITE_TASKS)}\n",
        ),
        (
            ["--model", "mini-clip@dashcam-salient", "--blind-threshold", "1.5"],
            "Error: --blind-threshold must be a cosine similarity between -1 and 1 (exclusive), got 1.5\n",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2_before_any_work(args, message, monkeypatch):
    import clipprobe.dashcam.pretrain as pretrain

    monkeypatch.setattr(pretrain, "train", lambda *a, **k: pytest.fail("nothing may run before the input is checked"))
    result = runner.invoke(app, ["blind-spots", *args])
    assert result.exit_code == 2
    assert result.stderr == message


def test_the_docs_page_names_every_pattern_and_task_with_its_pair_picture():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    page = (root / "docs" / "blind-patterns.md").read_text()
    for pattern in PATTERNS:
        assert f"| {pattern} |" in page, pattern
    for task in SUITE_TASKS:
        assert f"| `{task}` |" in page and f"](pairs/{task}.png)" in page, task
        assert (root / "docs" / "pairs" / f"{task}.png").is_file(), task
