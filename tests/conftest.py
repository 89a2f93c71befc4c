"""Shared fixtures: an isolated cache home, a tiny open_clip config, and tiny generated worlds."""

from __future__ import annotations

import json

import open_clip
import pytest

from clipprobe.tasks import TASKS, DashcamWorld, Task, register_task
from clipprobe.world import WorldConfig

TINY_CONFIG = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 8},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}
TINY_SIZES = {"pretrain": 32, "train": 60, "validation": 30, "test": 30}


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
