"""Trained baselines: models that see the task's labels, scored on the same splits and metrics as the probes.

- `cnn`: a small ResNet trained from scratch on the task's train images (what the labels alone buy);
- `orbit-cnn`: the same CNN with its pooled features averaged over a group's orbit (default
  `translate:4+hflip`), so its predictions are exactly invariant to the group.

The epoch is chosen on the validation split (balanced accuracy); test is scored once, and its labels are
read only after that. `run_baseline` writes a result file that `clipprobe report` merges with the probes."""

from .images import clear_image_cache
from .nets import CNN, OrbitCNN
from .run import (
    BASELINES, DEFAULT_GROUP, Baseline, TrainedBaseline, get_baseline, list_baselines, run_baseline, train_baseline,
)
from .training import AUGMENTS, Budget

__all__ = [
    "AUGMENTS", "BASELINES", "Baseline", "Budget", "CNN", "DEFAULT_GROUP", "OrbitCNN",
    "TrainedBaseline", "clear_image_cache", "get_baseline", "list_baselines", "run_baseline", "train_baseline",
]
