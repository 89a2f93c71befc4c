"""Networks trained from scratch on a task's labels (the CNN, the orbit CNN): train on the train split, choose the
epoch on validation, predict the test images. A computation: the jobs layer keys, scores and records it."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import torch

from ..core.defaults import GEOMETRY
from ..core.errors import UsageError
from ..data.task import PROBE_SPLITS, Task
from ..data.taskfile import resolve_task
from ..features.geometry import check_resize
from ..features.orbits import Group, get_group
from ..probes.registry import SELECTION_METRIC
from ..results import Incomplete, Selection, Training
from .images import split_images
from .nets import ARCHITECTURE, CNN, OrbitCNN, Standardise, parameter_count
from .registry import BASELINES, LabelBaseline, Trained, get_baseline
from .training import Budget, channel_stats, fit, predict, resolve_augment

DEFAULT_GROUP = "translate:4+hflip"
# Bump when training changes what a baseline's result would be, so that stored results are not reused.
# 5: images of other depths scaled by their mode's range (clipprobe.data.depth), no longer clipped.
# 6: the default geometry is crop (clipprobe.core.defaults.GEOMETRY), as the models', no longer squash.
BASELINE_VERSION = 6


# The budget fields that change what a trained baseline learns, named in its row when they differ from its own
# default (augment has its tag above; max_seconds marks the result incomplete instead; eval_batch_images changes
# only the speed).
NAMED_BUDGET_FIELDS = ("epochs", "batch_size", "image_size", "learning_rate", "weight_decay", "orbit_train_elements")


def _tag_value(value: Any) -> str:
    return "all" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


@dataclass(frozen=True, eq=False)
class ScratchBaseline(LabelBaseline):
    """A model trained from scratch on the task's own labels: how it is built and named in the results."""

    name: str
    method: str
    description: str
    build: Callable[[int, Standardise, Group | None, Budget], CNN]
    default_group: str | None = None  # orbit baselines: the group averaged over (the option)
    budget: Budget = Budget()  # the budget its overrides apply to
    version: int = BASELINE_VERSION

    def resolve_budget(self, budget: Mapping[str, Any] | Budget | None) -> Budget:
        """Its own budget with the run's overrides applied."""
        if isinstance(budget, Budget):
            return budget
        return dataclasses.replace(self.budget, **budget) if budget else self.budget

    def group(self, option: str | None) -> str | None:
        return option or self.default_group

    def row(self, option: str | None, budget: Mapping[str, Any] | Budget | None, resize: str | None = None) -> str:
        chosen = self.resolve_budget(budget)
        group = self.group(option)
        row = f"{self.name}/{group}" if self.default_group is not None else f"{self.name}/from-scratch"
        # A chosen augmentation is a different reference (a flip can destroy a left/right label): its own row;
        # so is a chosen image geometry (--resize).
        tags = [f"augment={chosen.augment}"] if chosen.augment != "auto" else []
        # So is any other setting that changes what it learns, when it is not the baseline's own default: two runs
        # of one baseline with different budgets keep both results, named apart (epochs=10 beside the default).
        tags += [
            f"{name}={_tag_value(getattr(chosen, name))}"
            for name in NAMED_BUDGET_FIELDS
            if getattr(chosen, name) != getattr(self.budget, name)
            and (name != "orbit_train_elements" or self.default_group is not None)
        ]
        tags += [f"resize={resize}"] if resize else []
        return f"{row}[{','.join(tags)}]" if tags else row

    def settings(
        self, option: str | None, budget: Mapping[str, Any] | Budget | None, resize: str | None
    ) -> dict[str, Any]:
        return {
            "torch": _version("torch"),
            "group": self.group(option),
            "budget": asdict(self.resolve_budget(budget)),
            "resize": resize or GEOMETRY,
        }

    def check_option(self, option: str | None, budget: Mapping[str, Any] | Budget | None = None) -> None:
        """The option is the orbit group: only orbit baselines take one, and it must fit the budget's image size."""
        if option is not None and self.default_group is None:
            orbits = [n for n, b in BASELINES.items() if isinstance(b, ScratchBaseline) and b.default_group]
            raise UsageError(f"Baseline '{self.name}' takes no group; orbit baselines do: {', '.join(orbits)}")
        spec = self.group(option)
        if spec is not None:
            size = self.resolve_budget(budget).image_size
            get_group(spec).orbit(torch.zeros(1, 3, size, size))  # a bad size fails now, not after decoding

    def train(
        self,
        task: Task,
        seed: int,
        option: str | None = None,
        budget: Mapping[str, Any] | Budget | None = None,
        resize: str | None = None,
    ) -> Trained:
        return train_baseline(
            self.name, task, seed=seed, budget=self.resolve_budget(budget), group=option, resize=resize
        )


def _cnn(num_classes: int, standardise: Standardise, group: Group | None, budget: Budget) -> CNN:
    return CNN(num_classes, standardise)


def _orbit_cnn(num_classes: int, standardise: Standardise, group: Group | None, budget: Budget) -> CNN:
    assert group is not None, "orbit-cnn always has a group (its default_group when none is given)"
    return OrbitCNN(num_classes, group, standardise, train_elements=budget.orbit_train_elements)


