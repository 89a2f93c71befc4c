"""Training with the epoch chosen on validation only: the budget, augmentation, and the loop."""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from sklearn.metrics import balanced_accuracy_score
from torch import nn
from torchvision import tv_tensors
from torchvision.transforms import v2

from ..core.errors import UsageError, did_you_mean
from ..core.progress import err_console, progress_bar
from ..probes.registry import SELECTION_METRIC
from .nets import CNN, OrbitCNN

# A validation score that no later epoch can beat; training stops there with the same result.
PERFECT = 1.0
AUGMENTS = ("auto", "translate+hflip", "translate", "hflip", "none")
# Class names that a mirror image swaps: a flip is not a label-preserving augmentation for such a task.
MIRRORED_CLASSES = ("left", "right")


@dataclass(frozen=True)
class Budget:
    """What one baseline may spend: a number of epochs, never a number of seconds, so that the same inputs give
    the same result on any machine. Each result file's `run.seconds` says what it cost (docs/methodology.md
    gives the defaults' costs on two CPU cores).

    `max_seconds` (None unless the user sets one) stops training after the epoch that would pass it: the result
    then depends on the machine's speed, so it is written `incomplete` (reached and planned epochs, the reason),
    every report marks it, the CI gate refuses it, and it is never reused: a later run recomputes it.
    `augment` is random translations by up to 1/8 of the image (`translate`) and horizontal flips (`hflip`);
    `auto` is both, except for a task whose classes include "left" and "right" (a flip turns one into the
    other), which gets `translate` alone. `orbit_train_elements` is how many group elements each training step
    of an orbit model averages over (None: the whole orbit); validation and test always use the whole orbit."""

    epochs: int = 24
    batch_size: int = 32
    image_size: int = 64
    learning_rate: float = 3e-3
    weight_decay: float = 5e-4
    max_seconds: float | None = None
    augment: str = "auto"
    orbit_train_elements: int | None = 2
    eval_batch_images: int = 512  # images per forward pass when evaluating (orbit copies included)

    def __post_init__(self):
        # Each field's range, checked before anything runs (a learning rate of inf trains to chance with exit 0).
        finite = math.isfinite
        checks = {
            "epochs": (1 <= self.epochs <= 10_000, "a whole number from 1 to 10000"),
            "batch_size": (2 <= self.batch_size <= 65_536, "a whole number from 2 to 65536"),
            "image_size": (8 <= self.image_size <= 1024, "a whole number of pixels from 8 to 1024"),
            "learning_rate": (finite(self.learning_rate) and 0 < self.learning_rate <= 10, "a number in (0, 10]"),
            "weight_decay": (finite(self.weight_decay) and 0 <= self.weight_decay <= 10, "a number in [0, 10]"),
            "max_seconds": (
                self.max_seconds is None or (finite(self.max_seconds) and self.max_seconds > 0),
                "a finite number of seconds above 0, or none",
            ),
            "orbit_train_elements": (
                self.orbit_train_elements is None or self.orbit_train_elements >= 1,
                "a whole number from 1, or none",
            ),
            "eval_batch_images": (self.eval_batch_images >= 1, "a whole number from 1"),
        }
        bad = [(name, expected) for name, (ok, expected) in checks.items() if not ok]
        if bad:
            name, expected = bad[0]
            raise UsageError(f"Invalid budget: {name}={getattr(self, name)!r}; it must be {expected}")
        if self.augment not in AUGMENTS:
            raise UsageError(
                f"Unknown augmentation '{self.augment}'. {did_you_mean(self.augment, AUGMENTS)}"
                f"Available: {', '.join(AUGMENTS)}"
            )


def parse_budget(text: str | None) -> dict[str, Any]:
    """`epochs=40,image_size=96` -> {"epochs": 40, "image_size": 96}: overrides for a baseline's own budget.

    Values take the type of the field's default; `none` clears max_seconds or orbit_train_elements."""
    if not text:
        return {}
    fields = {f.name: f for f in dataclasses.fields(Budget)}
    overrides: dict[str, Any] = {}
    for part in text.split(","):
        key, sep, value = (s.strip() for s in part.partition("="))
        if key not in fields or not sep:
            suggestion = "" if key in fields else did_you_mean(key, fields).strip()  # epoch=40: "Did you mean epochs?"
            raise UsageError(
                f"Budget expects KEY=VALUE[,KEY=VALUE...] with KEY one of {', '.join(fields)}; got '{part}'"
                + (f". {suggestion}" if suggestion else "")
            )
        default = fields[key].default
        if value.lower() == "none" and key in ("max_seconds", "orbit_train_elements"):
            overrides[key] = None
            continue
        kind = str if key == "augment" else float if key in ("learning_rate", "weight_decay", "max_seconds") else int
        try:
            overrides[key] = kind(value)
        except ValueError:
            raise UsageError(f"Budget {key} expects {kind.__name__} (default {default!r}); got '{value}'") from None
    Budget(**overrides)  # checks the values now, before anything runs
    return overrides


def resolve_augment(augment: str, classes: tuple[str, ...]) -> str:
    """`auto` -> translations and flips, or translations alone when a flip would swap two of the classes."""
    if augment != "auto":
        return augment
    mirrored = set(MIRRORED_CLASSES) <= {c.lower() for c in classes}
    return "translate" if mirrored else "translate+hflip"


