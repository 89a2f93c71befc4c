"""The curation experiment: one model per caption policy beside the baselines, cached at every stage, rendered by report."""

from __future__ import annotations

import dataclasses
import json

import pytest
from conftest import TINY_SIZES
from typer.testing import CliRunner

import clipprobe.baselines.trained as baseline_run
import clipprobe.dashcam.pretrain as pretrain
import clipprobe.features.extractors as extractors
from clipprobe.cli.app import app
from clipprobe.cli.dashcam import _expand_policies
from clipprobe.core.errors import UsageError
from clipprobe.core.kinds import RowKind
from clipprobe.core.records import to_json
from clipprobe.dashcam.captions import descriptive_fraction
from clipprobe.dashcam.experiment import CurationExperiment, run_curation
from clipprobe.dashcam.pretrain import PretrainConfig
from clipprobe.dashcam.world import WorldConfig
from clipprobe.jobs.probe import ProbeJob
from clipprobe.jobs.zeroshot import ZeroShotJob
from clipprobe.report.build import build_report
from clipprobe.results import VOLATILE_FIELD, read_results

runner = CliRunner()


@pytest.fixture
def tiny_experiment(tiny_model):
    world = WorldConfig(image_size=64, sizes=dict(TINY_SIZES))
    return CurationExperiment(
        policies=("salient", "descriptive", "mixed:0.5"),
        tasks=("traffic-light", "pedestrian"),
        baselines="cnn,random",
        budget={"epochs": 1, "image_size": 16, "batch_size": 16},
        attributes=("pedestrian",),
        pairs=4,
        recipe=PretrainConfig(model=tiny_model, steps=2, batch_size=8),
        world=world,
        layers=("embedding",),
        probes=("linear",),
        mlp_tasks=(),
        attentive_tasks=(),
        suite_tasks=(),
        seeds=1,
    )


def _stable(record):
    return {k: v for k, v in to_json(record).items() if k != VOLATILE_FIELD}


def test_experiment_writes_the_headline_table_and_a_rerun_trains_and_extracts_nothing(
    tiny_experiment, tmp_path, monkeypatch
):
    record, path = run_curation(tiny_experiment, results_dir=tmp_path / "results", sensitivity_dir=tmp_path / "sens")
    assert path == tmp_path / "results" / "experiments" / "curation__salient-descriptive-mixed-0.5__seed0.json"
    # Per policy a probe row and a zero-shot row, then the baselines; every row has every task.
    assert [(r.policy, r.method) for r in record.rows] == [
        ("salient", "linear-probe"),
        ("salient", "zero-shot"),
        ("descriptive", "linear-probe"),
        ("descriptive", "zero-shot"),
        ("mixed:0.5", "linear-probe"),
        ("mixed:0.5", "zero-shot"),
        (None, "supervised-cnn"),
        (None, "linear-probe"),
    ]
    # Each row declares its kind: the policies' probes and zero-shot rows, the CNN trained on the labels, a control.
    assert [r.kind for r in record.rows] == [RowKind.PROBE, RowKind.ZERO_SHOT] * 3 + [RowKind.TRAINED, RowKind.CONTROL]
    assert all(set(r.tasks) == {"traffic-light", "pedestrian"} for r in record.rows)
    # Policy models differ only in their captions, so each is its own weights and its own row.
    assert len({r.representation for r in record.rows[:6:2]}) == 3
    assert [r.descriptive_fraction for r in record.rows[:6:2]] == [0.0, 1.0, 0.5]
    # Sensitivity for every embedding (policy models, random weights), none for the CNN trained per task.
    assert record.rows[0].sensitivity["pedestrian"].score > 0
    assert record.rows[6].sensitivity is None and record.rows[7].sensitivity is not None
    # Each row's numbers are its result file's.
    first = record.rows[0].tasks["traffic-light"]
    stored = json.loads(open(first.results[0]).read())
    assert stored["metrics"]["balanced_accuracy"] == first.balanced_accuracy
    assert stored["kind"] == "probe"
    assert json.loads(path.read_text())["rows"][0]["sensitivity"]["pedestrian"]["score"] > 0

    def fail(*args, **kwargs):
        raise AssertionError("a re-run must not train or extract")

    monkeypatch.setattr(pretrain, "train", fail)
    monkeypatch.setattr(extractors.BatchExtractor, "encode", fail)
    monkeypatch.setattr(baseline_run, "fit", fail)
    outcomes = []
    again, again_path = run_curation(
        tiny_experiment,
        results_dir=tmp_path / "results",
        sensitivity_dir=tmp_path / "sens",
        on_result=lambda result, _: outcomes.append(result),
    )
    assert again_path == path and _stable(again) == _stable(record)
    assert len(outcomes) == 2 * len(record.rows) and all(r.reused for r in outcomes)
    assert len(read_results(tmp_path / "results")) == len(outcomes)


