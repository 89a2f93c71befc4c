"""The curation experiment as evidence: a sensitivity score on one scale, statistics pooled over pretraining seeds,
paired differences, layers, zero-shot prompts that favour no caption policy, orbit draws per image."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from conftest import TINY_SIZES

from clipprobe.dashcam.captions import get_caption_policy
from clipprobe.dashcam.experiment import CurationExperiment, run_curation
from clipprobe.dashcam.pretrain import PretrainConfig
from clipprobe.dashcam.report import experiment_markdown, experiment_tables
from clipprobe.dashcam.scene import sample_scene, scene_rng
from clipprobe.dashcam.sensitivity import sensitivity_statistics
from clipprobe.dashcam.tasks import WORLD_PROMPTS
from clipprobe.dashcam.world import WorldConfig
from clipprobe.probes.intervals import seed_pooled_statistics

# --- the sensitivity score's scale -----------------------------------------------------------------------------


def _pairs(n=60, values=("red", "amber", "green"), seed=0):
    """value_a, value_b of n counterfactual pairs: b's value is the next one after a's (any changes will do)."""
    rng = np.random.default_rng(seed)
    a = rng.integers(0, len(values), n)
    b = (a + 1) % len(values)
    return a, b, [values[i] for i in a], [values[i] for i in b]


def test_an_embedding_of_the_attribute_alone_scores_one():
    a, b, value_a, value_b = _pairs()
    onehot = np.eye(3)
    stats = sensitivity_statistics(onehot[a], onehot[b], seed=0, values=(value_a, value_b))
    assert stats.score == pytest.approx(1.0)
    assert stats.interval == pytest.approx([1.0, 1.0])
    # The unscaled ratio's ceiling is 1 / P(an unrelated pair differs in the attribute): above 1 here.
    assert stats.ratio == pytest.approx(stats.mean_pair_distance / stats.mean_unrelated_distance)
    assert stats.ratio > 1.2


def test_a_constant_embedding_scores_zero():
    _, _, value_a, value_b = _pairs()
    constant = np.ones((60, 4))
    stats = sensitivity_statistics(constant, constant, seed=0, values=(value_a, value_b))
    assert stats.score == 0.0 and stats.interval == [0.0, 0.0]


def test_an_embedding_blind_to_the_attribute_scores_near_zero_and_one_that_sees_everything_in_between():
    a, b, value_a, value_b = _pairs(n=200)
    rng = np.random.default_rng(1)
    other = rng.normal(size=(200, 8))  # what else is in the scene: the same within a pair
    blind = sensitivity_statistics(other, other, seed=0, values=(value_a, value_b))
    both = sensitivity_statistics(
        np.hstack([other, 2 * np.eye(3)[a]]), np.hstack([other, 2 * np.eye(3)[b]]), seed=0, values=(value_a, value_b)
    )
    assert blind.score == pytest.approx(0.0, abs=1e-9)
    assert 0.2 < both.score < 0.9


# --- statistics over seeds, and paired differences -------------------------------------------------------------


def _balanced_accuracy(y, p):
    classes = sorted(set(y))
    return sum(np.mean([pi == c for yi, pi in zip(y, p) if yi == c]) for c in classes) / len(classes)


def test_pooled_and_paired_intervals_match_a_hand_computation():
    y = np.array([0, 1, 0, 1, 1, 0])
    ours = [np.array([0, 1, 0, 0, 1, 0]), np.array([0, 1, 1, 1, 1, 0])]
    theirs = [np.array([0, 0, 0, 0, 1, 1]), np.array([1, 1, 0, 0, 1, 0])]
    resamples = 200
    pooled = seed_pooled_statistics(y, ours, 2, resamples=resamples, seed=7)
    paired = seed_pooled_statistics(y, ours, 2, against=theirs, resamples=resamples, seed=7)
    per_seed = [_balanced_accuracy(y, p) for p in ours]
    differences = [_balanced_accuracy(y, p) - _balanced_accuracy(y, q) for p, q in zip(ours, theirs)]
    assert pooled["per_seed"] == pytest.approx(per_seed) and pooled["mean"] == pytest.approx(np.mean(per_seed))
    assert pooled["sd"] == pytest.approx(np.std(per_seed, ddof=1))
    assert paired["mean"] == pytest.approx(np.mean(differences))
    draws = np.random.default_rng(7).integers(0, len(y), size=(resamples, len(y)))
    mean_ours = [np.mean([_balanced_accuracy(y[d], p[d]) for p in ours]) for d in draws]
    mean_theirs = [np.mean([_balanced_accuracy(y[d], q[d]) for q in theirs]) for d in draws]
    assert pooled["interval"] == pytest.approx(list(np.percentile(mean_ours, [2.5, 97.5])))
    expected = np.percentile(np.subtract(mean_ours, mean_theirs), [2.5, 97.5])
    assert paired["interval"] == pytest.approx(list(expected))
    assert paired["resolved"] == bool(expected[0] > 0 or expected[1] < 0)


def test_one_seed_has_no_standard_deviation_and_a_difference_with_itself_is_unresolved():
    y = np.array([0, 1, 2, 0, 1, 2])
    p = [np.array([0, 1, 1, 0, 2, 2])]
    assert seed_pooled_statistics(y, p, 3)["sd"] is None
    same = seed_pooled_statistics(y, p, 3, against=p)
    assert same["mean"] == 0.0 and same["interval"] == [0.0, 0.0] and not same["resolved"]


# --- the experiment over seeds and layers ----------------------------------------------------------------------


@pytest.fixture
def seeded_experiment(tiny_model):
    return CurationExperiment(
        policies=("salient", "descriptive"),
        tasks=("traffic-light",),
        baselines="random",
        attributes=("pedestrian",),
        pairs=4,
        recipe=PretrainConfig(model=tiny_model, steps=2, batch_size=8),
        world=WorldConfig(image_size=64, sizes=dict(TINY_SIZES)),
        seeds=2,
        layers=("embedding", "tokens"),
        zero_shot=False,
    )


def test_the_experiment_pools_seeds_per_layer_and_pairs_the_comparisons(seeded_experiment, tmp_path):
    record, path = run_curation(seeded_experiment, results_dir=tmp_path / "results", sensitivity_dir=tmp_path / "sens")
    assert path.name == "curation__salient-descriptive__seeds0-1.json"
    assert record.seeds == [0, 1] and record.layers == ["embedding", "tokens"]
    keys = [(r.representation, r.layer) for r in record.rows]
    assert keys == [
        (f"{seeded_experiment.recipe.model}/dashcam-salient", "embedding"),
        (f"{seeded_experiment.recipe.model}/dashcam-salient", "tokens"),
        (f"{seeded_experiment.recipe.model}/dashcam-descriptive", "embedding"),
        (f"{seeded_experiment.recipe.model}/dashcam-descriptive", "tokens"),
        (f"{seeded_experiment.recipe.model}/random", "embedding"),
        (f"{seeded_experiment.recipe.model}/random", "tokens"),
    ]
    cell = record.rows[0].tasks["traffic-light"]
    assert len(cell.per_seed) == 2 and cell.sd is not None and len(cell.results) == 2
    assert cell.balanced_accuracy == pytest.approx(np.mean(cell.per_seed))
    assert len(set(cell.representations)) == 2  # each seed its own pretrained weights
    sensitivity = record.rows[0].sensitivity["pedestrian"]
    assert len(sensitivity.per_seed) == 2 and record.rows[1].sensitivity is None  # measured on the embedding
    pairs = {(c.row.rsplit("-", 1)[-1], c.against.rsplit("/", 1)[-1], c.layer) for c in record.comparisons}
    assert pairs == {
        ("descriptive", "dashcam-salient", "embedding"),
        ("descriptive", "dashcam-salient", "tokens"),
        ("salient", "random", "embedding"),
        ("salient", "random", "tokens"),
        ("descriptive", "random", "embedding"),
        ("descriptive", "random", "tokens"),
    }
    assert all(c.seeds == 2 and c.interval[0] <= c.difference <= c.interval[1] for c in record.comparisons)
    markdown = experiment_markdown(record)
    assert "#### Layer: embedding" in markdown and "#### Layer: tokens" in markdown and "±" in markdown
    assert "#### Paired differences" in markdown
    assert len(experiment_tables(record)) == 3


@pytest.mark.slow
def test_the_cli_prints_mean_and_sd_per_layer_and_paired_differences(tiny_model, monkeypatch):
    """The issue's acceptance command, on a tiny world and model (the defaults would pretrain full models)."""
    from typer.testing import CliRunner

    import clipprobe.dashcam.experiment as experiment_module
    from clipprobe.cli.app import app

    tiny = {
        "recipe": PretrainConfig(model=tiny_model, steps=2, batch_size=8),
        "world": WorldConfig(image_size=64, sizes=dict(TINY_SIZES)),
        "pairs": 4,
        "attributes": ("pedestrian",),
        "tasks": ("traffic-light",),
        "zero_shot": False,
    }
    original = experiment_module.run_curation

    def tiny_run(experiment, **kwargs):
        return original(dataclasses.replace(experiment, **tiny), **kwargs)

    monkeypatch.setattr(experiment_module, "run_curation", tiny_run)
    result = CliRunner().invoke(
        app,
        [
            "experiment",
            "curation",
            "--policies",
            "salient,descriptive",
            "--seeds",
            "2",
            "--baselines",
            "none",
            "--layers",
            "embedding,tokens",
        ],
        env={"COLUMNS": "250"},
    )
    assert result.exit_code == 0, result.output
    assert "layer embedding" in result.output and "layer tokens" in result.output
    assert " ± " in result.output and "paired differences" in result.output


