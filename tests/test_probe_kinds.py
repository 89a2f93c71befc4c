"""The k-NN probe (checked against scikit-learn) and the attentive probe (it reads what pooling throws away), each
choosing on validation only."""

from __future__ import annotations

import re

import numpy as np
import pytest
from sklearn.neighbors import KNeighborsClassifier
from typer.testing import CliRunner

from clipprobe import runner
from clipprobe.cli import app
from clipprobe.features.config import ExtractorConfig
from clipprobe.jobs.probe import ProbeJob
from clipprobe.probes import knn
from clipprobe.probes.attentive import fit_attentive_probe
from clipprobe.probes.knn import KNNModel, fit_knn_probe, normalise
from clipprobe.probes.linear import fit_probe


def _points(n, seed, classes=3, width=12):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    return (rng.normal(size=(n, width)) + 1.5 * np.eye(classes, width)[y]).astype(np.float32), y


@pytest.mark.parametrize("k", [1, 5, 20])
def test_knn_with_uniform_votes_is_scikit_learns_cosine_knn(k):
    (x, y), (query, _) = _points(300, 0), _points(120, 1)
    expected = KNeighborsClassifier(n_neighbors=k, metric="cosine", algorithm="brute", weights="uniform")
    ours = KNNModel(normalise(x), y, 3, k, temperature=None, weights=None)
    np.testing.assert_array_equal(ours.predict(query), expected.fit(x, y).predict(query))


def test_knn_in_small_chunks_predicts_what_it_predicts_at_once(monkeypatch):
    (x, y), (query, _) = _points(300, 0), _points(120, 1)
    whole = KNNModel(normalise(x), y, 3, 20).predict(query)
    monkeypatch.setattr(knn, "CHUNK_FLOATS", 1000)  # three query rows at a time
    np.testing.assert_array_equal(KNNModel(normalise(x), y, 3, 20).predict(query), whole)


def test_knn_chooses_k_on_validation_and_reads_every_row_beyond_the_split():
    (x, y), (vx, vy) = _points(60, 0), _points(40, 1)
    fit = fit_knn_probe(x, y, vx, vy, seed=0)
    assert [p["k"] for p in fit.curve] == [100.0, 50.0, 20.0, 10.0]  # largest (smoothest) first
    assert [p["neighbours"] for p in fit.curve] == [60, 50, 20, 10]
    best = max(p["balanced_accuracy"] for p in fit.curve)
    assert fit.chosen == next(p["k"] for p in fit.curve if p["balanced_accuracy"] == best)
    # Class-balanced votes: a rare class is not outvoted by its count alone.
    y_rare = np.where(np.arange(60) < 6, 0, 1)
    x_rare = np.random.default_rng(2).normal(size=(60, 4)).astype(np.float32) + 3 * (y_rare == 0)[:, None]
    model = KNNModel(normalise(x_rare), y_rare, 2, 50, weights=np.where(y_rare == 0, 5.0, 60 / 108))
    assert model.predict(x_rare[:6]).tolist() == [0] * 6


def _position_bound(n, rng, positions, direction):
    """Tokens whose label is the sign of one direction at position 0 and its opposite at position 1: the mean over
    positions cancels it exactly, so no probe of the mean can read it; each position has its own offset."""
    y = rng.integers(0, 2, n)
    sign = (2 * y - 1)[:, None]
    x = rng.normal(0, 1, (n, *positions.shape)).astype(np.float32) + positions
    x[:, 0] += sign * direction
    x[:, 1] -= sign * direction
    return x, y


