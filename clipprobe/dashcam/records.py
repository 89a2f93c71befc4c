"""The curation experiment's record: one typed document per experiment (its design, its rows across seeds, its
paired comparisons), written under <results>/experiments/ and rendered by `clipprobe report`."""

from __future__ import annotations

from dataclasses import dataclass

from ..core.kinds import RowKind
from ..results import Provenance, RunInfo

# What `clipprobe experiment curation` writes: the record's kind, and the version of its shape (bump when it changes).
EXPERIMENT_KIND = "curation-experiment"
# 4: typed all the way down; rows declare their kind (probe, control, trained, zero-shot); "invariance" is now
# "sensitivity".
EXPERIMENT_SCHEMA_VERSION = 4


@dataclass
class TaskCell:
    """One row on one task, over the seeds: the mean balanced accuracy, the seeds' sd, an interval, each seed's
    value and result file."""

    balanced_accuracy: float
    sd: float | None
    interval: list[float]
    per_seed: list[float]
    chance: float
    n_test: int
    results: list[str]
    representations: list[str]


@dataclass
class SensitivityCell:
    """One row's sensitivity score for one attribute over the seeds (one seed: its score and bootstrap interval)."""

    score: float | None
    sd: float | None
    interval: list[float] | None
    per_seed: list[float | None]
    ratio: list[float | None]


@dataclass
class ExperimentRow:
    """A representation (all its seeds) read one way (a method, a layer), with its kind and caption policy."""

    representation: str
    method: str
    kind: RowKind
    policy: str | None
    layer: str | None
    descriptive_fraction: float | None
    tasks: dict[str, TaskCell]
    sensitivity: dict[str, SensitivityCell] | None = None


@dataclass
class Comparison:
    """A paired difference in balanced accuracy (row minus reference) on one task and layer, across seeds."""

    task: str
    layer: str | None
    row: str
    against: str
    against_layer: str | None
    difference: float
    sd: float | None
    per_seed: list[float]
    interval: list[float]
    seeds_agree: bool
    resolved: bool
    seeds: int


@dataclass
class Design:
    """What the experiment compared: its policies, tasks, baselines and budget, attributes, models, recipe, world,
    seeds and layers."""

    policies: list[str]
    tasks: list[str]
    baselines: str
    budget: dict[str, int | float | str | bool | None]
    attributes: list[str]
    pairs: int
    zero_shot: bool
    models: list[str]
    recipe: dict[str, int | float | str | bool | None]
    world: str
    seed: int
    seeds: int
    layers: list[str]
    precision: str


@dataclass
class ExperimentRecord:
    """The curation experiment's document."""

    kind: str
    name: str
    design: Design
    tasks: list[str]
    attributes: list[str]
    seeds: list[int]
    layers: list[str]
    rows: list[ExperimentRow]
    comparisons: list[Comparison]
    provenance: Provenance
    # When it finished and each stage's time: left out where a report stores the record (it changes every run).
    run: RunInfo | None = None
