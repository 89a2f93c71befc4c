"""What a row of a results table is, declared by whatever makes it (a probe, a baseline) and recorded with it.

The report, the gate and the experiments read these declarations; nothing guesses a row's kind from its name."""

from __future__ import annotations

from enum import Enum


class RowKind(str, Enum):
    """The kinds of row a task's table holds, in the order the report's legend lists them."""

    PROBE = "probe"  # a probe on the frozen features of pretrained weights: what is being measured
    CONTROL = "control"  # the same probe on features that owe nothing to pretraining (raw pixels, random weights)
    TRAINED = "trained"  # a network trained from scratch on the task's own labels (CNN, orbit CNN)
    ZERO_SHOT = "zero-shot"  # the model's own text prompts, nothing fitted


class SeedPolicy(str, Enum):
    """How a row's seed is drawn when a run has several seeds."""

    # One row per pretraining seed of the model: its seed is the model's (random weights are drawn with it).
    PRETRAINING = "pretraining"
    # One row per seed of the run, the row's own (a CNN's initialisation and batches): independent of any model.
    OWN = "own"
    # One row, whatever the seeds: the row does not depend on a seed (raw pixels, zero-shot on fixed weights).
    NONE = "none"