# --- zero-shot prompts and orbit draws -------------------------------------------------------------------------


def test_zero_shot_prompts_copy_no_caption_policys_phrasing():
    captions = set()
    for index in range(300):
        scene = sample_scene(scene_rng(0, 0, index))
        for policy in ("salient", "descriptive"):
            for draw in range(4):
                captions.update(
                    part.strip() for part in get_caption_policy(policy)(scene, np.random.default_rng(draw)).split(",")
                )
    prompts = [prompt for task in WORLD_PROMPTS.values() for texts in task.values() for prompt in texts]
    copied = [(p, c) for p in prompts for c in captions if len(c.split()) >= 2 and c in p]
    assert copied == []
    assert all(len(texts) >= 3 for task in WORLD_PROMPTS.values() for texts in task.values())


def test_the_orbit_model_draws_its_training_elements_per_image():
    from clipprobe.baselines.nets import OrbitCNN
    from clipprobe.features.orbits import get_group

    model = OrbitCNN(2, get_group("hflip"), train_elements=1)
    model.train()
    seen = []
    model.embed = lambda x: x[:, 0, 0, :1]  # the left-most pixel: tells a flipped image from the original
    model.head = torch.nn.Identity()
    image = torch.zeros(1, 3, 4, 4)
    image[..., 0] = 1.0  # left column bright
    torch.manual_seed(0)
    out = model.training_logits(image.repeat(64, 1, 1, 1))
    seen = set(out[:, 0].tolist())
    assert seen == {0.0, 1.0}  # within one batch, some images flipped and some not
