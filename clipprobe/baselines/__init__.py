"""Baselines: the rows a probe is compared with, on the same splits and metrics.

- `cnn`: a small ResNet trained from scratch on the task's train images (what the labels alone buy);
- `orbit-cnn`: the same CNN with its pooled features averaged over a group's orbit (default
  `translate:4+hflip`), so its predictions are exactly invariant to the group;
- `pixels`: the linear probe on 32x32 raw pixels (a floor: what the input gives without a network);
- `random`: the linear probe on the probed architecture with random weights (what pretraining adds);
- `zero-shot`: the probed model itself, classifying by its text tower's similarity to prompts per class.

The epoch is chosen on the validation split (balanced accuracy); test is scored once, and its labels are read only
after that. The registry is clipprobe.baselines.registry; clipprobe.catalog imports the modules that fill it."""
