"""The job layer: a new baseline or a new dataset scheme is one class and one registration. Registered in the test and
nowhere else, each runs through the runner, the curation experiment and `clipprobe report` with no other change
to the package: the runner builds its jobs from what the baseline declares, and the report reads the kind of row
each record declares."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import TINY_SIZES
from test_readers import JsonListSource, write_toy
from typer.testing import CliRunner

from clipprobe.baselines.registry import BASELINES, LabelBaseline, Trained
from clipprobe.cli.app import app
from clipprobe.core.kinds import RowKind, SeedPolicy
from clipprobe.dashcam.experiment import CurationExperiment, run_curation
from clipprobe.dashcam.pretrain import PretrainConfig
from clipprobe.dashcam.world import WorldConfig
from clipprobe.data.readers import SCHEMES
from clipprobe.data.task import Task
from clipprobe.features.config import ExtractorConfig
from clipprobe.jobs.trained import TrainedJob
from clipprobe.results import Selection, Training, read_results
from clipprobe.runner import RunPlan, run

runner = CliRunner()


class NearestMean(LabelBaseline):
    """The toy baseline: each test image gets the class whose mean training image (pooled to p x p) is nearest; p
    is chosen on validation."""

    name = "nearest-mean"
    method = "nearest-mean"
    version = 1
    description = "Nearest class mean of pooled pixels (a test's toy)"
    sizes = (1, 2, 4)

    def row(self, option: str | None, budget: Mapping[str, Any] | None, resize: str | None) -> str:
        return "nearest-mean/pixels"

    def settings(self, option: str | None, budget: Mapping[str, Any] | None, resize: str | None) -> dict[str, Any]:
        return {"sizes": list(self.sizes)}

    def train(
        self, task: Task, seed: int, option: str | None, budget: Mapping[str, Any] | None, resize: str | None
    ) -> Trained:
        data = task.source.load()

        def pooled(split: str, size: int) -> np.ndarray:
            rows = data[split].select(task.rows(data[split]).tolist())
            images = [
                np.asarray(image.convert("RGB").resize((size, size)), dtype=np.float64) for image in rows["image"]
            ]
            return np.stack(images).reshape(len(images), -1)

        def fit(size: int) -> np.ndarray:
            x, y = pooled("train", size), task.labels(data["train"])
            return np.stack([x[y == k].mean(axis=0) for k in range(len(task.classes))])

        def predict(means: np.ndarray, split: str, size: int) -> np.ndarray:
            x = pooled(split, size)
            return ((x[:, None, :] - means[None]) ** 2).sum(-1).argmin(1)

        truth = task.labels(data["validation"])
        curve = [
            {"size": float(s), "balanced_accuracy": float((predict(fit(s), "validation", s) == truth).mean())}
            for s in self.sizes
        ]
        best = max(curve, key=lambda point: point["balanced_accuracy"])
        size = int(best["size"])
        return Trained(
            model="nearest-mean",
            test_predictions=predict(fit(size), "test", size),
            selection=Selection("balanced_accuracy", "validation", "size", size, curve=curve),
            training=Training(
                baseline=self.name,
                architecture="class means",
                parameters=size * size * 3 * len(task.classes),
                budget={},
                augment="none",
                optimiser="none",
                loss="squared distance",
                geometry="squash",
                input=f"pooled to {size}x{size} px",
                epochs_run=1,
            ),
            sizes={split: len(task.rows(data[split])) for split in ("train", "validation", "test")},
        )


@pytest.fixture
def toy_baseline():
    baseline = NearestMean()
    BASELINES.register(baseline.name, baseline)
    yield baseline
    BASELINES.unregister(baseline.name)


@pytest.fixture
def toy_scheme():
    SCHEMES.register("toy", JsonListSource)
    yield JsonListSource
    SCHEMES.unregister("toy")


@pytest.mark.slow
def test_a_toy_baseline_declares_itself_and_the_runner_builds_its_jobs(toy_baseline, tiny_model, tiny_tasks):
    """What the baseline declares (a row trained on the labels, its own seed per run seed, no model, no layers) is
    what the runner does: one job per seed, none per model, each recorded as `trained`."""
    assert (toy_baseline.kind, toy_baseline.uses_model, toy_baseline.layered) == (RowKind.TRAINED, False, False)
    assert toy_baseline.seeds is SeedPolicy.OWN
    configs = [ExtractorConfig(model=tiny_model, pretrained="random"), ExtractorConfig(extractor="pixels")]
    plan = RunPlan.build(tiny_tasks["tiny-light"], configs, baselines="nearest-mean", seeds=2)
    jobs = [job for job in plan.jobs() if isinstance(job, TrainedJob)]
    assert [(job.seed, job.origin.model) for job in jobs] == [(0, None), (1, None)]

    outcomes = run(plan)
    rows = {(r.representation, r.seed): r for r, _ in outcomes if r.method == "nearest-mean"}
    assert sorted(rows) == [("nearest-mean/pixels", 0), ("nearest-mean/pixels", 1)]
    record = rows["nearest-mean/pixels", 0]
    assert record.kind is RowKind.TRAINED and record.selection.parameter == "size"
    assert 0.0 <= record.metrics.balanced_accuracy <= 1.0 and len(record.predictions) == record.metrics.n

    result = runner.invoke(app, ["report"])
    assert result.exit_code == 0, result.output
    report = (Path("reports") / "report.md").read_text()
    assert "nearest-mean/pixels" in report
    kinds = {r.representation: r.kind for r in read_results()}
    assert kinds["nearest-mean/pixels"] is RowKind.TRAINED


@pytest.mark.slow
def test_a_toy_baseline_runs_in_the_curation_experiment(toy_baseline, tiny_model, tmp_path):
    """The experiment is a run plan: the toy baseline gets its own row beside the policies, one result per seed."""
    experiment = CurationExperiment(
        policies=("salient",),
        tasks=("traffic-light",),
        baselines="nearest-mean",
        attributes=(),
        suite_tasks=(),
        recipe=PretrainConfig(model=tiny_model, steps=2, batch_size=8),
        world=WorldConfig(image_size=64, sizes=dict(TINY_SIZES)),
        layers=("embedding",),
        zero_shot=False,
        seeds=2,
    )
    record, _ = run_curation(experiment, results_dir=tmp_path / "results", sensitivity_dir=tmp_path / "sensitivity")
    toy = [row for row in record.rows if row.method == "nearest-mean"]
    assert len(toy) == 1 and toy[0].kind is RowKind.TRAINED and toy[0].layer is None
    assert len(toy[0].tasks["traffic-light"].per_seed) == 2
    contrasts = record.primary + record.exploratory
    assert all(c.against != "nearest-mean/pixels" for c in contrasts)  # a control of a trained row: not compared
    result = runner.invoke(app, ["report", "--results", str(tmp_path / "results")])
    assert result.exit_code == 0, result.output
    assert "nearest-mean/pixels" in (tmp_path / "reports" / "report.md").read_text()


def test_a_toy_scheme_runs_through_the_runner_and_the_report(toy_scheme, tiny_model, tmp_path):
    """A model's probe and the pixels control on a dataset of a scheme registered in the test alone."""
    manifest = write_toy(tmp_path, {"train": 12, "validation": 6, "test": 6})
    config = ExtractorConfig(model=tiny_model, pretrained="random")
    plan = RunPlan.build(_toy_task(manifest), config, baselines="pixels")
    outcomes = run(plan)
    assert {r.kind for r, _ in outcomes} == {RowKind.PROBE, RowKind.CONTROL}
    assert all(r.data.location == f"toy:{manifest.resolve()}" for r, _ in outcomes)
    result = runner.invoke(app, ["report"])
    assert result.exit_code == 0, result.output
    assert "pixels/32px" in (tmp_path / "reports" / "report.md").read_text()


def _toy_task(manifest) -> Task:
    from clipprobe.cli.options import choose_task

    task = choose_task(None, f"toy:{manifest}")
    assert isinstance(task, Task)
    return task