def test_the_attentive_probe_reads_a_label_that_mean_pooling_cannot():
    rng = np.random.default_rng(0)
    positions = (2 * rng.normal(0, 1, (9, 16))).astype(np.float32)
    direction = rng.normal(0, 1, 16).astype(np.float32)
    direction *= 2 / np.linalg.norm(direction)
    (tx, ty), (vx, vy), (ex, ey) = (_position_bound(n, rng, positions, direction) for n in (400, 200, 300))
    fit = fit_attentive_probe(tx, ty, vx, vy, seed=0)
    assert fit.parameter == "weight_decay" and all("epoch" in point for point in fit.curve)
    assert (fit.model.predict(ex) == ey).mean() > 0.9
    pooled = fit_probe(tx.mean(axis=1), ty, vx.mean(axis=1), vy)
    assert (pooled.model.predict(ex.mean(axis=1)) == ey).mean() < 0.65
    # Seeded: the same inputs and seed give the same predictions.
    again = fit_attentive_probe(tx, ty, vx, vy, seed=0)
    np.testing.assert_array_equal(again.model.predict(ex), fit.model.predict(ex))


@pytest.mark.slow
def test_the_attentive_probes_choice_never_depends_on_test_labels(tiny_model, tiny_tasks, monkeypatch, tmp_path):
    """It reads every token of a real tower (the all-tokens layer); scrambling the test labels moves no choice."""
    task = tiny_tasks["tiny-light"]
    config = ExtractorConfig(model=tiny_model, pretrained="random")
    honest, _ = runner.probe(task, config, results_dir=tmp_path / "a", kind="attentive")
    assert honest.representation == "tiny-clip/random [all-tokens]" and honest.features.dim == 16 * 32
    real_labels = type(task).labels

    def scrambled(self, split):
        y = real_labels(self, split)
        return np.random.default_rng(0).permutation(y) if split.split == "test" else y

    monkeypatch.setattr(type(task), "labels", scrambled)
    cheated, _ = runner.probe(task, config, results_dir=tmp_path / "b", kind="attentive")
    assert cheated.selection == honest.selection


@pytest.mark.slow
def test_probe_runs_linear_knn_and_attentive_side_by_side(tiny_model, tiny_tasks):
    cli = CliRunner()
    listed = cli.invoke(app, ["probes"]).output
    assert re.search(r"^knn: ", listed, re.M) and re.search(r"^attentive: ", listed, re.M)
    result = cli.invoke(
        app,
        ["probe", "--task", "tiny-light", "--model", tiny_model, "--pretrained", "random"]
        + ["--probe", "linear,knn,attentive", "--baselines", "none"],
    )
    assert result.exit_code == 0, result.output
    rows = re.findall(r"^tiny-light \| (.+?) \| (\S+) \| balanced accuracy \d\.\d{3} \[", result.output, re.M)
    assert rows == [
        ("tiny-clip/random", "linear-probe"),
        ("tiny-clip/random", "knn-probe"),
        ("tiny-clip/random [all-tokens]", "attentive-probe"),
    ]


def test_auto_precision_is_resolved_at_the_layer_a_probe_reads(tiny_model, tiny_tasks, monkeypatch):
    """`auto` checks bf16 against fp32 per layer: the attentive probe's config is resolved at all-tokens, for the
    model and for random weights, not copied from the embedding's."""
    import dataclasses

    seen = []

    def resolve(config, task):
        seen.append((config.pretrained, config.layer))
        return dataclasses.replace(config, precision="fp32", precision_reason="test")

    monkeypatch.setattr(runner, "resolve_precision", resolve)
    plan = runner.RunPlan.build(
        "tiny-light",
        ExtractorConfig(model=tiny_model, pretrained="random", precision="auto"),
        probes="linear,attentive",
        baselines="random,pixels",
    )
    probes = [job for job in plan.jobs() if isinstance(job, ProbeJob)]
    assert ("random", "all-tokens") in seen and ("random", "embedding") in seen
    assert all(job.config.precision == "fp32" for job in probes)
    # Raw pixels have no tokens: no attentive job on them (the model's and random weights' only).
    assert [job.config.layer for job in probes if job.probe.name == "attentive"] == ["all-tokens", "all-tokens"]
