"""The curation experiment: one model pretrained per caption policy, probed on every world task beside the baselines.

Same world, recipe and seed for every policy; only the captions differ. The experiment is an application of the
runner: pretrain (on first use) -> one run plan (clipprobe.runner.RunPlan: the policy models per seed, the other
models, the baselines, the layers) -> `run_jobs` -> a summary. Each stage reuses what is stored (built-in weights
by recipe fingerprint, features by content key, results and sensitivity scores by key), so a re-run after a crash,
or with one more policy, does only the new work. The headline table (rows = representations, columns = tasks and
sensitivity scores) is written to `<results>/experiments/` and rendered by `clipprobe report`."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..core.defaults import EXPERIMENTS_FOLDER, PRECISION, RESULTS_DIR, SENSITIVITY_DIR
from ..core.errors import UsageError
from ..core.kinds import RowKind
from ..core.paths import slug
from ..data.task import get_task
from ..features.config import ExtractorConfig
from ..features.weights import check_weights, parse_model_spec
from ..jobs.base import Job
from ..jobs.probe import ProbeJob
from ..jobs.zeroshot import ZeroShotJob
from ..probes.intervals import seed_pooled_statistics
from ..probes.registry import get_probe
from ..results import Provenance, Result, RunInfo, write_document
from ..runner import Model, RunPlan, run_jobs
from .captions import descriptive_fraction, get_caption_policy
from .pairs import COUNTERFACTUALS, list_counterfactuals
from .pretrain import PretrainConfig, policy_weights
from .records import (
    EXPERIMENT_KIND,
    EXPERIMENT_SCHEMA_VERSION,
    Comparison,
    Design,
    ExperimentRecord,
    ExperimentRow,
    SensitivityCell,
    TaskCell,
)
from .sensitivity import measure_sensitivity
from .tasks import WORLD_TASKS, DashcamWorld, with_world
from .world import WorldConfig

DEFAULT_POLICIES = ("salient", "descriptive", "mixed:0.1")
# Every baseline of `clipprobe probe`, with the orbit model over horizontal flips alone: the cheapest group that
# shows what a hard invariance costs (pedestrian-side) and what it keeps (everything else).
DEFAULT_EXPERIMENT_BASELINES = "cnn,orbit-cnn:hflip,pixels,random"
# Both trained baselines at 10 epochs, the orbit model seeing one random flip per training image (its
# predictions still average the whole orbit, so they are exactly flip-invariant): six tasks fit the demo's time.
DEFAULT_EXPERIMENT_BUDGET = {"epochs": 10, "orbit_train_elements": 1}
WORLD_TASK_NAMES = tuple(name for name, *_ in WORLD_TASKS)
# The layers probed by default: where the pooled embedding loses information, if it does, shows between them.
DEFAULT_EXPERIMENT_LAYERS = ("embedding", "pre-projection", "tokens")


@dataclass(frozen=True)
class CurationExperiment:
    """What the experiment compares; the defaults are `make demo`."""

    policies: tuple[str, ...] = DEFAULT_POLICIES
    tasks: tuple[str, ...] = WORLD_TASK_NAMES
    baselines: str = DEFAULT_EXPERIMENT_BASELINES
    # Overrides of the trained baselines' budgets (see clipprobe.baselines.training.Budget), e.g. {"epochs": 8}.
    budget: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_EXPERIMENT_BUDGET))
    # Counterfactual attributes for the sensitivity columns (clipprobe.dashcam.pairs); None: all of them, (): none.
    attributes: tuple[str, ...] | None = None
    pairs: int = 100
    zero_shot: bool = True
    # Other open_clip models probed on the same tasks, as MODEL or MODEL@WEIGHTS (a tag, a file, a folder): real CLIP rows.
    models: tuple[str, ...] = ()
    # The pretraining recipe; its `captions` is replaced by each policy in turn.
    recipe: PretrainConfig = PretrainConfig()
    world: WorldConfig = WorldConfig()
    seed: int = 0
    # Pretraining seeds seed .. seed + seeds - 1: every policy is pretrained, and every trained baseline trained,
    # once per seed.
    seeds: int = 1
    # Where in each frozen image tower the tasks are probed (clipprobe.features.config.LAYERS).
    layers: tuple[str, ...] = DEFAULT_EXPERIMENT_LAYERS
    # The precision of every frozen row (the experiment is the reference run: fp32 unless asked; `auto` is resolved
    # by the plan exactly as for `clipprobe probe`).
    precision: str = PRECISION

    def __post_init__(self):
        object.__setattr__(self, "policies", tuple(dict.fromkeys(self.policies)))
        object.__setattr__(self, "tasks", tuple(dict.fromkeys(self.tasks)))
        object.__setattr__(self, "layers", tuple(dict.fromkeys(self.layers)))
        object.__setattr__(self, "models", tuple(dict.fromkeys(self.models)))
        if self.attributes is None:
            object.__setattr__(self, "attributes", tuple(list_counterfactuals()))

    def seed_range(self) -> range:
        return range(self.seed, self.seed + self.seeds)

    def recipes(self, seed: int | None = None) -> list[PretrainConfig]:
        seed = self.seed if seed is None else seed
        return [
            dataclasses.replace(self.recipe, captions=policy, world=self.world, seed=seed) for policy in self.policies
        ]

    def check(self) -> None:
        """What only the experiment has, checked before any work: policies, world tasks, models, attributes, pairs,
        seeds. The run plan checks the rest (baselines and budget, layers, probes) when it is built, also before
        any work."""
        if not self.policies:
            raise UsageError("--policies needs at least one caption policy")
        if not self.tasks:
            raise UsageError(f"--tasks needs at least one task. Available: {', '.join(WORLD_TASK_NAMES)}")
        for policy in self.policies:
            get_caption_policy(policy)
        for task in self.tasks:
            if not isinstance(get_task(task).source, DashcamWorld):
                raise UsageError(
                    f"Task '{task}' is not over the dashcam world. Available: {', '.join(WORLD_TASK_NAMES)}"
                )
        for spec in self.models:
            check_weights(*parse_model_spec(spec))
        for attribute in self.attributes or ():
            COUNTERFACTUALS.get(attribute)
        if self.seed < 0:
            raise UsageError(f"--seed must be a whole number 0 or more, got {self.seed}")
        if self.pairs < 2:
            raise UsageError(f"--pairs must be at least 2 (an unrelated pair needs two scenes), got {self.pairs}")
        if self.seeds < 1:
            raise UsageError(f"--seeds must be at least 1, got {self.seeds}")

    def model_names(self) -> list[tuple[str, str | None]]:
        """(row name, caption policy) of each model of the plan, in order: the policies', then the other models'."""
        names: list[tuple[str, str | None]] = [(f"{self.recipe.model}/dashcam-{p}", p) for p in self.policies]
        return names + [(spec, None) for spec in self.models]

    def plan(self, results_dir: Path = RESULTS_DIR, refresh: bool = False) -> RunPlan:
        """The run plan: each policy's model per seed (its weights registered, pretrained when first loaded), the
        other models, the baselines (zero-shot too, unless left out), the layers, every world task."""
        seeds = list(self.seed_range())
        models = [
            Model(
                tuple(
                    ExtractorConfig(
                        model=recipe.model, pretrained=policy_weights(recipe).tag, seed=seed, precision=self.precision
                    )
                    for seed in seeds
                    for recipe in [self.recipes(seed)[index]]
                )
            )
            for index in range(len(self.policies))
        ]
        for spec in self.models:
            model, weights = parse_model_spec(spec)
            models.append(
                Model.seeded(ExtractorConfig(model=model, pretrained=weights, precision=self.precision), seeds)
            )
        baselines = [] if self.baselines.strip() == "none" else [self.baselines]
        if self.zero_shot:
            baselines.append("zero-shot")
        return RunPlan.build(
            [with_world(get_task(name), self.world) for name in self.tasks],
            baselines=",".join(baselines) or "none",
            budget=self.budget,
            seeds=seeds,
            layers=self.layers,
            models=models,
            results_dir=results_dir,
            refresh=refresh,
        )

    def name(self) -> str:
        """The record's file name: the policies and the seed (a later run with other tasks or rows replaces it)."""
        seeds = f"seed{self.seed}" if self.seeds == 1 else f"seeds{self.seed}-{self.seed + self.seeds - 1}"
        return f"curation__{slug('+'.join(self.policies))}__{seeds}"

    def describe(self) -> Design:
        return Design(
            policies=list(self.policies),
            tasks=list(self.tasks),
            baselines=self.baselines,
            budget=dict(self.budget),
            attributes=list(self.attributes or ()),
            pairs=self.pairs,
            zero_shot=self.zero_shot,
            models=list(self.models),
            recipe={k: v for k, v in dataclasses.asdict(self.recipe).items() if k not in ("captions", "world", "seed")},
            world=self.world.fingerprint(),
            seed=self.seed,
            seeds=self.seeds,
            layers=list(self.layers),
            precision=self.precision,
        )


