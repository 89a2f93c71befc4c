"""Baselines: the rows a probe is compared with, on the same splits and metrics.

- `cnn`: a small ResNet trained from scratch on the task's train images (what the labels alone buy);
- `orbit-cnn`: the same CNN with its pooled features averaged over a group's orbit (default
  `translate:4+hflip`), so its predictions are exactly invariant to the group;
- `pixels`: the linear probe on 32x32 raw pixels (a floor: what the input gives without a network);
- `random`: the linear probe on the probed architecture with random weights (what pretraining adds);
- `zero-shot`: the probed model itself, classifying by its text tower's similarity to prompts per class.

The epoch is chosen on the validation split (balanced accuracy); test is scored once, and its labels are
read only after that. `run_baseline` (trained) and `get_baseline(name).run` (any) write a result file that `clipprobe report` merges with the probes."""

from . import controls, zeroshot  # noqa: F401  (register the probe controls, pixels and random, and zero-shot)
from .images import clear_image_cache
from .nets import CNN, OrbitCNN
from .registry import BASELINES, DEFAULT_BASELINES, Baseline, get_baseline, list_baselines, parse_baselines
from .run import DEFAULT_GROUP, ScratchBaseline, TrainedBaseline, get_trained_baseline, run_baseline, train_baseline
from .training import AUGMENTS, Budget, parse_budget

__all__ = [
    "AUGMENTS", "BASELINES", "Baseline", "Budget", "CNN", "DEFAULT_BASELINES", "DEFAULT_GROUP", "OrbitCNN",
    "ScratchBaseline", "TrainedBaseline", "clear_image_cache", "get_baseline", "get_trained_baseline",
    "list_baselines", "parse_baselines", "parse_budget", "run_baseline", "train_baseline",
]
