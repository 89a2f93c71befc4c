"""The registry of baselines: every row a comparison puts beside the frozen-feature probe, by name.

A baseline *declares* what it is when it is registered: its kind of row (a control probed like the model, a network
trained on the labels, zero-shot), whether its row depends on the probed model, whether its features have layers,
and how its seed is drawn. The jobs layer (clipprobe.jobs) turns a declaration into jobs; nothing guesses."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ..core.errors import UsageError
from ..core.kinds import RowKind, SeedPolicy
from ..core.registry import Registry
from ..results import Incomplete, Selection, Training

if TYPE_CHECKING:
    from ..data.task import Task
    from ..features.config import ExtractorConfig

# What `clipprobe probe` runs beside the probe unless told otherwise.
DEFAULT_BASELINES = ("cnn", "orbit-cnn", "pixels", "random")


class Baseline(ABC):
    """A reference row for a task. Subclass one of ProbeControl, LabelBaseline or PromptBaseline."""

    name: str
    description: str
    # The kind of row it makes (clipprobe.core.kinds.RowKind).
    kind: ClassVar[RowKind]
    # Whether its row depends on the probed model (zero-shot: the model's text tower; random: its architecture).
    # One that does not runs once per task and seed however many models a run probes.
    uses_model: bool
    # Whether its features have layers (read at every layer a run probes), like the model's.
    layered: bool
    # How its seed is drawn when a run has several seeds (clipprobe.core.kinds.SeedPolicy).
    seeds: SeedPolicy

    def check_option(self, option: str | None, budget: Mapping[str, Any] | None = None) -> None:
        """Raise UsageError when `option` (the text after NAME:) or the budget overrides do not fit this baseline."""
        if option is not None:
            raise UsageError(f"Baseline '{self.name}' takes no option (got '{self.name}:{option}')")


class ProbeControl(Baseline):
    """A probe, exactly as for the probed model, on features from a changed extractor config (pixels, random
    weights): every probe kind, shot and layer of the run."""

    kind = RowKind.CONTROL

    @abstractmethod
    def configure(self, config: ExtractorConfig) -> ExtractorConfig:
        """The extractor config whose features this control probes, from the probed model's."""


@dataclass
class Trained:
    """A network trained on a task's labels, its choice made on validation, its test predictions made: nothing in
    it has seen a test label (the job reads those afterwards, to score)."""

    model: str  # the architecture's name, the row's `model`
    test_predictions: np.ndarray
    selection: Selection
    training: Training
    sizes: dict[str, int]
    decode_seconds: float | None = None
    seconds_per_epoch: list[float] | None = None
    threads: int | None = None
    incomplete: Incomplete | None = None
    network: object | None = None  # the trained network itself, for a caller who inspects it (not recorded)


class LabelBaseline(Baseline):
    """A model trained from scratch on the task's own labels, its one choice made on validation."""

    kind = RowKind.TRAINED
    uses_model = False
    layered = False
    seeds = SeedPolicy.OWN
    # The method column of its rows, and its code version (bump when training changes what a result would be).
    method: str
    version: int

    @abstractmethod
    def row(self, option: str | None, budget: Mapping[str, Any] | None, resize: str | None) -> str:
        """Its row's name under these settings: settings that change the numbers change the name."""

    @abstractmethod
    def settings(self, option: str | None, budget: Mapping[str, Any] | None, resize: str | None) -> dict[str, Any]:
        """Everything besides the data and the seed that decides its numbers (part of the result's key)."""

    @abstractmethod
    def train(
        self, task: Task, seed: int, option: str | None, budget: Mapping[str, Any] | None, resize: str | None
    ) -> Trained:
        """Train on the train split, choose on validation, predict the test images (never reading test labels)."""


class PromptBaseline(Baseline):
    """Classification by the probed model's own text tower (zero-shot): nothing is fitted or chosen."""

    kind = RowKind.ZERO_SHOT
    uses_model = True
    layered = False
    seeds = SeedPolicy.PRETRAINING
    method: str
    version: int

    @abstractmethod
    def prompts(self, task: Task, option: str | None) -> dict[str, list[str]]:
        """The prompts per class for `task` (`option`: the baseline's own, e.g. a prompt file)."""

    @abstractmethod
    def class_embeddings(self, config: ExtractorConfig, prompts: dict[str, list[str]]) -> np.ndarray:
        """One unit vector per class, in the image embedding's space of `config`'s model."""


BASELINES: Registry[Baseline] = Registry("baseline")


def list_baselines() -> list[str]:
    return BASELINES.names()


def get_baseline(name: str) -> Baseline:
    return BASELINES.get(name)


def parse_baselines(
    spec: str | Sequence[str], budget: Mapping[str, Any] | None = None
) -> list[tuple[Baseline, str | None]]:
    """`cnn,orbit-cnn:hflip,pixels` -> [(baseline, option)]; `none` (or an empty list) -> [].

    The option after the first colon is the baseline's own (the orbit group for orbit-cnn). Every name, and
    every option against the `budget` overrides, is checked before anything runs."""
    names = [part.strip() for part in spec.split(",")] if isinstance(spec, str) else list(spec)
    names = [name for name in names if name]
    if names == ["none"] or not names:
        return []
    if "none" in names:
        raise UsageError("--baselines none cannot be combined with other baselines")
    chosen = []
    for name in names:
        base, _, option = name.partition(":")
        baseline = get_baseline(base)
        baseline.check_option(option or None, budget)
        chosen.append((baseline, option or None))
    return list(dict.fromkeys(chosen))
