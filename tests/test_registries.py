"""Contract tests over every registry, as timm and open_clip test every registered model: each entry is built and
run on tiny inputs, and its result has the shape the rest of clipprobe relies on. A new entry is covered as soon
as it is registered (clipprobe.catalog)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from PIL import Image

from clipprobe.baselines.registry import BASELINES, LabelBaseline, ProbeControl, PromptBaseline
from clipprobe.core.errors import UsageError
from clipprobe.core.kinds import RowKind, SeedPolicy
from clipprobe.core.registry import Registry
from clipprobe.dashcam.captions import CAPTION_POLICIES, get_caption_policy
from clipprobe.dashcam.pairs import COUNTERFACTUALS
from clipprobe.dashcam.scene import sample_scene, scene_rng
from clipprobe.data.readers import SCHEMES, DataSource, list_schemes, parse_dataset
from clipprobe.data.task import TASKS, get_task
from clipprobe.features.config import LAYERS, ExtractorConfig
from clipprobe.features.extract import extract_features
from clipprobe.features.extractors import EXTRACTORS
from clipprobe.features.orbits import GROUP_FACTORS, get_group, orbit_average
from clipprobe.features.weights import BUILTIN_WEIGHTS
from clipprobe.probes.registry import PROBE_FAMILIES, PROBES, get_probe
from clipprobe.report.experiments import EXPERIMENT_VIEWS
from clipprobe.results import Result
from clipprobe.runner import RunPlan, run_jobs

# Every registry and what must be in it: a registry that loses an entry, or gains one, is noticed here.
EXPECTED = {
    "task": (
        TASKS,
        {
            "traffic-light-crops",
            "traffic-light",
            "pedestrian",
            "pedestrian-side",
            "car-colour",
            "clouds",
            "time-of-day",
        },
    ),
    "dataset scheme": (SCHEMES, {"imagefolder", "csv", "parquet", "hf"}),
    "extractor": (EXTRACTORS, {"open_clip", "pixels"}),
    "group": (GROUP_FACTORS, {"translate", "hflip"}),
    "probe": (PROBES, {"linear", "mlp", "knn", "attentive"}),
    "probe family": (PROBE_FAMILIES, {"linear-pca"}),
    "baseline": (BASELINES, {"cnn", "orbit-cnn", "pixels", "random", "zero-shot"}),
    "caption policy": (CAPTION_POLICIES, {"salient", "descriptive", "mixed", "attribute-dropout"}),
    "counterfactual attribute": (COUNTERFACTUALS, {"traffic-light", "pedestrian", "car-colour", "time-of-day"}),
    "built-in weights": (BUILTIN_WEIGHTS, {"mini-clip/dashcam-salient", "mini-clip/dashcam-descriptive"}),
    "experiment kind": (EXPERIMENT_VIEWS, {"curation-experiment"}),
}
# Arguments for the families registered under a bare name.
POLICY_ARGUMENT = {"mixed": "0.5", "attribute-dropout": "light_state"}
GROUP_ARGUMENT = {"translate": "4"}
PROBE_ARGUMENT = {"linear-pca": "3"}


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_every_registry_holds_what_the_catalog_registers(kind):
    registry, names = EXPECTED[kind]
    assert registry.kind == kind
    assert names <= set(registry.names()), f"missing from the {kind} registry"
    with pytest.raises(UsageError, match=rf"Unknown {kind} 'no-such-thing'\. Available: "):
        registry.get("no-such-thing")


def test_a_registry_refuses_a_second_entry_of_the_same_name():
    registry: Registry[int] = Registry("thing")
    registry.register("a", 1)
    with pytest.raises(ValueError, match="thing 'a' is already registered"):
        registry.register("a", 2)
    assert registry.names("*a*") == ["a"]


@pytest.mark.parametrize("name", sorted(TASKS.names()))
def test_every_task_names_its_classes_and_prompts_each_one(name):
    task = get_task(name)
    assert task.name == name and task.description and len(task.classes) >= 2
    assert len(set(task.classes)) == len(task.classes)
    assert task.prompts is not None and all(task.prompts.get(c) for c in task.classes)
    assert task.source.name and isinstance(task.source.image_column, str)


@pytest.mark.parametrize("name", ["traffic-light", "pedestrian", "car-colour"])
def test_world_tasks_take_options_in_brackets(name):
    changed = get_task(f"{name}[light_size=0.03:0.06,seed=1]")
    assert changed.name == f"{name}[seed=1,light_size=0.03:0.06]"
    assert changed.source.config.seed == 1 and changed.source.config.knobs.light_size == (0.03, 0.06)
    assert get_task(changed.name) == changed  # the name a result table shows can be typed back
    with pytest.raises(UsageError, match=rf"Unknown option 'colour' of task '{name}'. Available: seed, image_size"):
        get_task(f"{name}[colour=red]")
    with pytest.raises(UsageError, match="Task 'traffic-light-crops' takes no options in brackets"):
        get_task("traffic-light-crops[seed=1]")


def _write_dataset(scheme: str, root):
    """A 3-class dataset of 12 images per class in the scheme's own format; the spec that names it."""
    colours = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}
    files = []
    for name, rgb in colours.items():
        for i in range(12):
            path = root / "images" / name / f"{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (16, 16), tuple(min(255, c + i) for c in rgb)).save(path)
            files.append((path, name))
    if scheme == "imagefolder":
        return f"imagefolder:{root / 'images'}"
    if scheme == "csv":
        manifest = root / "labels.csv"
        manifest.write_text("path,label\n" + "".join(f"{p.relative_to(root)},{label}\n" for p, label in files))
        return f"csv:{manifest}"
    if scheme == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.table(
            {
                "image": [{"bytes": p.read_bytes(), "path": None} for p, _ in files],
                "label": [label for _, label in files],
            }
        )
        pq.write_table(table, root / "data.parquet")
        return f"parquet:{root / 'data.parquet'}"
    if scheme == "hf":
        import datasets

        data = datasets.Dataset.from_dict({"image": [str(p) for p, _ in files], "label": [label for _, label in files]})
        data.cast_column("image", datasets.Image()).save_to_disk(str(root / "saved"))
        return f"hf:{root / 'saved'}"
    raise AssertionError(f"no test dataset for scheme '{scheme}': add one here")


