"""Shared fixtures: an isolated cache home, a tiny open_clip config, and tiny generated worlds."""

from __future__ import annotations

import json

import open_clip
import pytest

import clipprobe.catalog  # noqa: F401  (every built-in registered, as the CLI has them)
from clipprobe.core.kinds import RowKind
from clipprobe.dashcam.tasks import DashcamWorld
from clipprobe.dashcam.world import WorldConfig
from clipprobe.data.task import TASKS, Task, register_task
from clipprobe.results import DataInfo, Machine, Provenance, Result, RunInfo, SkippedFiles, Weights

TINY_CONFIG = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 8},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}
TINY_SIZES = {"pretrain": 32, "train": 60, "validation": 30, "test": 30}
TEXT_CFG = TINY_CONFIG["text_cfg"]
# ModifiedResNet: 64 px -> a 2 x 2 final feature map of 32 * width = 256 channels; 256 / head_width = 4 heads.
TINY_RESNET = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 64, "layers": [1, 1, 1, 1], "width": 8, "head_width": 64},
    "text_cfg": TEXT_CFG,
}
# A timm tower (timm's own test model, random weights): only `embedding` exists there.
TINY_TIMM = {
    "embed_dim": 16,
    "vision_cfg": {
        "image_size": 32,
        "timm_model_name": "test_resnet",
        "timm_model_pretrained": False,
        "timm_pool": "avg",
        "timm_proj": "linear",
    },
    "text_cfg": TEXT_CFG,
}


def stored_result(task, representation, method, seed, classes, metrics, selection, kind=RowKind.PROBE) -> Result:
    """A result record as the report reads it, around given metrics (e.g. scored on simulated predictions)."""
    return Result(
        task=task,
        representation=representation,
        method=method,
        seed=seed,
        key="test",
        kind=kind,
        model=None,
        pretrained=None,
        weights=Weights(kind="none"),
        classes=list(classes),
        data=DataInfo(
            source=task,
            location=task,
            fingerprint=f"test-{task}",
            label="label",
            where=[],
            sizes={"test": metrics.n},
            skipped=SkippedFiles(count=0),
        ),
        provenance=Provenance(
            versions={}, machine=Machine(cpu="test", architecture="x86_64", cores=2, native_bf16=False, os="Linux")
        ),
        run=RunInfo(finished_at="2026-01-01T00:00:00+00:00", seconds=1.0),
        metrics=metrics,
        selection=selection,
    )


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    """Every test gets its own cache home, results and reports folders (nothing leaks between tests)."""
    root = tmp_path / "home"
    monkeypatch.setenv("CLIPPROBE_HOME", str(root))
    monkeypatch.chdir(tmp_path)
    return root


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """A real open_clip architecture small enough to run in milliseconds, registered as 'tiny-clip'."""
    folder = tmp_path_factory.mktemp("model_configs")
    (folder / "tiny-clip.json").write_text(json.dumps(TINY_CONFIG))
    open_clip.add_model_config(folder)
    return "tiny-clip"


@pytest.fixture
def tiny_world():
    return DashcamWorld(WorldConfig(image_size=64, sizes=dict(TINY_SIZES)))


@pytest.fixture
def tiny_tasks(tiny_world):
    """'tiny-light' and 'tiny-pedestrian' over a 152-image world at 64 px."""
    tasks = [
        Task("tiny-light", "light colour, tiny world", tiny_world, "light_state", ("red", "amber", "green")),
        Task("tiny-pedestrian", "pedestrian, tiny world", tiny_world, "pedestrian", ("absent", "present")),
    ]
    for task in tasks:
        register_task(task)
    yield {task.name: task for task in tasks}
    for task in tasks:
        TASKS.unregister(task.name)


@pytest.fixture(scope="session")
def tiny_towers(tiny_model, tmp_path_factory):
    """tiny-clip (a ViT) beside a tiny ResNet tower (conv layers) and a tiny timm tower, by kind."""
    folder = tmp_path_factory.mktemp("layer_model_configs")
    (folder / "tiny-resnet.json").write_text(json.dumps(TINY_RESNET))
    (folder / "tiny-timm.json").write_text(json.dumps(TINY_TIMM))
    open_clip.add_model_config(folder)
    return {"vit": tiny_model, "resnet": "tiny-resnet", "timm": "tiny-timm"}


def pytest_collection_modifyitems(config, items):
    """Tests marked `cuda` run only where torch sees a CUDA device (benchmarks/gpu.sh runs them there)."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (torch.cuda.is_available() is False)")
    for item in items:
        if item.get_closest_marker("cuda") is not None:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def cpu_without_native_bf16():
    """`--precision auto`, the command line's default, picks bf16 on a CPU with native bf16: every test sees a CPU
    without it, so that results and row names are the same on every machine. Tests of `auto` patch it back.
    Its own MonkeyPatch: a test's `monkeypatch.undo()` must not undo it."""
    import clipprobe.core.machine as machine

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(machine, "native_bf16", lambda: False)
        yield