@pytest.mark.slow
def test_one_more_policy_trains_only_that_model(tiny_experiment, tmp_path, monkeypatch):
    import dataclasses

    run_curation(
        dataclasses.replace(tiny_experiment, policies=("salient",), baselines="none", attributes=()),
        results_dir=tmp_path / "results",
    )
    trained = []
    original = pretrain.train
    monkeypatch.setattr(
        pretrain, "train", lambda config, device="cpu": trained.append(config.captions) or original(config, device)
    )
    record, _ = run_curation(
        dataclasses.replace(tiny_experiment, policies=("salient", "descriptive"), baselines="none", attributes=()),
        results_dir=tmp_path / "results",
    )
    assert trained == ["descriptive"]
    assert [r.policy for r in record.rows] == ["salient", "salient", "descriptive", "descriptive"]


@pytest.mark.slow
def test_report_renders_the_experiment_with_its_dose_response_plot(tiny_experiment, tmp_path):
    import dataclasses

    run_curation(
        dataclasses.replace(tiny_experiment, baselines="random"),
        results_dir=tmp_path / "results",
        sensitivity_dir=tmp_path / "sens",
    )
    report = build_report(tmp_path / "results", tmp_path / "reports")
    assert len(report.experiments) == 1
    markdown = report.files["markdown"].read_text()
    assert "### Curation experiment: salient, descriptive, mixed:0.5" in markdown
    assert "| Representation | Captions | traffic-light | pedestrian | sensitivity: pedestrian |" in markdown
    page = report.files["html"].read_text()
    assert 'alt="balanced accuracy and sensitivity against the fraction of descriptive captions"' in page
    assert (
        json.loads(report.files["json"].read_text())["experiments"][0]["name"]
        == "curation__salient-descriptive-mixed-0.5__seed0"
    )
    # The experiment's own file is not read as a per-task result.
    assert {r["task"] for r in report.entries} == {"traffic-light[image_size=64]", "pedestrian[image_size=64]"}


def test_descriptive_fraction_places_policies_on_the_dose_axis():
    assert [descriptive_fraction(p) for p in ("salient", "mixed:0", "mixed:0.05", "descriptive")] == [
        0.0,
        0.0,
        0.05,
        1.0,
    ]
    assert descriptive_fraction("attribute-dropout:light_state") is None