def run_curation(
    experiment: CurationExperiment | None = None,
    results_dir: Path = RESULTS_DIR,
    sensitivity_dir: Path = SENSITIVITY_DIR,
    refresh: bool = False,
    on_result: Callable[[Result, Path], None] | None = None,
    on_stage: Callable[[str], None] | None = None,
) -> tuple[ExperimentRecord, Path]:
    """Pretrain (or reuse) one model per policy and seed, then run the plan (clipprobe.runner: every task probed at
    every layer beside the baselines), score sensitivity on the embeddings, and write the headline table as
    `<results_dir>/experiments/<name>.json`; returns (record, path).

    `refresh` recomputes results and scores (not weights or features: delete them from the cache for that).
    `on_result(record, path)` is called for each probe or baseline result, `on_stage(text)` at each stage."""
    experiment = experiment or CurationExperiment()
    experiment.check()
    say = on_stage or (lambda text: None)
    started = time.perf_counter()
    plan = experiment.plan(results_dir, refresh)
    # The record keys tasks by the experiment's names ("traffic-light"), not by the plan's tasks' names, which
    # record a changed world ("traffic-light[image_size=64]").
    task_names = {task.name: name for task, name in zip(plan.tasks, experiment.tasks)}
    labels = {task_names[task.name]: task.labels(task.source.load()["test"]) for task in plan.tasks}
    names = experiment.model_names()
    rows: dict[tuple[str, str, str | None], _Row] = {}
    timings: dict[str, float] = {}
    scored: dict[ExtractorConfig, dict[str, SensitivityCell]] = {}
    stage, current = time.perf_counter(), None

    for job, (record, path) in run_jobs(plan.jobs(), plan.results_dir, plan.refresh, on_result):
        origin = job.origin
        where = (origin.seed, origin.model, origin.baseline)
        if where != current:
            if current is not None:
                _lap(timings, _stage_name(current, names), stage)
            current, stage = where, time.perf_counter()
            say(_stage_name(current, names))
        row = _row_for(rows, job, record, names, [b.name for b, _ in plan.baselines], experiment.layers)
        row.add(task_names[job.task.name], record, path)
        if experiment.attributes and isinstance(job, ProbeJob) and job.shots is None:
            if job.config.layer == "embedding" and job.probe is plan.probes[0] and job.task is plan.tasks[0]:
                if job.config not in scored:
                    scored[job.config] = _sensitivity(experiment, job.config, sensitivity_dir, refresh)
                row.add_sensitivity(origin.seed, scored[job.config])
    if current is not None:
        _lap(timings, _stage_name(current, names), stage)

    ordered = sorted(rows.values(), key=lambda row: row.order)
    document = ExperimentRecord(
        kind=EXPERIMENT_KIND,
        name=experiment.name(),
        design=experiment.describe(),
        tasks=list(experiment.tasks),
        attributes=list(experiment.attributes or ()),
        seeds=list(experiment.seed_range()),
        layers=list(experiment.layers),
        rows=[r.summary(labels) for r in ordered],
        comparisons=_comparisons(ordered, labels, experiment),
        provenance=Provenance.now(),
        run=RunInfo.since(started, stages=timings),
    )
    path = write_document(
        Path(results_dir) / EXPERIMENTS_FOLDER / f"{experiment.name()}.json", document, EXPERIMENT_SCHEMA_VERSION
    )
    return document, path


