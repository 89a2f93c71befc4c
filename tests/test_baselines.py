"""Trained baselines: they learn planted signals, select on validation only, and orbit models are invariant."""

from __future__ import annotations

import dataclasses
import json

import datasets
import numpy as np
import pytest
import torch
from PIL import Image

from clipprobe.baselines import trained as baseline_run
from clipprobe.baselines.nets import OrbitCNN
from clipprobe.baselines.registry import BASELINES, DEFAULT_BASELINES, get_baseline, list_baselines, parse_baselines
from clipprobe.baselines.trained import train_baseline
from clipprobe.baselines.training import Budget, parse_budget, resolve_augment
from clipprobe.core.errors import UsageError
from clipprobe.core.kinds import RowKind
from clipprobe.data.readers import DataSource
from clipprobe.data.task import Task
from clipprobe.features.orbits import get_group
from clipprobe.probes.metrics import score_predictions
from clipprobe.results import SCHEMA_VERSION, Incomplete, Weights
from clipprobe.runner import run_baseline

SIZE = 16
# Tiny images and a few epochs: each training run takes a second or two on a CPU.
FAST = Budget(epochs=6, batch_size=16, image_size=SIZE, learning_rate=1e-2, max_seconds=None)


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors gain nothing from a second thread, and on a busy machine thread hand-offs stall."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class PlantedSource(DataSource):
    """A minimal DataSource over an in-memory DatasetDict."""

    image_column = "image"

    def __init__(self, name: str, data: datasets.DatasetDict):
        self.name, self._data = name, data

    def load(self) -> datasets.DatasetDict:
        return self._data

    def fingerprint(self) -> str:
        return f"planted-{self.name}"


def _split(images: list[np.ndarray], labels: list[int], classes: tuple[str, ...], split: str) -> datasets.Dataset:
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=list(classes))})
    return datasets.Dataset.from_dict(
        {"image": [Image.fromarray(x) for x in images], "label": labels}, features=features, split=split
    )


def _background(rng: np.random.Generator) -> np.ndarray:
    return rng.integers(60, 140, size=(SIZE, SIZE, 3)).astype(np.uint8)


def colour_task(seed: int = 0, sizes=(120, 60, 90)) -> Task:
    """The class is the colour of a 4x4 square anywhere in the image: invariant to translations and flips."""
    classes = ("red", "green", "blue")
    rng = np.random.default_rng(seed)
    splits = {}
    for split, n in zip(("train", "validation", "test"), sizes):
        images, labels = [], []
        for i in range(n):
            label = i % 3
            x = _background(rng)
            top, left = rng.integers(0, SIZE - 4, size=2)
            x[top : top + 4, left : left + 4] = 20
            x[top : top + 4, left : left + 4, label] = 250
            images.append(x), labels.append(label)
        splits[split] = _split(images, labels, classes, split)
    source = PlantedSource(f"colour-{seed}", datasets.DatasetDict(splits))
    return Task(f"planted-colour-{seed}", "colour of a square", source, "label", classes)


