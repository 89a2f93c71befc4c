"""`clipprobe blind-spots`: the blind-pattern suite for any open_clip model on its own, as one blindness table.

Every task of the suite (clipprobe.dashcam.tasks.SUITE_TASKS, one or more per visual pattern) is read at the
model's embedding by the linear probe, beside a CNN trained on the labels (the reference), and every attribute's
counterfactual pairs are embedded for the sensitivity score and the blind-pair rate. It is the curation
experiment's machinery with no caption policies and only the suite's tasks (clipprobe.dashcam.experiment), so its
results are stored and reused the same way; the record is a document of its own kind, rendered by `clipprobe
report` beside everything else."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..core.defaults import EXPERIMENTS_FOLDER, RESULTS_DIR, SENSITIVITY_DIR
from ..core.errors import UsageError
from ..core.paths import slug
from ..results import Provenance, Result, RunInfo, write_document
from .blindness import REFERENCE_BASELINE
from .experiment import SUITE_BASELINES, CurationExperiment, run_curation
from .records import BlindnessRow
from .sensitivity import BLIND_THRESHOLD
from .tasks import SUITE_TASKS
from .world import WorldConfig

BLIND_SPOTS_KIND = "blind-spots"
# 1: the first version.
BLIND_SPOTS_SCHEMA_VERSION = 1
DEFAULT_BLIND_SPOTS_BASELINES = REFERENCE_BASELINE
# Counterfactual pairs per attribute: as in the curation experiment.
DEFAULT_BLIND_SPOTS_PAIRS = 100


@dataclass
class BlindSpotsDesign:
    models: list[str]
    tasks: list[str]
    seeds: list[int]
    baselines: str
    pairs: int
    blind_threshold: float
    world: str
    precision: str


@dataclass
class BlindSpotsRecord:
    """One blindness table for one or more models (one JSON file under <results>/experiments/)."""

    kind: str
    name: str
    design: BlindSpotsDesign
    rows: list[BlindnessRow]
    provenance: Provenance
    run: RunInfo | None = None


def blind_spots_experiment(
    models: tuple[str, ...],
    seeds: int = 1,
    baselines: str = DEFAULT_BLIND_SPOTS_BASELINES,
    pairs: int = DEFAULT_BLIND_SPOTS_PAIRS,
    threshold: float = BLIND_THRESHOLD,
    world: WorldConfig = WorldConfig(),
    precision: str = "auto",
    tasks: tuple[str, ...] | None = None,
) -> CurationExperiment:
    """The run behind the table: no caption policy, the models, the suite's tasks (default: all of them) at the
    embedding, beside `baselines` (cnn, random or none)."""
    if not models:
        raise UsageError("blind-spots needs at least one --model (MODEL@WEIGHTS)")
    tasks = SUITE_TASKS if tasks is None else tasks
    unknown = [task for task in tasks if task not in SUITE_TASKS]
    if unknown or not tasks:
        raise UsageError(
            f"'{unknown[0] if unknown else ''}' is not a task of the blind-pattern suite. Available: {', '.join(SUITE_TASKS)}"
        )
    chosen = [b.strip() for b in baselines.split(",") if b.strip()]
    if chosen != ["none"]:
        for baseline in chosen:
            if baseline not in SUITE_BASELINES:
                raise UsageError(
                    f"blind-spots reads baselines {', '.join(SUITE_BASELINES)} (or none), got '{baseline}'"
                )
    return CurationExperiment(
        policies=(),
        tasks=(),
        suite_tasks=tasks,
        baselines=baselines,
        attributes=tasks,
        pairs=pairs,
        blind_threshold=threshold,
        zero_shot=False,
        models=models,
        world=world,
        seeds=seeds,
        baseline_seeds=seeds,
        layers=("embedding",),
        probes=("linear",),
        mlp_tasks=(),
        attentive_tasks=(),
        precision=precision,
    )


def run_blind_spots(
    experiment: CurationExperiment,
    results_dir: Path = RESULTS_DIR,
    sensitivity_dir: Path = SENSITIVITY_DIR,
    refresh: bool = False,
    on_result: Callable[[Result, Path], None] | None = None,
    on_stage: Callable[[str], None] | None = None,
) -> tuple[BlindSpotsRecord, Path]:
    """Run the suite for `experiment.models` (see `blind_spots_experiment`) and write the blindness table as
    `<results_dir>/experiments/blind-spots__<models>.json`; returns (record, path)."""
    started = time.perf_counter()
    found, _ = run_curation(experiment, results_dir, sensitivity_dir, refresh, on_result, on_stage, write=False)
    name = f"{BLIND_SPOTS_KIND}__{slug('+'.join(experiment.models))}"
    record = BlindSpotsRecord(
        kind=BLIND_SPOTS_KIND,
        name=name,
        design=BlindSpotsDesign(
            models=list(experiment.models),
            tasks=list(experiment.all_tasks()),
            seeds=list(experiment.seed_range()),
            baselines=experiment.baselines,
            pairs=experiment.pairs,
            blind_threshold=experiment.blind_threshold,
            world=experiment.world.fingerprint(),
            precision=experiment.precision,
        ),
        rows=found.blindness,
        provenance=Provenance.now(),
        run=RunInfo.since(started),
    )
    path = Path(results_dir) / EXPERIMENTS_FOLDER / f"{name}.json"
    return record, write_document(path, record, BLIND_SPOTS_SCHEMA_VERSION)