def _lap(timings: dict[str, float], name: str, since: float) -> None:
    timings[name] = round(timings.get(name, 0.0) + time.perf_counter() - since, 2)


def _stage_name(where: tuple[int, int | None, str | None], names: list[tuple[str, str | None]]) -> str:
    seed, model, baseline = where
    if baseline is not None:
        return f"baseline {baseline} seed {seed}"
    label, policy = names[model if model is not None else 0]
    return f"policy {policy} seed {seed}" if policy is not None else f"model {label} seed {seed}"


def _row_for(
    rows: dict[tuple[str, str, str | None], _Row],
    job: Job,
    record: Result,
    names: list[tuple[str, str | None]],
    baselines: list[str],
    layers: tuple[str, ...],
) -> _Row:
    """The headline row a job's result belongs to, from what the job declares (its kind and origin in the plan).
    Rows are ordered by model (its probes, then its zero-shot row), then by baseline, then by layer."""
    origin = job.origin
    policy = None
    layer = job.config.layer if isinstance(job, (ProbeJob, ZeroShotJob)) else None
    depth = layers.index(layer) if layer in layers else 0
    if origin.baseline is None or job.kind is RowKind.ZERO_SHOT:  # the model's own rows: its probes, its zero-shot
        number = origin.model if origin.model is not None else 0
        label, policy = names[number]
        order: tuple[int, ...] = (0, number, job.kind is RowKind.ZERO_SHOT, depth)
    else:
        order = (1, baselines.index(origin.baseline) if origin.baseline in baselines else len(baselines), 0, depth)
        if job.kind is RowKind.CONTROL and origin.model is not None:  # a control on the model's architecture
            label = f"{record.model}/{origin.baseline}"
        else:  # a control or a network that owes nothing to the model: its own row name
            label = record.representation
    key = (label, record.method, layer)
    if key not in rows:
        rows[key] = _Row(label, record.method, job.kind, origin.baseline, policy, layer, order)
    return rows[key]