@pytest.mark.parametrize("scheme", list_schemes())
def test_every_scheme_reads_a_dataset_into_three_splits_by_label(scheme, tmp_path):
    reader = SCHEMES.get(scheme)
    assert isinstance(reader, type) and issubclass(reader, DataSource) and reader.scheme == scheme
    spec = _write_dataset(scheme, tmp_path)
    source = parse_dataset(spec, label="label")
    assert type(source) is reader and source.name == spec
    assert source.location().startswith(f"{scheme}:") and source.skipped() == {"count": 0, "files": []}
    assert source.ready() and source.strictly().fingerprint() == source.fingerprint()
    data = source.load()
    assert set(data) == {"train", "validation", "test"}
    assert sum(len(data[s]) for s in data) == 36
    assert source.class_names() == ("blue", "green", "red")
    assert source.fingerprint() == parse_dataset(_write_dataset(scheme, tmp_path), label="label").fingerprint()


def test_every_tasks_source_is_a_declared_data_source():
    """The built-in tasks' sources (the dashcam world, traffic-light-crops) subclass the base the schemes do."""
    for name in TASKS.names():
        source = get_task(name).source
        assert isinstance(source, DataSource), name
        assert isinstance(source.name, str) and isinstance(source.image_column, str)


@pytest.mark.parametrize("name", sorted(EXTRACTORS.names()))
def test_every_extractor_gives_finite_float32_features_for_every_row(name, tiny_model, tiny_world):
    config = ExtractorConfig(model=tiny_model, pretrained="random", extractor=name, batch_size=32)
    features = extract_features(tiny_world, config)
    for split, array in features.arrays.items():
        assert array.dtype == np.float32 and array.ndim == 2 and len(array) == len(tiny_world.load()[split])
        assert np.isfinite(array).all()
    assert features.meta["representation"] and json.dumps(features.meta["identity"])


