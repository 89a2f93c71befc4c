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
from clipprobe.probes.intervals import image_variance
from clipprobe.stats.multiplicity import holm

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


def test_the_image_variance_matches_a_hand_computation():
    y = np.array([0, 1, 0, 1, 1, 0])
    ours = [np.array([0, 1, 0, 0, 1, 0]), np.array([0, 1, 1, 1, 1, 0])]
    theirs = [np.array([0, 0, 0, 0, 1, 1]), np.array([1, 1, 0, 0, 1, 0])]
    resamples = 200
    draws = np.random.default_rng(7).integers(0, len(y), size=(resamples, len(y)))
    mean_ours = [np.mean([_balanced_accuracy(y[d], p[d]) for p in ours]) for d in draws]
    mean_theirs = [np.mean([_balanced_accuracy(y[d], q[d]) for q in theirs]) for d in draws]
    each_ours = [[_balanced_accuracy(y[d], p[d]) for d in draws] for p in ours]
    each_theirs = [[_balanced_accuracy(y[d], q[d]) for d in draws] for q in theirs]
    own_ours = sum(np.var(v, ddof=1) for v in each_ours) / 4
    own_theirs = sum(np.var(v, ddof=1) for v in each_theirs) / 4
    alone = image_variance(y, ours, 2, resamples=resamples, seed=7)
    paired = image_variance(y, ours, 2, against=theirs, resamples=resamples, seed=7)
    # What the seeds share: the variance of their average minus each seed's own (over n^2), never below 0.
    assert alone == pytest.approx(max(0.0, np.var(mean_ours, ddof=1) - own_ours))
    shared = np.var(np.subtract(mean_ours, mean_theirs), ddof=1) - own_ours - own_theirs
    assert paired == pytest.approx(max(0.0, shared))
    assert image_variance(y, ours, 2, against=ours) == 0.0  # a row against itself: nothing varies
    # One seed: no spread between seeds holds its own part, so all of it is kept (the bootstrap variance itself).
    assert image_variance(y, ours[:1], 2, resamples=resamples, seed=7) == pytest.approx(np.var(each_ours[0], ddof=1))
    one_each = image_variance(y, ours[:1], 2, against=theirs[:1], resamples=resamples, seed=7)
    assert one_each == pytest.approx(np.var(np.subtract(each_ours[0], each_theirs[0]), ddof=1))


def test_the_shared_image_variance_is_the_covariance_between_seeds():
    """Two seeds with identical predictions share all their image noise; that is what the seeds' spread misses."""
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, size=300)
    p = np.where(rng.random(300) < 0.8, y, 1 - y)
    same = image_variance(y, [p, p], 2)
    alone = np.var(
        [_balanced_accuracy(y[d], p[d]) for d in np.random.default_rng(0).integers(0, 300, size=(1000, 300))],
        ddof=1,
    )
    assert same == pytest.approx(alone / 2, rel=1e-9)  # var(avg) = v; minus 2 v / 4 leaves v / 2


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
        probes=("linear",),
        mlp_tasks=(),
        attentive_tasks=(),
        suite_tasks=(),
        zero_shot=False,
    )


def test_the_pattern_family_and_the_blindness_table_come_with_the_suites_tasks(seeded_experiment, tmp_path):
    """A suite task read at the embedding: its pre-registered contrast (descriptive - salient, paired over the
    pretraining seeds, Holm within its own family) and its row of the blindness table, grouped by pattern."""
    experiment = dataclasses.replace(seeded_experiment, suite_tasks=("car-facing",), attributes=("car-facing",))
    record, _ = run_curation(experiment, results_dir=tmp_path / "results", sensitivity_dir=tmp_path / "sens")
    assert record.tasks == ["traffic-light", "car-facing"] and record.design.suite_tasks == ["car-facing"]
    patterns = [c for c in record.primary if c.family == "patterns"]
    # Every suite task the run has, the experiment's own (the light) among them, in the pattern order.
    assert [c.name for c in patterns] == [
        "patterns · car-facing: descriptive - salient",
        "patterns · traffic-light: descriptive - salient",
    ]
    assert all(c.paired and len(c.per_seed) == 2 for c in patterns)
    assert [c.adjusted for c in patterns] == holm([c.p for c in patterns])
    assert [(r.pattern, r.task) for r in record.blindness] == [
        ("orientation and direction", "car-facing"),
        ("state and condition", "traffic-light"),
    ]
    row = record.blindness[0]
    assert [cell.policy for cell in row.cells] == ["salient", "descriptive", None]  # and random weights
    assert all(len(cell.blind_pair_rate.per_seed) == 2 for cell in row.cells)
    assert row.trained is None  # no CNN in this run