def _sensitivity(
    experiment: CurationExperiment, config: ExtractorConfig, sensitivity_dir: Path, refresh: bool
) -> dict[str, SensitivityCell]:
    record, _ = measure_sensitivity(
        list(experiment.attributes or ()),
        config,
        n=experiment.pairs,
        world=experiment.world,
        seed=experiment.seed,
        results_dir=sensitivity_dir,
        refresh=refresh,
    )
    return {
        attribute: SensitivityCell(
            score=score.stats.score,
            sd=None,
            interval=score.stats.interval,
            per_seed=[score.stats.score],
            ratio=[score.stats.ratio],
        )
        for attribute, score in record.scores.items()
    }


@dataclass
class _Row:
    """One headline row while the experiment runs: a representation (all its seeds), a method, a layer, and per task
    the result of each seed (its test predictions kept for pooled and paired statistics)."""

    label: str
    method: str
    kind: RowKind
    baseline: str | None
    policy: str | None
    layer: str | None
    order: tuple[int, ...] = ()
    results: dict[str, list[tuple[Result, Path]]] = field(default_factory=dict)
    sensitivity: dict[int, dict[str, SensitivityCell]] = field(default_factory=dict)

    def add(self, task: str, record: Result, path: Path) -> None:
        kept = self.results.setdefault(task, [])
        if all(stored != path for _, stored in kept):  # the same result reached from two models counts once
            kept.append((record, path))

    def add_sensitivity(self, seed: int, scores: dict[str, SensitivityCell]) -> None:
        self.sensitivity[seed] = scores

    def predictions(self, task: str) -> list[np.ndarray]:
        return [np.asarray(record.predictions) for record, _ in self.results[task] if record.predictions is not None]

    def summary(self, labels: dict[str, np.ndarray]) -> ExperimentRow:
        """The row as the record stores it: per task the mean over seeds, their standard deviation, the interval
        pooled over seeds (test images resampled), each seed's value and result file; sensitivity likewise."""
        tasks = {}
        for name, results in self.results.items():
            first = results[0][0]
            stats = seed_pooled_statistics(labels[name], self.predictions(name), len(first.classes))
            tasks[name] = TaskCell(
                balanced_accuracy=float(stats["mean"]),
                sd=stats["sd"],
                interval=list(stats["interval"]),
                per_seed=list(stats["per_seed"]),
                chance=1 / len(first.classes),
                n_test=first.metrics.n if first.metrics is not None else 0,
                results=[str(path) for _, path in results],
                representations=[record.representation for record, _ in results],
            )
        return ExperimentRow(
            representation=self.label,
            method=self.method,
            kind=self.kind,
            policy=self.policy,
            layer=self.layer,
            descriptive_fraction=descriptive_fraction(self.policy) if self.policy is not None else None,
            tasks=tasks,
            sensitivity=_pooled_sensitivity(list(self.sensitivity.values())) if self.sensitivity else None,
        )