@pytest.mark.parametrize("name", sorted(GROUP_FACTORS.names()))
def test_every_group_makes_orbit_averages_exactly_invariant(name):
    spec = f"{name}:{GROUP_ARGUMENT[name]}" if name in GROUP_ARGUMENT else name
    group = get_group(spec)
    images = torch.rand(2, 3, 8, 8)
    forward = lambda x: x.flatten(1)[:, :7] * 2 + x.mean(dim=(1, 2, 3))[:, None]  # noqa: E731
    averaged = orbit_average(forward, images, group)
    for element in group.elements:
        torch.testing.assert_close(orbit_average(forward, element(images), group), averaged, rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    "name", [*PROBES.names(), *(f"{family}:{PROBE_ARGUMENT[family]}" for family in PROBE_FAMILIES.names())]
)
def test_every_probe_learns_a_separable_task_and_reports_its_choice(name):
    """Every probe, and every probe family with an argument (its name and method hold the argument)."""
    rng = np.random.default_rng(0)
    y = np.arange(90) % 3
    x = rng.normal(size=(90, 5)) + 4 * np.eye(3, 5)[y]
    probe = get_probe(name)
    assert probe.name == name and name.partition(":")[2] in probe.method
    if probe.layer is not None:  # a probe of every token reads (n, positions, width): the signal at every position
        assert probe.layer in LAYERS
        x = np.repeat(x[:, None, :], 4, axis=1)
    fit = probe.fit(x[:60], y[:60], x[60:], y[60:], probe.grid, seed=0)
    # The grid swept holds the probe's own (a probe may extend it beyond an edge it chose), ascending.
    assert fit.parameter == probe.parameter and set(probe.grid) <= set(fit.grid) and fit.grid == sorted(fit.grid)
    assert fit.chosen in fit.grid and fit.at_grid_edge == (fit.chosen in (fit.grid[0], fit.grid[-1]))
    values = [point[probe.parameter] for point in fit.curve]
    assert set(values) <= set(fit.grid) and len(set(values)) == len(values)
    assert (fit.model.predict(x[60:]) == y[60:]).mean() > 0.9


TINY_BUDGET = {"epochs": 2, "batch_size": 16, "image_size": 16, "learning_rate": 1e-2, "max_seconds": None}


@pytest.mark.parametrize("name", sorted(BASELINES.names()))
def test_every_baseline_declares_what_it_is_and_writes_a_result_record(name, tiny_model, tiny_tasks, tmp_path):
    """Each registered baseline declares its kind of row, whether it uses the model, whether it has layers and how
    its seed is drawn; the runner builds its jobs from that alone, and each writes a typed record of that kind."""
    baseline = BASELINES.get(name)
    assert baseline.name == name and baseline.description
    assert isinstance(baseline, (ProbeControl, LabelBaseline, PromptBaseline))
    assert isinstance(baseline.kind, RowKind) and isinstance(baseline.seeds, SeedPolicy)
    assert isinstance(baseline.uses_model, bool) and isinstance(baseline.layered, bool)
    config = ExtractorConfig(model=tiny_model, pretrained="random")
    option = "hflip" if name == "orbit-cnn" else None
    budget = TINY_BUDGET if isinstance(baseline, LabelBaseline) else None
    baseline.check_option(option, budget)
    task = dataclasses.replace(
        tiny_tasks["tiny-light"], prompts={c: (f"a {c} traffic light",) for c in ("red", "amber", "green")}
    )
    spec = f"{name}:{option}" if option else name
    plan = RunPlan.build(task, config, baselines=spec, budget=budget, results_dir=tmp_path)
    jobs = [job for job in plan.jobs() if job.origin.baseline == name]
    assert jobs and {job.kind for job in jobs} == {baseline.kind}
    ((job, (record, path)),) = run_jobs(jobs, tmp_path)
    assert isinstance(record, Result) and record.kind is baseline.kind
    assert path == record.path(tmp_path) and path.is_file()
    assert Result.from_json(json.loads(path.read_text()), str(path)) == record
    assert record.task == "tiny-light" and 0 <= record.metrics.balanced_accuracy <= 1
    assert record.selection is not None and record.metrics.n == len(task.labels(task.source.load()["test"]))


@pytest.mark.parametrize("family", sorted(CAPTION_POLICIES.names()))
def test_every_caption_policy_captions_every_scene(family):
    policy = get_caption_policy(f"{family}:{POLICY_ARGUMENT[family]}" if family in POLICY_ARGUMENT else family)
    for index in range(20):
        scene = sample_scene(scene_rng(0, 0, index))
        caption = policy(scene, np.random.default_rng(index))
        assert isinstance(caption, str) and caption.strip()


@pytest.mark.parametrize("attribute", sorted(COUNTERFACTUALS.names()))
def test_every_counterfactual_changes_its_attribute_and_nothing_else(attribute):
    counterfactual = COUNTERFACTUALS.get(attribute)
    scenes = [sample_scene(scene_rng(0, 0, index)) for index in range(40)]
    flippable = [scene for scene in scenes if counterfactual.applies(scene)]
    assert flippable
    for index, scene in enumerate(flippable):
        flipped = counterfactual.flip(scene, np.random.default_rng(index))
        changed = {f.name for f in dataclasses.fields(scene) if getattr(scene, f.name) != getattr(flipped, f.name)}
        assert changed == {counterfactual.attribute}