def test_the_layer_family_reads_every_token_and_is_corrected_on_its_own(seeded_experiment, tmp_path):
    """With the attentive probe on the light: its rows (all-tokens, each policy and random weights, every seed),
    the pre-registered layer family for both policies (attentive against the embedding and the tokens' mean),
    Holm within that family alone; the primary family is untouched by it."""
    import dataclasses

    experiment = dataclasses.replace(seeded_experiment, attentive_tasks=("traffic-light",))
    record, _ = run_curation(experiment, results_dir=tmp_path / "results", sensitivity_dir=tmp_path / "sens")
    assert record.layers == ["embedding", "tokens", "all-tokens"]
    attentive = [(r.representation, r.layer) for r in record.rows if r.method == "attentive-probe"]
    assert attentive == [
        ("tiny-clip/dashcam-salient", "all-tokens"),
        ("tiny-clip/dashcam-descriptive", "all-tokens"),
        ("tiny-clip/random", "all-tokens"),
    ]
    layers = [c for c in record.primary if c.family == "layers"]
    assert [c.name for c in layers] == [
        "layers · light: salient attentive (all tokens) - salient embedding",
        "layers · light: salient attentive (all tokens) - salient tokens (mean)",
        "layers · light: descriptive attentive (all tokens) - descriptive embedding",
        "layers · light: descriptive attentive (all tokens) - descriptive tokens (mean)",
    ]
    assert all(c.paired and len(c.per_seed) == 2 for c in layers)
    assert [c.adjusted for c in layers] == holm([c.p for c in layers])
    primary = [c for c in record.primary if c.family == "primary"]
    assert [c.adjusted for c in primary] == holm([c.p for c in primary])


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
    # The pre-registered contrasts this run can evaluate (no CNN, no PCA-matched probe here), Holm-adjusted.
    primary = [c for c in record.primary if c.family == "primary"]
    assert [c.name for c in primary] == ["light: descriptive - salient", "light: salient - random weights"]
    assert all(c.paired and c.df == 1 and c.verdict for c in record.primary)
    light = record.primary[0]
    salient, descriptive = record.rows[0].tasks["traffic-light"], record.rows[2].tasks["traffic-light"]
    assert light.per_seed == descriptive.per_seed and light.per_seed_against == salient.per_seed
    assert light.estimate == pytest.approx(descriptive.balanced_accuracy - salient.balanced_accuracy)
    assert light.interval[0] <= light.estimate <= light.interval[1]
    short = lambda name: name.rsplit("/", 1)[-1].removeprefix("dashcam-")  # noqa: E731
    explored = {(short(c.row), c.layer, short(c.against), c.against_layer) for c in record.exploratory}
    assert explored == {
        ("descriptive", "tokens", "salient", "tokens"),
        ("salient", "tokens", "random", "tokens"),
        ("descriptive", "embedding", "random", "embedding"),
        ("descriptive", "tokens", "random", "tokens"),
        ("salient", "tokens", "salient", "embedding"),
        ("descriptive", "tokens", "descriptive", "embedding"),
        ("descriptive", "embedding", "salient", "embedding"),  # the sensitivity contrast (pedestrian)
    }
    assert all(c.family == "exploratory" and c.adjusted is not None for c in record.exploratory)
    assert {c.measure for c in record.exploratory} == {"balanced accuracy", "sensitivity: pedestrian"}
    markdown = experiment_markdown(record)
    assert "#### Layer: embedding" in markdown and "#### Layer: tokens" in markdown and "±" in markdown
    assert "#### Primary contrasts (pre-registered)" in markdown and "#### Exploratory comparisons" in markdown
    # In the terminal (wide enough for each whole): the primary contrasts, the exploratory leads, the embedding's
    # balanced accuracy and its sensitivity, the tokens' balanced accuracy, then the blindness table (the light is a
    # task of the blind-pattern suite).
    titles = [table.title.split(" · ")[-1] for table in experiment_tables(record, width=200)]
    assert titles[0] == "primary contrasts" and titles[1].startswith("exploratory leads")
    assert titles[2:] == ["layer embedding", "sensitivity, layer embedding", "layer tokens", "blindness table"]


@pytest.mark.slow
def test_the_cli_prints_mean_and_sd_per_layer_and_the_contrasts(tiny_model, monkeypatch):
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
        "attentive_tasks": (),
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
    assert " ± " in result.output
    # The acceptance of the seed-level issue: the primary contrasts, then the exploratory ones with q-values.
    assert "primary contrasts" in result.output and "exploratory leads" in result.output
    assert "light: descriptive - salient" in result.output and "p (Holm)" in result.output
    assert "q (BH)" in result.output


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