def augmentation(augment: str, image_size: int) -> v2.Transform:
    """Per-image random translation (pad by 1/8 with edge pixels, random crop back) and horizontal flip."""
    if augment not in AUGMENTS or augment == "auto":
        raise ValueError(f"augmentation() needs a resolved augmentation, got '{augment}'")
    steps: list[v2.Transform] = []
    if "translate" in augment:
        steps.append(v2.RandomCrop(image_size, padding=max(1, image_size // 8), padding_mode="edge"))
    if "hflip" in augment:
        steps.append(v2.RandomHorizontalFlip())
    return v2.Compose(steps) if steps else v2.Identity()


class _Augmented(torch.utils.data.Dataset):
    """uint8 images with a fresh random augmentation on every access (torch's global RNG, seeded)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform: v2.Transform):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        return self.transform(tv_tensors.Image(self.images[index])).as_subclass(torch.Tensor), self.labels[index]


def channel_stats(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std of uint8 images, in [0, 1] units."""
    x = images.float().div_(255).transpose(0, 1).reshape(3, -1)
    return x.mean(dim=1), x.std(dim=1).clamp_min(1e-3)


@torch.no_grad()
def predict(model: CNN, images: torch.Tensor, budget: Budget) -> torch.Tensor:
    """Logits in eval mode, batched so that at most `eval_batch_images` images (orbit copies included) go through at once."""
    model.eval()
    copies = len(model.group) if isinstance(model, OrbitCNN) else 1
    batch = max(1, budget.eval_batch_images // copies)
    out = [model(images[i : i + batch].float().div_(255)) for i in range(0, len(images), batch)]
    return torch.cat(out) if out else torch.empty((0, model.head.out_features))


@dataclass
class Fit:
    """The epoch chosen on validation, the whole validation curve, and the model at that epoch."""

    chosen_epoch: int
    curve: list[dict[str, float]]
    model: CNN = field(repr=False)
    epochs_run: int
    # Why training stopped before the epochs of the budget ran out, when a time limit stopped it (None otherwise).
    stopped_by: str | None
    seconds_per_epoch: list[float]


def fit(
    model: CNN,
    train_images: torch.Tensor,
    train_labels: np.ndarray,
    val_images: torch.Tensor,
    val_labels: np.ndarray,
    budget: Budget,
    seed: int,
    description: str,
    augment: str = "translate+hflip",
) -> Fit:
    """Train for `budget.epochs`, scoring balanced accuracy on validation after each; keep the best epoch
    (ties go to the earliest: the least-trained model that is as good), stopping at a perfect validation score,
    after which no epoch could be chosen. `augment` is a resolved augmentation.

    Test data never enters this function, so nothing here can be selected on it. Call inside a seeded RNG
    context: the augmentation and the orbit sampling draw from torch's global generator."""
    num_classes = model.head.out_features
    train_y = torch.as_tensor(train_labels, dtype=torch.int64)
    counts = torch.bincount(train_y, minlength=num_classes).float()
    # Class-balanced loss: the headline metric is balanced accuracy (the weights use train labels only).
    weights = torch.where(counts > 0, counts.sum() / (num_classes * counts.clamp_min(1)), torch.zeros_like(counts))
    loss_fn = nn.CrossEntropyLoss(weight=weights)

    generator = torch.Generator().manual_seed(seed)
    loader = torch.utils.data.DataLoader(
        _Augmented(train_images, train_y, augmentation(augment, budget.image_size)),
        batch_size=budget.batch_size,
        shuffle=True,
        generator=generator,
        num_workers=0,
        drop_last=len(train_images) > budget.batch_size,  # every step a full batch (BatchNorm needs > 1 image)
    )
    optimiser = torch.optim.AdamW(model.parameters(), lr=budget.learning_rate, weight_decay=budget.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=budget.learning_rate, total_steps=budget.epochs * len(loader), pct_start=0.25
    )

    curve: list[dict[str, float]] = []
    seconds: list[float] = []
    best_state, best_score, chosen_epoch = None, -1.0, 0
    stopped = None
    started = time.perf_counter()
    with progress_bar() as progress:
        job = progress.add_task(description, total=budget.epochs, unit="epoch")
        for epoch in range(1, budget.epochs + 1):
            epoch_started = time.perf_counter()
            model.train()
            losses = []
            for images, labels in loader:
                loss = loss_fn(model.training_logits(images.float().div_(255)), labels)
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                schedule.step()
                losses.append(loss.item())
            predicted = predict(model, val_images, budget).argmax(dim=1).numpy()
            score = float(balanced_accuracy_score(val_labels, predicted))
            curve.append({"epoch": epoch, SELECTION_METRIC: score, "train_loss": float(np.mean(losses))})
            if score > best_score:
                best_state, best_score, chosen_epoch = copy.deepcopy(model.state_dict()), score, epoch
            seconds.append(time.perf_counter() - epoch_started)
            progress.update(
                job, advance=1, description=f"{description} (val. bal. acc. {score:.3f}, best {best_score:.3f})"
            )
            if best_score >= PERFECT:
                # No later epoch can be chosen (ties go to the earliest), so the result is the one the whole
                # budget would give: stopping only saves the time.
                break
            elapsed = time.perf_counter() - started
            if budget.max_seconds is not None and epoch < budget.epochs and elapsed + seconds[-1] > budget.max_seconds:
                stopped = f"max_seconds={budget.max_seconds:g} would have passed during epoch {epoch + 1}"
                err_console.print(
                    f"Warning: {description}: stopped after epoch {epoch} of {budget.epochs}, the next would pass "
                    f"max_seconds={budget.max_seconds:g}; the result is written as incomplete"
                )
                break
    assert best_state is not None, "every epoch scores at least 0 > -1, and a budget has at least one epoch"
    model.load_state_dict(best_state)
    model.eval()
    return Fit(chosen_epoch, curve, model, len(curve), stopped, seconds)