@pytest.mark.parametrize("name", sorted(BUILTIN_WEIGHTS.names()))
def test_every_builtin_weight_names_its_model(name):
    weights = BUILTIN_WEIGHTS.get(name)
    assert f"{weights.model}/{weights.tag}" == name and weights.description and callable(weights.materialise)


def test_every_experiment_view_is_rendered_in_every_format_below():
    """A view registered without a test below that renders a record of its kind in every format fails here."""
    assert set(EXPERIMENT_VIEWS.names()) == {"curation-experiment", "blind-spots"}


def test_the_curation_view_renders_a_record_in_every_format():
    kind = "curation-experiment"
    view = EXPERIMENT_VIEWS.get(kind)
    interval = [0.4, 0.6]
    document = {
        "kind": kind,
        "name": "tiny",
        "design": {
            "policies": ["salient", "descriptive"],
            "tasks": ["traffic-light"],
            "baselines": "none",
            "budget": {},
            "attributes": ["pedestrian"],
            "pairs": 4,
            "zero_shot": False,
            "models": [],
            "recipe": {"steps": 2},
            "world": "w",
            "seed": 0,
            "seeds": 2,
            "baseline_seeds": 2,
            "layers": ["embedding", "tokens"],
            "probes": ["linear"],
            "mlp_tasks": [],
            "precision": "fp32",
        },
        "tasks": ["traffic-light"],
        "attributes": ["pedestrian"],
        "seeds": [0, 1],
        "layers": ["embedding", "tokens"],
        "rows": [
            {
                "representation": f"mini-clip/dashcam-{p}",
                "method": "linear-probe",
                "kind": "probe",
                "policy": p,
                "layer": layer,
                "descriptive_fraction": fraction,
                "tasks": {
                    "traffic-light": {
                        "balanced_accuracy": 0.5,
                        "sd": 0.02,
                        "interval": interval,
                        "per_seed": [0.48, 0.52],
                        "seeds": [0, 1],
                        "chance": 1 / 3,
                        "n_test": 9,
                        "results": ["a.json", "b.json"],
                        "representations": [f"mini-clip/dashcam-{p}"] * 2,
                    }
                },
                "sensitivity": {
                    "pedestrian": {
                        "score": 0.3,
                        "sd": 0.01,
                        "interval": None,
                        "per_seed": [0.29, 0.31],
                        "ratio": [0.5, 0.5],
                        "numerator": [0.1, 0.1],
                        "per_seed_interval": [[0.2, 0.4], None],
                    }
                }
                if layer == "embedding"
                else None,
            }
            for p, fraction in (("salient", 0.0), ("descriptive", 1.0))
            for layer in ("embedding", "tokens")
        ],
        "preregistration": 1,
        "primary": [
            {
                "family": "primary",
                "name": "light: descriptive - salient",
                "claim": None,
                "measure": "balanced accuracy",
                "task": "traffic-light",
                "row": "mini-clip/dashcam-descriptive",
                "layer": "embedding",
                "against": "mini-clip/dashcam-salient",
                "against_layer": "embedding",
                "paired": True,
                "estimate": 0.1,
                "se": 0.01,
                "df": 1.0,
                "interval": [0.05, 0.15],
                "image_se": 0.005,
                "p": 0.04,
                "adjusted": 0.04,
                "equivalence": None,
                "margin": 0.03,
                "verdict": "resolved",
                "per_seed": [0.59, 0.61],
                "per_seed_against": [0.49, 0.51],
            }
        ],
        "exploratory": [
            {
                "family": "exploratory",
                "name": "light: descriptive - salient",
                "claim": None,
                "measure": "balanced accuracy",
                "task": "traffic-light",
                "row": "mini-clip/dashcam-descriptive",
                "layer": "embedding",
                "against": "mini-clip/dashcam-salient",
                "against_layer": "embedding",
                "paired": True,
                "estimate": 0.1,
                "se": 0.01,
                "df": 1.0,
                "interval": [0.05, 0.15],
                "image_se": 0.005,
                "p": 0.04,
                "adjusted": 0.04,
                "equivalence": None,
                "margin": 0.03,
                "verdict": "resolved",
                "per_seed": [0.59, 0.61],
                "per_seed_against": [0.49, 0.51],
            }
        ],
        "provenance": {
            "versions": {},
            "machine": {"cpu": "test", "architecture": "x86_64", "cores": 2, "native_bf16": False, "os": "Linux"},
        },
        "run": {"finished_at": "2026-01-01T00:00:00+00:00", "seconds": 1.0},
    }
    record = view.from_json(document, "a test document")
    assert view.tasks(record) == ["traffic-light"]
    assert view.title(record) and "mini-clip/dashcam-salient" in view.markdown(record)
    plots = view.plots(record)
    assert plots and all(png.startswith(b"\x89PNG") for png in plots.values())
    html = view.html("experiment-0", record, plots)
    assert 'id="experiment-0"' in html and "mini-clip/dashcam-descriptive" in html
    tables = view.tables(record)
    # The primary contrasts, the exploratory leads (q < 0.05), then per layer its balanced accuracy (and at the
    # embedding its sensitivity).
    assert [table.row_count for table in tables] == [1, 1, 2, 2, 2]
    # The opening summary: a line per primary contrast, then the exploratory count.
    summary = view.summary(record)
    assert len(summary) == 2 and "resolved" in summary[0] and summary[1].startswith("Exploratory: 1 of 1")
    assert "0.500 ± 0.020 [0.400, 0.600]" in view.markdown(record)
    assert "| light: descriptive - salient | +0.100 | [+0.050, +0.150] | 2 paired | 0.040 | - | resolved |" in (
        view.markdown(record)
    )


