"""The registry of trained baselines and `run_baseline`: train on the task's labels, select on validation,
score once on test, write a result file with the same schema as a linear probe's."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..errors import UsageError
from ..invariance import Group, get_group
from ..probe import SELECTION_METRIC, score_predictions
from ..registry import Registry
from ..results import DEFAULT_RESULTS_DIR, package_versions, write_result
from ..sources import load_task_file, skipped_files
from ..tasks import PROBE_SPLITS, Task, get_task
from .images import split_images
from .nets import ARCHITECTURE, CNN, OrbitCNN, Standardise, parameter_count
from .training import Budget, Fit, channel_stats, fit, predict, resolve_augment

DEFAULT_GROUP = "translate:4+hflip"


@dataclass(frozen=True)
class Baseline:
    """A model trained from scratch on the task's own labels: how it is built and named in the results."""

    name: str
    method: str
    description: str
    build: Callable[[int, Standardise, Group | None, Budget], torch.nn.Module]
    default_group: str | None = None  # orbit baselines: the group averaged over (run_baseline's `group`)
    budget: Budget = Budget()  # what run_baseline uses when it is given no budget

    def row(self, group: str | None, budget: Budget) -> str:
        row = f"{self.name}/{group}" if self.default_group is not None else f"{self.name}/from-scratch"
        # A chosen augmentation is a different reference (a flip can destroy a left/right label): its own row.
        return row if budget.augment == "auto" else f"{row}[augment={budget.augment}]"


BASELINES: Registry[Baseline] = Registry("baseline")


def _cnn(num_classes: int, standardise: Standardise, group: Group | None, budget: Budget) -> torch.nn.Module:
    return CNN(num_classes, standardise)


def _orbit_cnn(num_classes: int, standardise: Standardise, group: Group | None, budget: Budget) -> torch.nn.Module:
    return OrbitCNN(num_classes, group, standardise, train_elements=budget.orbit_train_elements)


BASELINES.register("cnn", Baseline(
    "cnn", "supervised-cnn",
    f"A {ARCHITECTURE} ResNet trained from scratch on the task's train labels (random translations; flips unless they swap classes)",
    _cnn,
))
# The orbit model learns more slowly: on traffic-light at 12 epochs it tells red from green but not yet amber
# (test balanced accuracy 0.65); at 24 it reaches 0.97. Each epoch also costs about 3.5x the plain CNN's
# (every validation image is evaluated over all 32 group elements), so its default is about 2.5 minutes.
BASELINES.register("orbit-cnn", Baseline(
    "orbit-cnn", "orbit-cnn",
    "The same CNN with its pooled features averaged over a group's orbit: exactly invariant to the group",
    _orbit_cnn, default_group=DEFAULT_GROUP, budget=Budget(epochs=24),
))


def list_baselines() -> list[str]:
    return BASELINES.names()


def get_baseline(name: str) -> Baseline:
    return BASELINES.get(name)


def _resolve_task(task: str | Task) -> Task:
    if isinstance(task, str):
        return load_task_file(task) if task.endswith(".toml") else get_task(task)
    return task


@dataclass
class TrainedBaseline:
    """A baseline trained on a task, its epoch chosen on validation, with its test predictions made.

    Nothing in it has seen a test label: `run_baseline` reads those afterwards, to score."""

    baseline: Baseline
    task: Task
    row: str
    group: Group | None
    budget: Budget
    seed: int
    augment: str
    fit: Fit
    test_predictions: np.ndarray
    sizes: dict[str, int]
    decode_seconds: float

    @property
    def model(self) -> torch.nn.Module:
        return self.fit.model