def test_policy_list_shorthand_continues_the_family():
    assert _expand_policies("mixed:0,0.01,0.2,1") == ["mixed:0", "mixed:0.01", "mixed:0.2", "mixed:1"]
    assert _expand_policies("salient, descriptive,mixed:0.1") == ["salient", "descriptive", "mixed:0.1"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--policies", "salient,vague"],
            "Error: Unknown caption policy 'vague'. Available: attribute-dropout, descriptive, mixed, salient\n",
        ),
        (
            ["--policies", "mixed:2"],
            "Error: Caption policy 'mixed:P' needs a fraction P between 0 and 1, got 'mixed:2'\n",
        ),
        (
            ["--tasks", "traffic-light-crops"],
            "Error: Task 'traffic-light-crops' is not over the dashcam world. Available: "
            "traffic-light, pedestrian, pedestrian-side, pedestrian-action, pedestrian-count, car-colour, car-facing, "
            "car-distance, lane-markings, speed-limit, clouds, time-of-day\n",
        ),
        (
            ["--baselines", "cnn,gan"],
            "Error: Unknown baseline 'gan'. Available: cnn, orbit-cnn, pixels, random, zero-shot\n",
        ),
        (["--part", "2/2"], "Error: --part K/N needs 0 <= K < N, got 2/2\n"),
        (
            ["--suite-tasks", "traffic-light-crops"],
            "Error: Task 'traffic-light-crops' is not over the dashcam world. Available: "
            "traffic-light, pedestrian, pedestrian-side, pedestrian-action, pedestrian-count, car-colour, car-facing, "
            "car-distance, lane-markings, speed-limit, clouds, time-of-day\n",
        ),
        (["--part", "one"], "Error: --part expects K/N with whole numbers, e.g. 0/4; got 'one'\n"),
        (
            ["--tasks", "pedestrian", "--mlp-tasks", "clouds"],
            "Error: --mlp-tasks: 'clouds' is not one of the experiment's tasks (pedestrian)\n",
        ),
        (
            ["--attributes", "weather"],
            "Error: Unknown counterfactual attribute 'weather'. Available: car-colour, car-distance, car-facing, "
            "lane-markings, pedestrian, pedestrian-action, pedestrian-count, pedestrian-side, speed-limit, time-of-day, "
            "traffic-light\n",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2_before_any_work(args, message, monkeypatch):
    monkeypatch.setattr(pretrain, "train", lambda *a, **k: pytest.fail("nothing may run before the input is checked"))
    result = runner.invoke(app, ["experiment", "curation", *args])
    assert result.exit_code == 2
    assert result.stderr == message


@pytest.mark.slow
def test_other_models_get_rows_of_their_own_from_a_checkpoint_file(tiny_experiment, tmp_path):
    """A real CLIP is one more `--model MODEL@WEIGHTS`: here a checkpoint the test writes, loaded by the real code."""
    import dataclasses

    from clipprobe.dashcam.pretrain import save, train

    folder = save(
        train(dataclasses.replace(tiny_experiment.recipe, captions="descriptive", world=tiny_experiment.world)),
        tmp_path / "ckpt",
    )
    spec = f"{tiny_experiment.recipe.model}@{folder / 'open_clip_model.safetensors'}"
    experiment = dataclasses.replace(tiny_experiment, policies=("salient",), baselines="none", models=(spec,))
    record, _ = run_curation(experiment, results_dir=tmp_path / "results", sensitivity_dir=tmp_path / "sens")
    assert [(r.kind, r.policy, r.method) for r in record.rows] == [
        (RowKind.PROBE, "salient", "linear-probe"),
        (RowKind.ZERO_SHOT, "salient", "zero-shot"),
        (RowKind.PROBE, None, "linear-probe"),
        (RowKind.ZERO_SHOT, None, "zero-shot"),
    ]
    assert record.rows[2].representation != record.rows[0].representation
    assert record.rows[2].sensitivity["pedestrian"].score is not None
    assert record.design.models == [spec]


def test_an_unknown_model_tag_fails_before_any_training(tiny_experiment, monkeypatch):
    import dataclasses

    from clipprobe.core.errors import UsageError

    monkeypatch.setattr(pretrain, "train", lambda *a, **k: pytest.fail("nothing may run before the input is checked"))
    with pytest.raises(UsageError, match="Unknown pretrained tag 'laion9000' for model 'ViT-B-32'"):
        run_curation(dataclasses.replace(tiny_experiment, models=("ViT-B-32@laion9000",)))


def _describe(job):
    probe = job.probe.name if isinstance(job, ProbeJob) else None
    layer = job.config.layer if isinstance(job, ProbeJob) else None
    return (type(job).__name__, job.task.name, job.origin, probe, layer)


def test_the_parts_of_an_experiment_share_out_its_jobs(tiny_experiment):
    """Every job in exactly one part; a pretraining seed's models stay together, and so do a baseline seed's rows."""
    experiment = dataclasses.replace(tiny_experiment, seeds=3, baseline_seeds=2, mlp_tasks=("traffic-light",))
    everything = [_describe(job) for job in experiment.jobs()]
    parts = [[_describe(job) for job in dataclasses.replace(experiment, part=(k, 4)).jobs()] for k in range(4)]
    assert sorted(map(repr, everything)) == sorted(repr(job) for part in parts for job in part)
    assert len(everything) == len(set(map(repr, everything)))
    for part in parts:
        units = {(origin.seed, origin.baseline is not None) for _, _, origin, _, _ in part}
        assert 1 <= len(units) <= 2  # 3 seeds x (models, baselines): 6 units over 4 parts
    # The MLP reads each policy's embedding on the light at every pretraining seed (and random weights').
    mlp = [d for d in everything if d[3] == "mlp"]
    assert {(d[2].seed, d[2].baseline, d[4]) for d in mlp} == {
        (seed, baseline, "embedding") for seed in range(3) for baseline in (None, "random")
    }
    assert len([d for d in mlp if d[2].baseline is None]) == 3 * len(experiment.policies)
    # The trained baselines at their own two seeds only; random weights at every pretraining seed.
    assert {d[2].seed for d in everything if d[0] == "TrainedJob"} == {0, 1}
    assert {d[2].seed for d in everything if d[2].baseline == "random"} == {0, 1, 2}


def test_the_suite_tasks_are_read_at_the_embedding_beside_the_cnn_random_weights_and_zero_shot(tiny_experiment):
    experiment = dataclasses.replace(
        tiny_experiment,
        tasks=("traffic-light",),
        suite_tasks=("car-facing", "traffic-light"),
        baselines="cnn,orbit-cnn:hflip,pixels,random",
        layers=("embedding", "tokens"),
    )
    assert experiment.suite() == ("car-facing",)  # a task probed in full is not read again
    assert experiment.all_tasks() == ("traffic-light", "car-facing")
    suite = [job for job in experiment.jobs() if job.task.label == "car_facing"]
    kinds = {
        (job.kind, job.origin.baseline, job.config.layer if isinstance(job, (ProbeJob, ZeroShotJob)) else None)
        for job in suite
    }
    assert {baseline for _, baseline, _ in kinds} == {None, "cnn", "random", "zero-shot"}
    assert {layer for _, _, layer in kinds} <= {"embedding", None}
    assert experiment.describe().suite_tasks == ["car-facing"]


def test_the_attentive_probe_reads_the_layer_familys_policies_and_random_weights(tiny_experiment):
    experiment = dataclasses.replace(tiny_experiment, attentive_tasks=("traffic-light",))
    assert experiment.reading_policies() == ("salient", "descriptive")
    attentive = [job for job in experiment.jobs() if isinstance(job, ProbeJob) and job.probe.name == "attentive"]
    names = experiment.model_names()
    read = {names[job.origin.model][1] if job.origin.baseline is None else job.origin.baseline for job in attentive}
    assert read == {"salient", "descriptive", "random"}
    with pytest.raises(UsageError, match=r"^--attentive-policies: 'poetic' is not one of the experiment's policies"):
        dataclasses.replace(tiny_experiment, attentive_policies=("poetic",)).check()
