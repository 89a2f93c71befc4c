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
# 6: the blind-pattern suite: the blindness table, blind-pair rates beside the sensitivity scores, the baseline a
# row comes from.
EXPERIMENT_SCHEMA_VERSION = 6


@dataclass
class TaskCell:
    """One row on one task, over the seeds: the mean balanced accuracy, the seeds' sd, a 95 % interval of the mean
    with the seed as the unit, within 0 to 1 (clipprobe.stats.seeds; one seed: its result's bootstrap interval over
    the test images), each seed's value, seed and result file."""

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
    (that distance over the mean distance of all unrelated pairs). The blind-pair rate likewise (the share of pairs
    at cosine similarity above the threshold: the mean over seeds with a seed-level interval, one seed its Wilson
    interval over pairs), with each seed's rate among unrelated image pairs."""

    score: float | None
    sd: float | None
    interval: list[float] | None
    per_seed: list[float | None]
    ratio: list[float | None]
    numerator: list[float | None]
    per_seed_interval: list[list[float] | None]
    blind_pair_rate: float | None = None
    blind_pair_interval: list[float] | None = None
    blind_per_seed: list[float] = field(default_factory=list)
    unrelated_blind_rate: list[float] = field(default_factory=list)
    threshold: float | None = None


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
    # The baseline the row comes from (its registered name: "cnn", "random"); None for a model's own rows.
    baseline: str | None = None


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
    # Tasks of the blind-pattern suite read at the embedding only, and the blind-pair rate's threshold.
    suite_tasks: list[str] = field(default_factory=list)
    blind_threshold: float | None = None


@dataclass
class Measure:
    """A number over seeds: the mean, its 95 % interval (seed-level; one seed: over test images, or over pairs for
    a rate), each seed's value."""

    value: float
    interval: list[float] | None
    per_seed: list[float]


@dataclass
class BlindnessCell:
    """One representation on one attribute: the linear probe's balanced accuracy at the embedding, the sensitivity
    score, the blind-pair rate and, beside it, the share of unrelated image pairs above the same threshold."""

    representation: str
    policy: str | None
    kind: RowKind
    probe: Measure | None
    sensitivity: Measure | None
    blind_pair_rate: Measure | None
    unrelated_blind_rate: float | None


@dataclass
class BlindnessRow:
    """One attribute: its pattern, its task, chance, the CNN's balanced accuracy (its own seeds) and every
    representation's cell."""

    pattern: str
    task: str
    chance: float
    trained: Measure | None
    trained_name: str | None
    cells: list[BlindnessCell]


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
    # The blind-pattern suite's table (clipprobe.dashcam.blindness), from the rows above.
    blindness: list[BlindnessRow] = field(default_factory=list)