def _pooled_sensitivity(per_seed: list[dict[str, SensitivityCell]]) -> dict[str, SensitivityCell]:
    """Sensitivity scores over seeds: their mean, sample standard deviation and each seed's score (one seed: its
    score and interval as they are)."""
    pooled = {}
    for attribute in per_seed[0]:
        scores = [s[attribute].score for s in per_seed]
        ratios = [s[attribute].ratio[0] for s in per_seed]
        if any(score is None for score in scores):
            pooled[attribute] = SensitivityCell(score=None, sd=None, interval=None, per_seed=scores, ratio=ratios)
            continue
        values = np.asarray(scores, dtype=np.float64)
        pooled[attribute] = SensitivityCell(
            score=float(values.mean()),
            sd=float(values.std(ddof=1)) if len(values) > 1 else None,
            interval=per_seed[0][attribute].interval if len(values) == 1 else None,
            per_seed=[float(v) for v in values],
            ratio=ratios,
        )
    return pooled


def _comparisons(rows: list[_Row], labels: dict[str, np.ndarray], experiment: CurationExperiment) -> list[Comparison]:
    """The paired differences the conclusions rest on, per task and layer, combined across seeds (paired seed by
    seed; test images resampled together): each policy against salient captions, each frozen representation
    against the CNN trained on the labels, and each policy against random weights at the same layer."""
    linear = get_probe("linear").method  # the comparisons are between linear probes
    probes = [r for r in rows if r.kind is RowKind.PROBE and r.method == linear]
    salient = {r.layer: r for r in probes if r.policy == "salient"}
    random = {r.layer: r for r in rows if r.kind is RowKind.CONTROL and r.baseline == "random"}
    cnn = next((r for r in rows if r.kind is RowKind.TRAINED and r.baseline == "cnn"), None)
    pairs = []
    for current in probes:
        if current.policy not in (None, "salient") and current.layer in salient:
            pairs.append((current, salient[current.layer]))
        if current.layer in random:
            pairs.append((current, random[current.layer]))
        if cnn is not None:
            pairs.append((current, cnn))
    out = []
    for current, against in pairs:
        for task in experiment.tasks:
            if task not in current.results or task not in against.results:
                continue
            n_classes = len(current.results[task][0][0].classes)
            stats = seed_pooled_statistics(
                labels[task], current.predictions(task), n_classes, against=against.predictions(task)
            )
            # Resolved: the interval over test images excludes 0 and every seed's difference has the mean's sign
            # (the interval covers test images, not pretraining seeds: the seeds must agree as well).
            agree = all(np.sign(d) == np.sign(stats["mean"]) for d in stats["per_seed"])
            out.append(
                Comparison(
                    task=task,
                    layer=current.layer,
                    row=current.label,
                    against=against.label,
                    against_layer=against.layer,
                    difference=float(stats["mean"]),
                    sd=stats["sd"],
                    per_seed=list(stats["per_seed"]),
                    interval=list(stats["interval"]),
                    seeds_agree=bool(agree),
                    resolved=bool(stats["resolved"]) and bool(agree),
                    seeds=len(stats["per_seed"]),
                )
            )
    return out
