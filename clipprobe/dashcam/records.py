"""The curation experiment's record: one typed document per experiment (its design, its rows across seeds, its
paired comparisons), written under <results>/experiments/ and rendered by `clipprobe report`."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..core.kinds import RowKind
from ..results import Provenance, RunInfo

# What `clipprobe experiment curation` writes: the record's kind, and the version of its shape (bump when it changes).
EXPERIMENT_KIND = "curation-experiment"
# 4: typed all the way down; rows declare their kind (probe, control, trained, zero-shot); "invariance" is now
# "sensitivity".
# 5: inference at the level of seeds: pre-registered primary contrasts (Holm, equivalence against a margin) and
# exploratory ones (Benjamini-Hochberg); a row's interval over seeds; the trained baselines' own seeds.
EXPERIMENT_SCHEMA_VERSION = 5


@dataclass
class TaskCell:
    """One row on one task, over the seeds: the mean balanced accuracy, the seeds' sd, a 95 % interval of the mean
    with the seed as the unit (clipprobe.stats.seeds; None for one seed), each seed's value, seed and result
    file."""

    balanced_accuracy: float
    sd: float | None
    interval: list[float] | None
    per_seed: list[float]
    seeds: list[int]
    chance: float
    n_test: int
    results: list[str]
    representations: list[str]


@dataclass
class SensitivityCell:
    """One row's sensitivity score for one attribute over the seeds: the mean, the seeds' sd and a seed-level
    interval (one seed: its score and bootstrap interval over pairs); per seed the score, its bootstrap interval,
    the numerator (mean cosine distance within counterfactual pairs, in the embedding's own units) and `ratio`
    (that distance over the mean distance of all unrelated pairs)."""

    score: float | None
    sd: float | None
    interval: list[float] | None
    per_seed: list[float | None]
    ratio: list[float | None]
    numerator: list[float | None]
    per_seed_interval: list[list[float] | None]


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
class Contrast:
    """A difference, row minus reference, with the seed as the unit: a pre-registered primary contrast or an
    exploratory one. `measure` is "balanced accuracy" or "sensitivity: ATTRIBUTE"; `paired` whether the seeds are
    shared (t over their differences) or not (Welch); `adjusted` the Holm-adjusted p-value (primary) or the
    Benjamini-Hochberg q-value (exploratory); `equivalence` the Holm-adjusted p-value of the two one-sided tests
    against `margin` (primary only); `verdict` what may be said."""

    family: str
    name: str
    claim: str | None
    measure: str
    task: str | None
    row: str
    layer: str | None
    against: str
    against_layer: str | None
    paired: bool
    estimate: float
    se: float | None
    df: float | None
    interval: list[float] | None
    image_se: float
    p: float | None
    adjusted: float | None
    equivalence: float | None
    margin: float | None
    verdict: str
    per_seed: list[float]
    per_seed_against: list[float]


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
    baseline_seeds: int
    layers: list[str]
    probes: list[str]
    mlp_tasks: list[str]
    precision: str
    # Tasks also read by the attentive probe over every token (records made before it ran have none), and the
    # policies whose models it read.
    attentive_tasks: list[str] = field(default_factory=list)
    attentive_policies: list[str] = field(default_factory=list)
    # Tasks of the blind-pattern suite read at the embedding only.
    suite_tasks: list[str] = field(default_factory=list)


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
    # The plan's version (clipprobe.dashcam.preregistration) and its contrasts, then every exploratory one.
    preregistration: int
    primary: list[Contrast]
    exploratory: list[Contrast]
    provenance: Provenance
    # When it finished and each stage's time: left out where a report stores the record (it changes every run).
    run: RunInfo | None = None
