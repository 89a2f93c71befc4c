import numpy as np

from clipprobe import runner
from clipprobe.features.config import ExtractorConfig
from clipprobe.probes.linear import C_LIMITS, DEFAULT_C_GRID, fit_probe
from clipprobe.probes.metrics import score
from clipprobe.probes.registry import get_probe


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


def test_a_choice_at_the_grid_edge_extends_the_grid_a_decade_at_a_time(monkeypatch):
    (tx, ty), (vx, vy) = planted(300, signal=1, seed=1), planted(100, signal=1, seed=2)
    # Above: 10 is chosen, at the edge; a decade's step adds one value a decade: 100 is better, 1000 worse.
    _scripted_validation(monkeypatch, [0.5, 0.6, 0.7, 0.8, 0.9, 0.85])
    fit = fit_probe(tx, ty, vx, vy, c_grid=(0.01, 0.1, 1.0, 10.0))
    assert [p["C"] for p in fit.curve] == fit.grid == [0.01, 0.1, 1.0, 10.0, 100.0, 1000.0]
    assert fit.chosen == 100.0 and not fit.at_grid_edge
    # Below, fitted outwards from the edge: 0.001 ties 0.01 and wins (ties go to the smaller C), 1e-4 is worse.
    _scripted_validation(monkeypatch, [0.9, 0.8, 0.7, 0.6, 0.9, 0.8])
    fit = fit_probe(tx, ty, vx, vy, c_grid=(0.01, 0.1, 1.0, 10.0))
    assert fit.grid == [1e-4, 1e-3, 0.01, 0.1, 1.0, 10.0] and fit.chosen == 1e-3 and not fit.at_grid_edge
    assert [p["balanced_accuracy"] for p in fit.curve] == [0.8, 0.9, 0.9, 0.8, 0.7, 0.6]
    # A perfect score at the edge is not extended (nothing beyond could beat it), but stays flagged.
    _scripted_validation(monkeypatch, [0.5, 0.6, 0.7, 1.0])
    fit = fit_probe(tx, ty, vx, vy, c_grid=(0.01, 0.1, 1.0, 10.0))
    assert fit.grid == [0.01, 0.1, 1.0, 10.0] and fit.chosen == 10.0 and fit.at_grid_edge


def test_the_default_grid_extends_in_half_decades_up_to_its_limit(monkeypatch):
    """Better and better with C: two half-decade values per extension, until C = 1e6; still at the edge."""
    (tx, ty), (vx, vy) = planted(300, signal=1, seed=1), planted(100, signal=1, seed=2)
    _scripted_validation(monkeypatch, [i / 100 for i in range(21)])
    fit = fit_probe(tx, ty, vx, vy)
    assert C_LIMITS == (1e-6, 1e6)
    np.testing.assert_allclose(fit.grid, np.logspace(-4, 6, 21), rtol=1e-12)
    assert fit.grid[:17] == sorted(DEFAULT_C_GRID) and fit.grid[-1] == 1e6
    assert [p["C"] for p in fit.curve] == fit.grid and fit.chosen == 1e6 and fit.at_grid_edge


def test_a_problem_whose_best_c_lies_below_the_grid():
    """Few rows, many noise features: a grid of large Cs overfits, and validation walks the grid down."""
    (tx, ty), (vx, vy) = planted(60, d=128, signal=1, seed=1), planted(600, d=128, signal=1, seed=2)
    fit = fit_probe(tx, ty, vx, vy, c_grid=(10.0, 10**1.5, 100.0))
    assert fit.chosen < 10 and fit.grid[0] < 10 and fit.grid[-3:] == [10.0, 10**1.5, 100.0]
    np.testing.assert_allclose(np.diff(np.log10(fit.grid)), 0.5, rtol=1e-9)  # the grid's own step
    assert [p["C"] for p in fit.curve] == fit.grid
    best = max(p["balanced_accuracy"] for p in fit.curve)
    assert fit.chosen == next(p["C"] for p in fit.curve if p["balanced_accuracy"] == best)
    assert fit.at_grid_edge == (fit.chosen == fit.grid[0] == C_LIMITS[0])


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


def test_the_pca_probe_fits_pca_on_the_train_split_alone(monkeypatch):
    """`linear-pca:K`: PCA sees the train split (standardised) and nothing else; its model reads raw features."""
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    import clipprobe.probes.pca as pca_module

    fitted = []

    class Spy(PCA):
        def fit(self, X, y=None):
            fitted.append(np.array(X))
            return super().fit(X, y)

        def fit_transform(self, X, y=None):
            fitted.append(np.array(X))
            return super().fit_transform(X, y)

    monkeypatch.setattr(pca_module, "PCA", Spy)
    (tx, ty), (vx, vy), (sx, _) = planted(300, seed=1), planted(100, seed=2), planted(200, seed=3)
    vx = vx + 50.0  # validation far from train: a PCA that saw it would centre elsewhere
    fit = get_probe("linear-pca:8").fit(tx, ty, vx, vy, DEFAULT_C_GRID, seed=0)
    train_z = StandardScaler().fit_transform(tx)
    assert len(fitted) == 1 and np.allclose(fitted[0], train_z)
    assert [name for name, _ in fit.model.steps] == [
        "standardscaler-1",
        "spy",
        "standardscaler-2",
        "logisticregression",
    ]
    reference = PCA(n_components=8, svd_solver="full").fit(train_z)
    np.testing.assert_allclose(fit.model[1].components_, reference.components_, atol=1e-10)
    assert fit.model[-1].coef_.shape == (3, 8) and fit.model.predict(sx).shape == (200,)
    assert fit.note.startswith("PCA-8 on the train split's standardised features: 32 dimensions to 8, ")


def test_the_pca_probe_on_features_no_wider_than_k_is_the_linear_probe():
    (tx, ty), (vx, vy) = planted(300, seed=1), planted(100, seed=2)
    fit, plain = get_probe("linear-pca:32").fit(tx, ty, vx, vy, DEFAULT_C_GRID), fit_probe(tx, ty, vx, vy)
    assert (fit.chosen, fit.curve, fit.grid) == (plain.chosen, plain.curve, plain.grid)
    assert fit.note == (
        "PCA-32 not applied: the features have 32 dimensions, no more than 32; the linear probe read them as they are"
    )
    # Fewer training rows than K (few-shot): as many components as rows.
    fit = get_probe("linear-pca:16").fit(tx[:12], ty[:12], vx, vy, DEFAULT_C_GRID)
    assert fit.model[1].n_components_ == 12 and "32 dimensions to 12 (only 12 training rows)" in fit.note


def test_the_pca_probe_is_its_own_row_with_k_in_its_identity(tiny_model, tiny_tasks, tmp_path):
    config = ExtractorConfig(model=tiny_model, pretrained="random")
    record, path = runner.probe("tiny-light", config, results_dir=tmp_path, kind="linear-pca:8")
    assert record.method == "linear-probe-pca8" and path.name == "tiny-clip-random__linear-probe-pca8__seed0.json"
    assert record.selection.note.startswith("PCA-8 on the train split's standardised features: 16 dimensions to 8")
    assert set(DEFAULT_C_GRID) <= set(record.selection.grid)
    other, _ = runner.probe("tiny-light", config, results_dir=tmp_path, kind="linear-pca:4")
    linear, _ = runner.probe("tiny-light", config, results_dir=tmp_path)
    assert len({record.key, other.key, linear.key}) == 3 and not other.reused
    again, _ = runner.probe("tiny-light", config, results_dir=tmp_path, kind="linear-pca:8")
    assert again.reused and again.key == record.key
