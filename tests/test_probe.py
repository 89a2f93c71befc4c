import numpy as np

from clipprobe import runner
from clipprobe.features.config import ExtractorConfig
from clipprobe.probes.linear import fit_probe
from clipprobe.probes.metrics import score


def planted(n, d=32, signal=4.0, seed=0, classes=3):
    """Gaussian noise features; the class shifts one coordinate by `signal` standard deviations per class."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, size=n)
    x = rng.normal(size=(n, d)).astype(np.float32)
    x[:, 5] += signal * y
    return x, y


def test_probe_recovers_a_planted_signal():
    (tx, ty), (vx, vy), (sx, sy) = planted(600, seed=1), planted(200, seed=2), planted(400, seed=3)
    fit = fit_probe(tx, ty, vx, vy)
    metrics = score(fit.model, sx, sy, ("a", "b", "c"))
    assert metrics.balanced_accuracy > 0.9
    assert np.asarray(metrics.confusion_matrix).sum() == 400
    assert set(metrics.per_class_recall) == {"a", "b", "c"}


def test_probe_without_signal_is_at_chance():
    (tx, ty), (vx, vy), (sx, sy) = (
        planted(600, signal=0, seed=1),
        planted(200, signal=0, seed=2),
        planted(400, signal=0, seed=3),
    )
    fit = fit_probe(tx, ty, vx, vy)
    assert score(fit.model, sx, sy, ("a", "b", "c")).balanced_accuracy < 0.45


def _scripted_validation(monkeypatch, scores):
    """Validation scores in grid order, whatever the fits predict: the selection rule, alone."""
    import clipprobe.probes.select as probe_module

    queue = list(scores)
    monkeypatch.setattr(probe_module, "balanced_accuracy_score", lambda y, predicted: queue.pop(0))


def test_c_is_chosen_on_validation_with_ties_to_the_smallest_c(monkeypatch):
    (tx, ty), (vx, vy) = planted(300, signal=1, seed=1), planted(100, signal=1, seed=2)
    _scripted_validation(monkeypatch, [0.8, 0.9, 0.9, 0.7])
    fit = fit_probe(tx, ty, vx, vy, c_grid=(10.0, 0.01, 1.0, 100.0))
    assert [(p["C"], p["balanced_accuracy"]) for p in fit.curve] == [(0.01, 0.8), (1.0, 0.9), (10.0, 0.9), (100.0, 0.7)]
    assert fit.chosen == 1.0 and not fit.at_grid_edge  # the strongest regularisation among the tied best


def test_a_perfect_validation_score_ends_the_sweep_at_that_c(monkeypatch):
    (tx, ty), (vx, vy) = planted(300, signal=1, seed=1), planted(100, signal=1, seed=2)
    _scripted_validation(monkeypatch, [0.8, 1.0])  # a third fit would find the queue empty and fail
    fit = fit_probe(tx, ty, vx, vy, c_grid=(0.01, 1.0, 10.0, 100.0))
    assert [p["C"] for p in fit.curve] == [0.01, 1.0] and fit.chosen == 1.0


def test_stopping_at_a_perfect_score_chooses_what_the_whole_sweep_chooses():
    (tx, ty), (vx, vy) = planted(300, signal=10, seed=1), planted(100, signal=10, seed=2)
    fit = fit_probe(tx, ty, vx, vy, c_grid=(0.01, 1.0, 10.0, 100.0))
    assert fit.curve[-1]["balanced_accuracy"] == 1.0 and fit.chosen == fit.curve[-1]["C"]
    whole = [fit_probe(tx, ty, vx, vy, c_grid=(c,)).curve[0]["balanced_accuracy"] for c in (0.01, 1.0, 10.0, 100.0)]
    assert (0.01, 1.0, 10.0, 100.0)[whole.index(max(whole))] == fit.chosen


def test_c_and_curve_never_depend_on_test_labels(tiny_model, tiny_tasks, monkeypatch, tmp_path):
    """Scramble only the test labels: the selection must not move; only the test score may."""
    task = tiny_tasks["tiny-light"]
    config = ExtractorConfig(model=tiny_model, pretrained="random")
    honest, _ = runner.probe(task, config, results_dir=tmp_path / "a")

    real_labels = type(task).labels

    def scrambled(self, split):
        y = real_labels(self, split)
        return np.random.default_rng(0).permutation(y) if split.split == "test" else y

    monkeypatch.setattr(type(task), "labels", scrambled)
    cheated, _ = runner.probe(task, config, results_dir=tmp_path / "b")
    assert cheated.selection == honest.selection
    assert cheated.metrics.confusion_matrix != honest.metrics.confusion_matrix


def test_fit_probe_has_no_test_argument():
    import inspect

    assert not any("test" in name for name in inspect.signature(fit_probe).parameters)


def test_same_seed_gives_identical_result_files(tiny_model, tiny_tasks, tmp_path):
    import json

    config = ExtractorConfig(model=tiny_model, pretrained="random", seed=3)
    _, first = runner.probe("tiny-pedestrian", config, results_dir=tmp_path / "a")
    _, second = runner.probe("tiny-pedestrian", config, results_dir=tmp_path / "b")
    a, b = json.loads(first.read_text()), json.loads(second.read_text())
    a.pop("run"), b.pop("run")
    assert a == b


def test_filtered_tasks_use_only_their_rows(tiny_model, tiny_world, tmp_path):
    """traffic-light keeps scenes with a light; the probe must see exactly those rows and labels."""
    from clipprobe.data.task import Task

    task = Task("lit", "", tiny_world, "light_state", ("red", "amber", "green"), where=(("light", "present"),))
    data = tiny_world.load()
    with_light = np.flatnonzero(np.asarray(data["test"]["light"]) == 1)
    assert 0 < len(with_light) < len(data["test"])
    np.testing.assert_array_equal(task.rows(data["test"]), with_light)
    record, _ = runner.probe(task, ExtractorConfig(model=tiny_model, pretrained="random"), results_dir=tmp_path)
    assert record.metrics.n == len(with_light)
    assert record.data.where == [["light", "present"]]
    assert task.summary()["splits"]["test"] == len(with_light)