def test_the_blind_spots_view_renders_a_record_in_every_format():
    view = EXPERIMENT_VIEWS.get("blind-spots")
    measure = {"value": 0.5, "interval": [0.4, 0.6], "per_seed": [0.5]}
    cell = {
        "representation": "ViT-B-32@openai",
        "policy": None,
        "kind": "probe",
        "probe": measure,
        "sensitivity": {"value": 0.2, "interval": [0.1, 0.3], "per_seed": [0.2]},
        "blind_pair_rate": {"value": 0.7, "interval": [0.6, 0.8], "per_seed": [0.7]},
        "unrelated_blind_rate": 0.1,
    }
    document = {
        "kind": "blind-spots",
        "name": "blind-spots__vit",
        "design": {
            "models": ["ViT-B-32@openai"],
            "tasks": ["car-facing", "speed-limit"],
            "seeds": [0],
            "baselines": "cnn",
            "pairs": 4,
            "blind_threshold": 0.95,
            "world": "w",
            "precision": "fp32",
        },
        "rows": [
            {
                "pattern": pattern,
                "task": task,
                "chance": chance,
                "trained": {"value": 0.9, "interval": [0.85, 0.95], "per_seed": [0.9]},
                "trained_name": "cnn/from-scratch",
                "cells": [cell],
            }
            for pattern, task, chance in (
                ("orientation and direction", "car-facing", 0.5),
                ("text", "speed-limit", 1 / 3),
            )
        ],
        "provenance": {
            "versions": {},
            "machine": {"cpu": "test", "architecture": "x86_64", "cores": 2, "native_bf16": False, "os": "Linux"},
        },
        "run": {"finished_at": "2026-01-01T00:00:00+00:00", "seconds": 1.0},
    }
    record = view.from_json(document, "a test document")
    assert view.tasks(record) == ["car-facing", "speed-limit"]
    assert view.title(record) == "Blind spots: ViT-B-32@openai (seed 0, fp32)"
    markdown = view.markdown(record)
    assert (
        "| orientation and direction | car-facing | ViT-B-32@openai | 0.500 [0.400, 0.600] | 0.900 [0.850, 0.950] | "
        "0.500 | 0.200 [0.100, 0.300] | 0.70 [0.60, 0.80] (unrelated 0.10) |"
    ) in markdown
    assert view.plots(record) == {}
    html = view.html("experiment-0", record, {})
    assert 'id="experiment-0"' in html and "speed-limit" in html
    assert [table.row_count for table in view.tables(record, width=200)] == [2]
    # The car's facing ([0.4, 0.6] with chance 0.5) reaches chance; the speed limit (chance 1/3) does not.
    assert view.summary(record) == [
        "ViT-B-32@openai: probe interval reaches chance on 1 of 2: car-facing (orientation and direction; CNN 0.90)."
    ]