BASELINES.register(
    "cnn",
    ScratchBaseline(
        "cnn",
        "supervised-cnn",
        f"A {ARCHITECTURE} ResNet trained from scratch on the task's train labels (random translations; flips unless they swap classes)",
        _cnn,
    ),
)
# Both trained baselines train for 24 epochs by default (Budget), chosen on validation alone: on traffic-light
# (the default world, seed 0), the plain CNN's validation balanced accuracy is 0.868 at the end of a 12-epoch
# schedule and 0.996 at epoch 20 of a 24-epoch one, flat from there; the orbit model's 0.475 at epoch 12 and
# 0.713 at epoch 19 of 24. On 2 CPU cores that costs about 15 s (cnn) and 95 s (orbit-cnn, whose validation
# images are each evaluated over all 32 group elements) per task.
BASELINES.register(
    "orbit-cnn",
    ScratchBaseline(
        "orbit-cnn",
        "orbit-cnn",
        "The same CNN with its pooled features averaged over a group's orbit: exactly invariant to the group",
        _orbit_cnn,
        default_group=DEFAULT_GROUP,
        budget=Budget(),
    ),
)


def get_trained_baseline(name: str) -> ScratchBaseline:
    """A baseline that trains a model (not a probe control), or an error naming those that do."""
    baseline = get_baseline(name)
    if not isinstance(baseline, ScratchBaseline):
        trained = [n for n, b in BASELINES.items() if isinstance(b, ScratchBaseline)]
        raise UsageError(
            f"Baseline '{name}' is a linear probe, not a trained model; trained baselines: {', '.join(trained)}"
        )
    return baseline


def train_baseline(
    name: str,
    task: str | Task,
    seed: int = 0,
    budget: Budget | None = None,
    group: str | None = None,
    resize: str | None = None,
) -> Trained:
    """Train baseline `name` on `task`'s train split and choose its epoch on validation (balanced accuracy);
    predict the test images. Test labels are never read here."""
    baseline = get_trained_baseline(name)
    task = resolve_task(task)
    budget = budget or baseline.budget
    check_resize(resize)
    baseline.check_option(group, budget)
    group_spec = group or baseline.default_group
    group_obj = get_group(group_spec) if group_spec is not None else None

    started = time.perf_counter()
    data = task.source.load()
    rows = {split: task.rows(data[split]) for split in PROBE_SPLITS}
    images = {
        split: split_images(task.source, data[split], split, budget.image_size, resize or GEOMETRY)[
            torch.as_tensor(r, dtype=torch.long)
        ]
        for split, r in rows.items()
    }
    labels = {split: task.labels(data[split]) for split in ("train", "validation")}
    if len(labels["train"]) < 2 or len(labels["validation"]) < 1:
        raise UsageError(
            f"Task '{task.name}' has {len(labels['train'])} train and {len(labels['validation'])} "
            "validation rows; a trained baseline needs at least 2 and 1"
        )
    decoded = time.perf_counter()

    row = baseline.row(group_spec, budget, resize)
    augment = resolve_augment(budget.augment, task.classes)
    with torch.random.fork_rng(devices=[]):  # the caller's global RNG is left as it was
        torch.manual_seed(seed)
        model = baseline.build(len(task.classes), Standardise(*channel_stats(images["train"])), group_obj, budget)
        trained = fit(
            model,
            images["train"],
            labels["train"],
            images["validation"],
            labels["validation"],
            budget,
            seed,
            f"Training {row} on {task.name}",
            augment=augment,
        )
        test_predictions = predict(trained.model, images["test"], budget).argmax(dim=1).numpy()
    geometry = resize or GEOMETRY
    return Trained(
        model=ARCHITECTURE,
        test_predictions=test_predictions,
        selection=Selection(
            metric=SELECTION_METRIC,
            split="validation",
            parameter="epoch",
            chosen=trained.chosen_epoch,
            # The last epoch of the budget: more epochs might have done better.
            at_grid_edge=trained.chosen_epoch == budget.epochs,
            curve=trained.curve,
        ),
        training=Training(
            baseline=baseline.name,
            architecture=ARCHITECTURE,
            parameters=parameter_count(trained.model),
            group=group_obj.spec if group_obj is not None else None,
            group_size=len(group_obj) if group_obj is not None else None,
            budget=asdict(budget),
            augment=augment,
            optimiser="AdamW, one-cycle learning rate",
            loss="class-weighted cross-entropy (weights from train label counts)",
            geometry=geometry,
            input=f"{ {'squash': 'squashed', 'crop': 'centre-cropped', 'pad': 'padded'}[geometry] } to "
            f"{budget.image_size}x{budget.image_size} px, standardised with the train split's channel statistics",
            epochs_run=trained.epochs_run,
        ),
        sizes={split: int(len(r)) for split, r in rows.items()},
        decode_seconds=round(decoded - started, 3),
        seconds_per_epoch=[round(s, 3) for s in trained.seconds_per_epoch],
        threads=torch.get_num_threads(),
        incomplete=None
        if trained.stopped_by is None
        else Incomplete(reached=trained.epochs_run, planned=budget.epochs, unit="epochs", reason=trained.stopped_by),
        network=trained.model,
    )


def _version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"