def side_task(seed: int = 0, sizes=(160, 60, 40)) -> Task:
    """The class is the half (left / right) holding a bright square. The test split is mirror pairs:
    each image is followed by its mirror image, which has the other label."""
    classes = ("left", "right")
    rng = np.random.default_rng(seed)
    splits = {}
    for split, n in zip(("train", "validation", "test"), sizes):
        images, labels = [], []
        while len(images) < n:
            label = len(images) % 2
            x = _background(rng)
            top = rng.integers(0, SIZE - 4)
            # Square starts 0..4 (left) or 8..12 (right): the mirror of a left square is a right one, and back.
            left = rng.integers(0, SIZE // 2 - 3) + (SIZE // 2 if label else 0)
            x[top : top + 4, left : left + 4] = 250
            images.append(x), labels.append(label)
            if split == "test":
                images.append(x[:, ::-1].copy()), labels.append(1 - label)
        splits[split] = _split(images, labels, classes, split)
    source = PlantedSource(f"side-{seed}", datasets.DatasetDict(splits))
    return Task(f"planted-side-{seed}", "which half holds the square", source, "label", classes)


def test_registry_lists_the_baselines_and_rejects_unknown_names():
    assert list_baselines() == ["cnn", "orbit-cnn", "pixels", "random", "zero-shot"]
    assert DEFAULT_BASELINES == ("cnn", "orbit-cnn", "pixels", "random")
    assert get_baseline("orbit-cnn").default_group == "translate:4+hflip"
    assert get_baseline("cnn").budget == Budget() and get_baseline("orbit-cnn").budget.epochs == 24
    with pytest.raises(
        UsageError, match=r"^Unknown baseline 'resnet'\. Available: cnn, orbit-cnn, pixels, random, zero-shot$"
    ):
        get_baseline("resnet")
    with pytest.raises(
        UsageError, match=r"^Unknown baseline 'resnet'\. Available: cnn, orbit-cnn, pixels, random, zero-shot$"
    ):
        run_baseline("resnet", colour_task())
    with pytest.raises(
        UsageError,
        match=r"^Baseline 'pixels' is a linear probe, not a trained model; trained baselines: cnn, orbit-cnn$",
    ):
        run_baseline("pixels", colour_task())


def test_baseline_specs_are_checked_before_anything_runs():
    assert parse_baselines("none") == [] and parse_baselines([]) == []
    chosen = parse_baselines("cnn, orbit-cnn:hflip,pixels")
    assert [(b.name, option) for b, option in chosen] == [("cnn", None), ("orbit-cnn", "hflip"), ("pixels", None)]
    assert parse_baselines("orbit-cnn:translate:4+hflip")[0][1] == "translate:4+hflip"
    for spec, message in [
        ("cnn,resnet", r"^Unknown baseline 'resnet'\. Available: cnn, orbit-cnn, pixels, random, zero-shot$"),
        ("none,cnn", r"^--baselines none cannot be combined with other baselines$"),
        ("cnn:hflip", r"^Baseline 'cnn' takes no group; orbit baselines do: orbit-cnn$"),
        ("orbit-cnn:spin", r"^Unknown group 'spin'\. Available: hflip, translate$"),
        ("random:0", r"^Baseline 'random' takes no option \(got 'random:0'\)$"),
    ]:
        with pytest.raises(UsageError, match=message):
            parse_baselines(spec)


def test_budget_overrides_parse_with_the_fields_types():
    assert parse_budget("epochs=40, image_size=96,max_seconds=none") == {
        "epochs": 40,
        "image_size": 96,
        "max_seconds": None,
    }
    assert parse_budget("learning_rate=1e-3,augment=translate") == {"learning_rate": 1e-3, "augment": "translate"}
    assert parse_budget(None) == {}
    with pytest.raises(
        UsageError, match=r"^Budget expects KEY=VALUE\[,KEY=VALUE\.\.\.\] with KEY one of epochs, batch_size, "
    ):
        parse_budget("epoch=3")
    with pytest.raises(UsageError, match=r"^Budget epochs expects int \(default 24\); got 'many'$"):
        parse_budget("epochs=many")
    with pytest.raises(
        UsageError, match=r"^Invalid budget: image_size=4; it must be a whole number of pixels from 8 to 1024$"
    ):
        parse_budget("image_size=4")


@pytest.mark.parametrize(
    "text, message",
    [
        ("learning_rate=inf", r"^Invalid budget: learning_rate=inf; it must be a number in \(0, 10\]$"),
        ("learning_rate=nan", r"^Invalid budget: learning_rate=nan; it must be a number in \(0, 10\]$"),
        ("weight_decay=inf", r"^Invalid budget: weight_decay=inf; it must be a number in \[0, 10\]$"),
        ("max_seconds=inf", r"^Invalid budget: max_seconds=inf; it must be a finite number of seconds above 0"),
        ("image_size=3000", r"^Invalid budget: image_size=3000; it must be a whole number of pixels from 8 to 1024$"),
    ],
)
def test_a_budget_outside_its_range_is_refused_before_any_training(text, message):
    with pytest.raises(UsageError, match=message):
        parse_budget(text)


def test_bad_arguments_fail_before_any_training():
    with pytest.raises(UsageError, match=r"^Baseline 'cnn' takes no group; orbit baselines do: orbit-cnn$"):
        run_baseline("cnn", colour_task(), group="hflip")
    with pytest.raises(UsageError, match=r"^Group translate:3 needs an image size divisible by 3, got 16x16$"):
        run_baseline("orbit-cnn", colour_task(), budget=FAST, group="translate:3")
    with pytest.raises(UsageError, match=r"^Unknown group 'rotate'"):
        run_baseline("orbit-cnn", colour_task(), budget=FAST, group="rotate:4")
    with pytest.raises(
        UsageError, match=r"^Unknown augmentation 'mixup'\. Available: auto, translate\+hflip, translate, hflip, none$"
    ):
        Budget(augment="mixup")
    with pytest.raises(UsageError, match=r"^Invalid budget: epochs=0; it must be a whole number from 1 to 10000$"):
        Budget(epochs=0)


def test_cnn_learns_a_planted_colour(tmp_path):
    record, path = run_baseline("cnn", colour_task(), results_dir=tmp_path, budget=FAST)
    assert record.metrics.balanced_accuracy > 0.9
    # A budget other than the baseline's own is in the row's name and file: it keeps its own result.
    named = "cnn/from-scratch[epochs=6,batch_size=16,image_size=16,learning_rate=0.01]"
    file = "cnn-from-scratch-epochs-6-batch_size-16-image_size-16-learning_rate-0.01__supervised-cnn__seed0.json"
    assert path == tmp_path / "planted-colour-0" / file
    assert record.method == "supervised-cnn" and record.representation == named
    assert record.kind is RowKind.TRAINED
    assert record.pretrained is None and record.weights == Weights(kind="trained-on-task")
    selection = record.selection
    assert selection.metric == "balanced_accuracy" and selection.split == "validation"
    epochs = [p["epoch"] for p in selection.curve]
    best = max(p["balanced_accuracy"] for p in selection.curve)
    # The chosen epoch is the first to reach the best validation score; a perfect one ends training there.
    assert selection.chosen == next(p["epoch"] for p in selection.curve if p["balanced_accuracy"] == best)
    if best == 1.0:
        assert epochs == list(range(1, selection.chosen + 1))
    else:
        assert epochs == list(range(1, FAST.epochs + 1))
    assert selection.at_grid_edge is (selection.chosen == FAST.epochs)  # the budget's last epoch: flagged
    assert record.data.sizes == {"train": 120, "validation": 60, "test": 90}
    assert record.metrics.n == 90 and np.asarray(record.metrics.confusion_matrix).sum() == 90
    assert record.training.epochs_run == len(epochs) and record.incomplete is None


def test_stopping_at_a_perfect_validation_score_changes_nothing_but_the_time(tmp_path, monkeypatch):
    import clipprobe.baselines.training as training

    early, _ = run_baseline("cnn", colour_task(), results_dir=tmp_path / "early", budget=FAST)
    monkeypatch.setattr(training, "PERFECT", 2.0)  # never reached: every epoch runs
    whole, _ = run_baseline("cnn", colour_task(), results_dir=tmp_path / "whole", budget=FAST)
    assert early.training.epochs_run < whole.training.epochs_run == FAST.epochs
    assert early.selection.chosen == whole.selection.chosen
    assert early.selection.curve == whole.selection.curve[: len(early.selection.curve)]
    assert early.metrics == whole.metrics


def test_results_have_the_probe_schema_and_join_the_report(tmp_path):
    from clipprobe.report.build import build_report

    record, path = run_baseline(
        "orbit-cnn",
        colour_task(),
        results_dir=tmp_path / "results",
        budget=Budget(epochs=1, batch_size=16, image_size=SIZE, max_seconds=None),
    )
    probe_keys = {
        "task",
        "method",
        "representation",
        "model",
        "pretrained",
        "weights",
        "seed",
        "classes",
        "metrics",
        "selection",
        "data",
        "provenance",
        "run",
        "kind",
    }
    assert probe_keys <= set(record.to_json())
    assert {"versions", "machine"} <= set(record.to_json()["provenance"])
    assert {"source", "fingerprint", "label", "where", "sizes", "skipped"} <= set(record.to_json()["data"])
    assert record.kind is RowKind.TRAINED and record.to_json()["kind"] == "trained"
    named = "orbit-cnn/translate:4+hflip[epochs=1,batch_size=16,image_size=16]"
    assert record.representation == named and record.method == "orbit-cnn"
    assert record.training.group_size == 32
    assert json.loads(path.read_text())["schema_version"] == SCHEMA_VERSION
    report = build_report(tmp_path / "results", tmp_path / "reports")
    (entry,) = report.entries
    assert entry["representation"] == named and entry["parameter"] == "epoch"
    assert named in report.files["markdown"].read_text()


def test_selection_never_depends_on_test_labels(monkeypatch, tmp_path):
    """Scramble only the test labels: the chosen epoch and the validation curve must not move."""
    task = colour_task(seed=1)
    honest, _ = run_baseline("cnn", task, results_dir=tmp_path / "a", budget=FAST)

    events = []
    real_labels, real_fit = Task.labels, baseline_run.fit

    def scrambled(self, split):
        events.append(f"labels:{split.split}")
        y = real_labels(self, split)
        return np.random.default_rng(0).permutation(y) if split.split == "test" else y

    def fit_spy(*args, **kwargs):
        result = real_fit(*args, **kwargs)
        events.append("fitted")
        return result

    monkeypatch.setattr(Task, "labels", scrambled)
    monkeypatch.setattr(baseline_run, "fit", fit_spy)
    cheated, _ = run_baseline("cnn", task, results_dir=tmp_path / "b", budget=FAST)
    assert cheated.selection == honest.selection
    assert cheated.metrics.confusion_matrix != honest.metrics.confusion_matrix
    # Test labels are read once, after training and selection are over.
    assert events.count("labels:test") == 1 and events.index("labels:test") > events.index("fitted")


@pytest.mark.parametrize("spec", ["translate:4+hflip", "hflip", "translate:2"])
def test_orbit_cnn_is_exactly_invariant_at_random_weights(spec):
    torch.manual_seed(0)
    group = get_group(spec)
    model = OrbitCNN(3, group).eval()
    images = torch.rand(4, 3, SIZE, SIZE)
    with torch.no_grad():
        reference = model(images)
        for g in group.elements:
            torch.testing.assert_close(model(g(images)), reference, rtol=1e-5, atol=1e-5)
        # The same network without the orbit average is not invariant (so the check above could fail).
        plain = model.head(model.embed(images))
        assert not torch.allclose(model.head(model.embed(group.elements[-1](images))), plain, atol=1e-4)


def test_a_flip_invariant_model_is_at_chance_on_left_versus_right(tmp_path):
    """Theory check: hflip maps 'left' onto 'right', so a model invariant to it cannot tell them apart.

    The test split is mirror pairs, so the invariant model gets exactly one of each pair right: balanced
    accuracy 0.5 however it was trained. The same CNN without the flip (and without flip augmentation)
    learns the task, so chance is the invariance's doing, not the task's difficulty."""
    task = side_task()
    test = task.source.load()["test"]
    orbit = train_baseline("orbit-cnn", task, budget=FAST, group="hflip")
    x = torch.stack([torch.from_numpy(np.array(image)).permute(2, 0, 1) for image in test["image"]]).float() / 255
    with torch.no_grad():
        torch.testing.assert_close(orbit.network(torch.flip(x, dims=(-1,))), orbit.network(x), rtol=1e-5, atol=1e-5)
    metrics = score_predictions(task.labels(test), orbit.test_predictions, task.classes)
    assert metrics.balanced_accuracy == pytest.approx(0.5, abs=1e-9)
    assert metrics.accuracy == pytest.approx(0.5, abs=1e-9)

    # The default augmentation leaves out flips for a left/right task, so the plain CNN keeps the information.
    plain, _ = run_baseline("cnn", task, results_dir=tmp_path, budget=FAST)
    assert plain.representation.startswith("cnn/from-scratch[epochs=6,") and plain.training.augment == "translate"
    assert plain.metrics.balanced_accuracy > 0.9


def test_auto_augmentation_flips_only_when_a_flip_keeps_the_label():
    assert resolve_augment("auto", ("red", "amber", "green")) == "translate+hflip"
    assert resolve_augment("auto", ("Left", "right")) == "translate"
    assert resolve_augment("hflip", ("left", "right")) == "hflip"


@pytest.mark.parametrize("name, group", [("cnn", None), ("orbit-cnn", "translate:2+hflip")])
def test_same_seed_gives_identical_result_files(name, group, tmp_path):
    task = colour_task(seed=2)
    budget = Budget(epochs=2, batch_size=16, image_size=SIZE, max_seconds=None, orbit_train_elements=3)
    _, first = run_baseline(name, task, seed=5, results_dir=tmp_path / "a", budget=budget, group=group)
    _, second = run_baseline(name, task, seed=5, results_dir=tmp_path / "b", budget=budget, group=group)
    a, b = json.loads(first.read_text()), json.loads(second.read_text())
    assert a.pop("run") != {} and b.pop("run") != {}
    assert a == b
    _, other = run_baseline(name, task, seed=6, results_dir=tmp_path / "c", budget=budget, group=group)
    assert json.loads(other.read_text())["selection"]["curve"] != a["selection"]["curve"]


def test_the_callers_random_state_is_left_alone(tmp_path):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    run_baseline("cnn", colour_task(), results_dir=tmp_path, budget=Budget(epochs=1, image_size=SIZE, max_seconds=None))
    torch.testing.assert_close(torch.rand(3), expected)


def test_no_time_limit_by_default():
    assert Budget().max_seconds is None
    for name in BASELINES.names():
        budget = getattr(get_baseline(name), "budget", None)
        assert budget is None or budget.max_seconds is None, name


def test_a_time_limit_makes_the_result_incomplete_and_it_is_never_reused(tmp_path):
    budget = Budget(epochs=50, batch_size=16, image_size=SIZE, max_seconds=1e-3)
    record, path = run_baseline("cnn", colour_task(), results_dir=tmp_path, budget=budget)
    assert record.training.epochs_run == len(record.selection.curve) == 1
    assert record.incomplete == Incomplete(
        reached=1,
        planned=50,
        unit="epochs",
        reason="max_seconds=0.001 would have passed during epoch 2",
    )
    assert json.loads(path.read_text())["incomplete"] == dataclasses.asdict(record.incomplete)
    again, _ = run_baseline("cnn", colour_task(), results_dir=tmp_path, budget=budget)
    assert not again.reused  # its numbers depended on the machine's speed: recomputed, not reused


def test_baselines_run_on_a_dashcam_world(tiny_tasks, tmp_path):
    """The real data path: a DashcamWorld source, a task that keeps some rows, images resized on decode."""
    task = Task(
        "tiny-lit",
        "",
        tiny_tasks["tiny-light"].source,
        "light_state",
        ("red", "amber", "green"),
        where=(("light", "present"),),
    )
    budget = Budget(epochs=1, batch_size=8, image_size=32, max_seconds=None, orbit_train_elements=2)
    record, _ = run_baseline("orbit-cnn", task, results_dir=tmp_path, budget=budget)
    data = task.source.load()
    assert record.data.sizes == {split: len(task.rows(data[split])) for split in ("train", "validation", "test")}
    assert record.data.where == [["light", "present"]]
    assert record.metrics.n == record.data.sizes["test"]
    assert (
        BASELINES.get("orbit-cnn").row("hflip", budget, None) == "orbit-cnn/hflip[epochs=1,batch_size=8,image_size=32]"
    )
    assert BASELINES.get("orbit-cnn").row("hflip", None, None) == "orbit-cnn/hflip"
    # orbit_train_elements names an orbit model's row, never the plain CNN's (which has no orbit).
    assert BASELINES.get("cnn").row(None, {"orbit_train_elements": 1}, None) == "cnn/from-scratch"
    assert BASELINES.get("orbit-cnn").row("hflip", {"orbit_train_elements": 1}, None) == (
        "orbit-cnn/hflip[orbit_train_elements=1]"
    )
    assert BASELINES.get("cnn").row(None, Budget(augment="translate"), None) == "cnn/from-scratch[augment=translate]"


def test_training_has_no_test_argument():
    import inspect

    from clipprobe.baselines.training import fit

    assert not any("test" in name for name in inspect.signature(fit).parameters)


def test_a_stored_result_is_reused_unless_something_changed(tmp_path, monkeypatch):
    task = colour_task(seed=2)
    first, path = run_baseline("cnn", task, results_dir=tmp_path, budget=FAST)
    stored = path.read_bytes()

    def no_training(*args, **kwargs):
        raise AssertionError("trained again although the stored result answers the same run")

    monkeypatch.setattr(baseline_run, "fit", no_training)
    again, again_path = run_baseline("cnn", task, results_dir=tmp_path, budget=FAST)
    assert again_path == path and path.read_bytes() == stored
    assert again.run.reused is True and again.metrics == first.metrics
    monkeypatch.undo()

    # Another budget, or --refresh, trains again.
    changed, _ = run_baseline("cnn", task, results_dir=tmp_path, budget=dataclasses.replace(FAST, epochs=2))
    assert changed.run.reused is None and changed.training.epochs_run == 2
    refreshed, _ = run_baseline("cnn", task, results_dir=tmp_path, budget=FAST, refresh=True)
    assert refreshed.run.reused is None
    assert refreshed.to_json(volatile=False) == first.to_json(volatile=False)


@pytest.mark.slow
def test_compare_writes_the_probe_and_every_baseline_on_the_same_splits(tiny_model, tiny_tasks, tmp_path):
    from clipprobe.features.config import ExtractorConfig
    from clipprobe.report.build import build_report
    from clipprobe.runner import compare

    config = ExtractorConfig(model=tiny_model, pretrained="random", batch_size=16)
    tiny_budget = {"epochs": 1, "image_size": 16, "batch_size": 16}
    TINY = "[epochs=1,batch_size=16,image_size=16]"  # noqa: N806  (the trained rows' budget, in their names)
    outcomes = compare("tiny-light", config, results_dir=tmp_path / "results", budget=tiny_budget)
    rows = [(record.representation, record.method) for record, _ in outcomes]
    assert rows == [
        ("tiny-clip/random", "linear-probe"),
        (f"cnn/from-scratch{TINY}", "supervised-cnn"),
        (f"orbit-cnn/translate:4+hflip{TINY}", "orbit-cnn"),
        ("pixels/32px", "linear-probe"),
        ("tiny-clip/random", "linear-probe"),  # the random control of a random-weights model is the same run...
    ]
    assert outcomes[-1] is outcomes[0]  # ...so the run answers it with the first row's outcome, not fitted twice
    sizes = {json.dumps(record.data.sizes, sort_keys=True) for record, _ in outcomes}
    assert sizes == {json.dumps({"train": 60, "validation": 30, "test": 30}, sort_keys=True)}
    assert all(record.metrics.n == 30 for record, _ in outcomes)

    report = build_report(tmp_path / "results", tmp_path / "reports")
    assert report.tasks() == ["tiny-light"]
    assert {entry["representation"] for entry in report.entries} == {
        "tiny-clip/random",
        f"cnn/from-scratch{TINY}",
        f"orbit-cnn/translate:4+hflip{TINY}",
        "pixels/32px",
    }
    markdown = report.files["markdown"].read_text()
    assert "### tiny-light" in markdown and "| epoch " in markdown and "| C=" in markdown