def train_baseline(
    name: str,
    task: str | Task,
    seed: int = 0,
    budget: Budget | None = None,
    group: str | None = None,
) -> TrainedBaseline:
    """Train baseline `name` on `task`'s train split and choose its epoch on validation (balanced accuracy);
    predict the test images. Test labels are never read here."""
    baseline = get_baseline(name)
    task = _resolve_task(task)
    budget = budget or baseline.budget
    if group is not None and baseline.default_group is None:
        raise UsageError(f"Baseline '{name}' takes no group; orbit baselines do: "
                         f"{', '.join(n for n, b in BASELINES.items() if b.default_group is not None)}")
    group_spec = group or baseline.default_group
    group_obj = get_group(group_spec) if group_spec is not None else None
    if group_obj is not None:  # a bad size for the group fails now, not after decoding and training
        group_obj.orbit(torch.zeros(1, 3, budget.image_size, budget.image_size))

    started = time.perf_counter()
    data = task.source.load()
    rows = {split: task.rows(data[split]) for split in PROBE_SPLITS}
    images = {
        split: split_images(task.source, data[split], split, budget.image_size)[torch.as_tensor(r, dtype=torch.long)]
        for split, r in rows.items()
    }
    labels = {split: task.labels(data[split]) for split in ("train", "validation")}
    if len(labels["train"]) < 2 or len(labels["validation"]) < 1:
        raise UsageError(f"Task '{task.name}' has {len(labels['train'])} train and {len(labels['validation'])} "
                         "validation rows; a trained baseline needs at least 2 and 1")
    decoded = time.perf_counter()

    row = baseline.row(group_spec, budget)
    augment = resolve_augment(budget.augment, task.classes)
    with torch.random.fork_rng(devices=[]):  # the caller's global RNG is left as it was
        torch.manual_seed(seed)
        model = baseline.build(len(task.classes), Standardise(*channel_stats(images["train"])), group_obj, budget)
        trained = fit(model, images["train"], labels["train"], images["validation"], labels["validation"],
                      budget, seed, f"Training {row} on {task.name}", augment=augment)
        test_predictions = predict(trained.model, images["test"], budget).argmax(dim=1).numpy()
    return TrainedBaseline(
        baseline, task, row, group_obj, budget, seed, augment, trained, test_predictions,
        sizes={split: int(len(r)) for split, r in rows.items()}, decode_seconds=decoded - started,
    )


def run_baseline(
    name: str,
    task: str | Task,
    seed: int = 0,
    results_dir: Path = DEFAULT_RESULTS_DIR,
    budget: Budget | None = None,
    group: str | None = None,
) -> tuple[dict[str, Any], Path]:
    """Train baseline `name` on `task`'s train split, choose the epoch on validation (balanced accuracy),
    score once on test; write the result file (same schema as a linear probe's) and return (record, path).

    `group` (orbit baselines only) is a clipprobe.invariance group spec, default `translate:4+hflip`;
    `budget` defaults to the baseline's own (`get_baseline(name).budget`). Test labels are read only after the model is fixed and its test predictions are made."""
    started = time.perf_counter()
    trained = train_baseline(name, task, seed=seed, budget=budget, group=group)
    task, budget, fitted = trained.task, trained.budget, trained.fit
    # The model is fixed and its test predictions made: only now are the test labels read, once.
    test_labels = task.labels(task.source.load()["test"])
    metrics = score_predictions(test_labels, trained.test_predictions, task.classes)
    record = {
        "task": task.name,
        "method": trained.baseline.method,
        "row": trained.row,
        "model": ARCHITECTURE,
        "pretrained": None,
        "weights": {"kind": "trained-on-task"},
        "seed": seed,
        "classes": list(task.classes),
        "metrics": metrics,
        "selection": {
            "metric": SELECTION_METRIC,
            "split": "validation",
            "chosen_epoch": fitted.chosen_epoch,
            "at_grid_edge": False,
            "curve": fitted.curve,
        },
        "data": {
            "source": task.source.name,
            "fingerprint": task.source.fingerprint(),
            "label": task.label,
            "where": [list(condition) for condition in task.where],
            "sizes": trained.sizes,
            "skipped": skipped_files(task.source),
        },
        "training": {
            "baseline": trained.baseline.name,
            "architecture": ARCHITECTURE,
            "parameters": parameter_count(trained.model),
            "group": trained.group.spec if trained.group is not None else None,
            "group_size": len(trained.group) if trained.group is not None else None,
            "budget": asdict(budget),
            "augment": trained.augment,
            "optimiser": "AdamW, one-cycle learning rate",
            "loss": "class-weighted cross-entropy (weights from train label counts)",
            "input": f"squashed to {budget.image_size}x{budget.image_size} px, "
                     "standardised with the train split's channel statistics",
            "epochs_run": fitted.epochs_run,
            "stopped_by_time_limit": fitted.stopped_by_time_limit,
        },
        "versions": {**package_versions(), "torchvision": _version("torchvision")},
        "run": {
            "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "seconds": round(time.perf_counter() - started, 3),
            "decode_seconds": round(trained.decode_seconds, 3),
            "seconds_per_epoch": [round(s, 3) for s in fitted.seconds_per_epoch],
            "threads": torch.get_num_threads(),
        },
    }
    return record, write_result(record, results_dir)


def _version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"
