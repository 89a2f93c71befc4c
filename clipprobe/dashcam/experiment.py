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

from ..baselines.registry import Baseline, get_baseline
from ..core.defaults import EXPERIMENTS_FOLDER, PRECISION, RESULTS_DIR, SENSITIVITY_DIR
from ..core.errors import UsageError
from ..core.kinds import RowKind, SeedPolicy
from ..core.paths import slug
from ..data.task import get_task
from ..features.config import ALL_TOKENS, ExtractorConfig
from ..features.weights import check_weights, parse_model_spec
from ..jobs.base import Job
from ..jobs.probe import ProbeJob
from ..jobs.zeroshot import ZeroShotJob
from ..results import Provenance, Result, RunInfo, write_document
from ..runner import Model, RunPlan, run_jobs
from ..stats.seeds import paired_difference, within_range
from .blindness import blindness_table
from .captions import descriptive_fraction, get_caption_policy
from .contrasts import Series, exploratory_contrasts, primary_contrasts, row_cell
from .pairs import COUNTERFACTUALS, list_counterfactuals
from .preregistration import MATCHED_PROBE, PREREGISTRATION_VERSION
from .pretrain import PretrainConfig, policy_weights
from .records import (
    EXPERIMENT_KIND,
    EXPERIMENT_SCHEMA_VERSION,
    Design,
    ExperimentRecord,
    ExperimentRow,
    SensitivityCell,
)
from .sensitivity import BLIND_THRESHOLD, check_threshold, measure_sensitivity
from .tasks import SUITE_TASKS, WORLD_TASKS, DashcamWorld, with_world
from .world import WorldConfig

# Salient captions (the essay's case), descriptive ones, a little of both, and descriptive captions that never name
# the light: it separates "the light is never named" from "there are only a few distinct salient captions".
DEFAULT_POLICIES = ("salient", "descriptive", "mixed:0.1", "attribute-dropout:light_state")
# Every baseline of `clipprobe probe`, with the orbit model over horizontal flips alone: the cheapest group that
# shows what a hard invariance costs (pedestrian-side) and what it keeps (everything else).
DEFAULT_EXPERIMENT_BASELINES = "cnn,orbit-cnn:hflip,pixels,random"
# The trained baselines' budget is `clipprobe probe`'s (24 epochs, the epoch chosen on validation), except that the
# orbit model sees one random flip per training image per step (its predictions still average the whole orbit, so
# they are exactly flip-invariant): the training cost of the plain CNN, for the same epochs.
DEFAULT_EXPERIMENT_BUDGET = {"orbit_train_elements": 1}
# Pretraining seeds (the unit of the experiment's inference) and the trained baselines' own seeds.
DEFAULT_EXPERIMENT_SEEDS = 5
DEFAULT_BASELINE_SEEDS = 3
WORLD_TASK_NAMES = tuple(name for name, *_ in WORLD_TASKS)
# The layers probed by default: where the pooled embedding loses information, if it does, shows between them.
DEFAULT_EXPERIMENT_LAYERS = ("embedding", "pre-projection", "tokens")
# Every layer read by the linear probe and by the linear probe on PCA to the embedding's width (layers compared at
# the same capacity); the MLP on the light's task at the embedding (absent, or present but not linear?).
DEFAULT_EXPERIMENT_PROBES = ("linear", MATCHED_PROBE)
DEFAULT_MLP_TASKS = ("traffic-light",)
# Tasks on which every token is also read by the attentive probe (random weights and the models of the policies
# below, every seed): the light and the pedestrian's side, the tasks of the pre-registered layer family.
DEFAULT_ATTENTIVE_TASKS = ("traffic-light", "pedestrian-side")
# The policies whose models the attentive probe reads: those the layer family compares (the probe costs more than
# every other row of the experiment together; other policies' attentive rows would be exploratory only).
DEFAULT_ATTENTIVE_POLICIES = ("salient", "descriptive")
# The blind-pattern suite's rows beside the experiment's tasks: each suite task the experiment does not probe in
# full is read at the embedding by the linear probe (every model and random weights, every seed), beside the CNN
# (its own seeds) and zero-shot: the rows of the blindness table and of the pre-registered pattern family.
SUITE_BASELINES = ("cnn", "random")


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
    # The cosine similarity above which a counterfactual pair counts as blind (the blindness table's rate).
    blind_threshold: float = BLIND_THRESHOLD
    zero_shot: bool = True
    # Other open_clip models probed on the same tasks, as MODEL or MODEL@WEIGHTS (a tag, a file, a folder): real CLIP rows.
    models: tuple[str, ...] = ()
    # The pretraining recipe; its `captions` is replaced by each policy in turn.
    recipe: PretrainConfig = PretrainConfig()
    world: WorldConfig = WorldConfig()
    seed: int = 0
    # Pretraining seeds seed .. seed + seeds - 1: every policy is pretrained once per seed (and random weights drawn
    # once per seed); the baselines with seeds of their own (the trained networks, pixels) run at the first
    # `baseline_seeds` of them, their seeds unrelated to the pretraining seeds.
    seeds: int = DEFAULT_EXPERIMENT_SEEDS
    baseline_seeds: int = DEFAULT_BASELINE_SEEDS
    # Where in each frozen image tower the tasks are probed (clipprobe.features.config.LAYERS), and by what.
    layers: tuple[str, ...] = DEFAULT_EXPERIMENT_LAYERS
    probes: tuple[str, ...] = DEFAULT_EXPERIMENT_PROBES
    # Tasks on which each model's embedding (and random weights') is also read by the MLP probe, at every seed.
    mlp_tasks: tuple[str, ...] = DEFAULT_MLP_TASKS
    # Tasks on which every model's tokens (and random weights') are also read by the attentive probe, every seed;
    # None: those of DEFAULT_ATTENTIVE_TASKS that the experiment has.
    attentive_tasks: tuple[str, ...] | None = None
    # The policies whose models the attentive probe reads; None: those of DEFAULT_ATTENTIVE_POLICIES the experiment has.
    attentive_policies: tuple[str, ...] | None = None
    # Tasks of the blind-pattern suite (clipprobe.dashcam.tasks.SUITE_TASKS) read at the embedding only, beside the
    # CNN, random weights and zero-shot; None: every suite task not among `tasks`; (): none.
    suite_tasks: tuple[str, ...] | None = None
    # Run only part K of N of the work (K from 0): each pretraining seed's models, and each seed of the baselines,
    # go to one part; parts run as separate processes on shared storage (a Slurm array), and a last call without
    # `part` assembles the record from what they stored. None: everything.
    part: tuple[int, int] | None = None
    # The precision of every frozen row (the experiment is the reference run: fp32 unless asked; `auto` is resolved
    # by the plan exactly as for `clipprobe probe`).
    precision: str = PRECISION

    def __post_init__(self):
        object.__setattr__(self, "policies", tuple(dict.fromkeys(self.policies)))
        object.__setattr__(self, "tasks", tuple(dict.fromkeys(self.tasks)))
        object.__setattr__(self, "layers", tuple(dict.fromkeys(self.layers)))
        object.__setattr__(self, "models", tuple(dict.fromkeys(self.models)))
        object.__setattr__(self, "probes", tuple(dict.fromkeys(self.probes)))
        object.__setattr__(self, "mlp_tasks", tuple(dict.fromkeys(self.mlp_tasks)))
        if self.attentive_tasks is None:
            object.__setattr__(self, "attentive_tasks", tuple(t for t in DEFAULT_ATTENTIVE_TASKS if t in self.tasks))
        object.__setattr__(self, "attentive_tasks", tuple(dict.fromkeys(self.attentive_tasks or ())))
        for name in ("attentive_policies", "suite_tasks"):  # None stays None: resolved against the other fields
            if (value := getattr(self, name)) is not None:
                object.__setattr__(self, name, tuple(dict.fromkeys(value)))
        if self.attributes is None:
            object.__setattr__(self, "attributes", tuple(list_counterfactuals()))

    def reading_policies(self) -> tuple[str, ...]:
        """The policies whose models the attentive probe reads (by default those of the layer family it has)."""
        if self.attentive_policies is None:
            return tuple(p for p in DEFAULT_ATTENTIVE_POLICIES if p in self.policies)
        return self.attentive_policies

    def suite(self) -> tuple[str, ...]:
        """The suite's tasks read at the embedding only: those asked for (by default every suite task) that the
        experiment does not probe in full."""
        asked = SUITE_TASKS if self.suite_tasks is None else self.suite_tasks
        return tuple(t for t in asked if t not in self.tasks)

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
        if not self.policies and not self.models:
            raise UsageError("--policies needs at least one caption policy")
        if not self.all_tasks():
            raise UsageError(f"--tasks needs at least one task. Available: {', '.join(WORLD_TASK_NAMES)}")
        for policy in self.policies:
            get_caption_policy(policy)
        for task in self.all_tasks():
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
        check_threshold(self.blind_threshold)
        if self.seeds < 1:
            raise UsageError(f"--seeds must be at least 1, got {self.seeds}")
        for flag, task in [
            *(("--mlp-tasks", t) for t in self.mlp_tasks),
            *(("--attentive-tasks", t) for t in self.attentive_tasks or ()),
        ]:
            if task not in self.tasks:
                raise UsageError(f"{flag}: '{task}' is not one of the experiment's tasks ({', '.join(self.tasks)})")
        for policy in self.reading_policies():
            if policy not in self.policies:
                raise UsageError(
                    f"--attentive-policies: '{policy}' is not one of the experiment's policies ({', '.join(self.policies)})"
                )
        if self.part is not None and not 0 <= self.part[0] < self.part[1]:
            raise UsageError(f"--part K/N needs 0 <= K < N, got {self.part[0]}/{self.part[1]}")
        if self.baseline_seeds < 1:
            raise UsageError(f"--baseline-seeds must be at least 1, got {self.baseline_seeds}")

    def model_names(self) -> list[tuple[str, str | None]]:
        """(row name, caption policy) of each model of the plan, in order: the policies', then the other models'."""
        names: list[tuple[str, str | None]] = [(f"{self.recipe.model}/dashcam-{p}", p) for p in self.policies]
        return names + [(spec, None) for spec in self.models]

    def plan(self, results_dir: Path = RESULTS_DIR, refresh: bool = False) -> RunPlan:
        """The run plan: each policy's model per seed (its weights registered, pretrained when first loaded), the
        other models, the baselines (zero-shot too, unless left out), the layers and probes, every world task."""
        return self._plan(results_dir, refresh)

    def mlp_plan(self, results_dir: Path = RESULTS_DIR, refresh: bool = False) -> RunPlan | None:
        """The MLP's plan: every model's embedding and random weights' on `mlp_tasks`, at every seed."""
        if not self.mlp_tasks:
            return None
        random = "random" if "random" in [b.strip() for b in self.baselines.split(",")] else "none"
        return self._plan(results_dir, refresh, self.mlp_tasks, ("mlp",), ("embedding",), random, zero_shot=False)

    def attentive_plan(self, results_dir: Path = RESULTS_DIR, refresh: bool = False) -> RunPlan | None:
        """The attentive probe's plan: every model's tokens and random weights' on `attentive_tasks`, every seed
        (the probe reads the all-tokens layer whatever the plan's layer)."""
        if not self.attentive_tasks:
            return None
        random = "random" if "random" in [b.strip() for b in self.baselines.split(",")] else "none"
        return self._plan(
            results_dir, refresh, self.attentive_tasks, ("attentive",), ("embedding",), random, zero_shot=False
        )

    def baselines_declared(self) -> dict[str, Baseline]:
        """Every baseline of the experiment by name, as registered, in the order of `baselines` (zero-shot last, as
        the plans add it): what each declares (its seeds) without building the plans again."""
        names = (
            [] if self.baselines.strip() == "none" else [b.strip().partition(":")[0] for b in self.baselines.split(",")]
        )
        names += ["zero-shot"] if self.zero_shot else []
        return {name: get_baseline(name) for name in dict.fromkeys(name for name in names if name)}

    def suite_plan(self, results_dir: Path = RESULTS_DIR, refresh: bool = False) -> RunPlan | None:
        """The blind-pattern suite's plan: `suite_tasks` at the embedding, read by the linear probe (every model and
        random weights, every seed), beside the CNN (its own seeds) and zero-shot, where the experiment has them."""
        if not self.suite():
            return None
        chosen = [b.strip() for b in self.baselines.split(",") if b.strip().partition(":")[0] in SUITE_BASELINES]
        return self._plan(results_dir, refresh, self.suite(), ("linear",), ("embedding",), ",".join(chosen) or "none")

    def all_tasks(self) -> tuple[str, ...]:
        """The record's tasks: the experiment's, then the suite's read at the embedding only."""
        return (*self.tasks, *self.suite())

    def record_layers(self) -> list[str]:
        """The layers of the record's tables: the probed layers, then every token when the attentive probe ran."""
        return [*self.layers, *([ALL_TOKENS] if self.attentive_tasks and ALL_TOKENS not in self.layers else [])]

    def jobs(self, results_dir: Path = RESULTS_DIR, refresh: bool = False) -> list[Job]:
        """Every job of the experiment (of its part, when it has one), in order: the main plan's, then the MLP's,
        the attentive probe's and the blind-pattern suite's."""
        # The matched probe reads a layer at the embedding's width: on the embedding itself it is the plain probe
        # again (the same C, the same score), so the embedding is read by the plain probe alone.
        jobs = [
            job
            for job in (self.plan(results_dir, refresh).jobs() if self.tasks else ())
            if not (isinstance(job, ProbeJob) and job.probe.name == MATCHED_PROBE and job.origin.layer == "embedding")
        ]
        jobs += list(mlp.jobs()) if (mlp := self.mlp_plan(results_dir, refresh)) is not None else []
        if (attentive := self.attentive_plan(results_dir, refresh)) is not None:
            # Random weights, and the models of the attentive policies (the plan's models are the policies' in order).
            read = {index for index, policy in enumerate(self.policies) if policy in self.reading_policies()}
            jobs += [job for job in attentive.jobs() if job.origin.baseline is not None or job.origin.model in read]
        jobs += list(suite.jobs()) if (suite := self.suite_plan(results_dir, refresh)) is not None else []
        if self.part is None:
            return jobs
        k, n = self.part
        units = sorted({(job.origin.seed, job.origin.baseline is not None) for job in jobs})
        mine = {unit for index, unit in enumerate(units) if index % n == k}
        return [job for job in jobs if (job.origin.seed, job.origin.baseline is not None) in mine]

    def _plan(
        self,
        results_dir: Path,
        refresh: bool,
        tasks: tuple[str, ...] | None = None,
        probes: tuple[str, ...] | None = None,
        layers: tuple[str, ...] | None = None,
        baselines: str | None = None,
        zero_shot: bool | None = None,
    ) -> RunPlan:
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
        spec = self.baselines if baselines is None else baselines
        chosen = [] if spec.strip() == "none" else [spec]
        if self.zero_shot if zero_shot is None else zero_shot:
            chosen.append("zero-shot")
        return RunPlan.build(
            [with_world(get_task(name), self.world) for name in (tasks or self.tasks)],
            probes=probes or self.probes,
            baselines=",".join(chosen) or "none",
            budget=self.budget,
            seeds=seeds,
            layers=layers or self.layers,
            models=models,
            results_dir=results_dir,
            refresh=refresh,
            own_seeds=min(self.baseline_seeds, self.seeds),
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
            blind_threshold=self.blind_threshold,
            zero_shot=self.zero_shot,
            models=list(self.models),
            recipe={k: v for k, v in dataclasses.asdict(self.recipe).items() if k not in ("captions", "world", "seed")},
            world=self.world.fingerprint(),
            seed=self.seed,
            seeds=self.seeds,
            baseline_seeds=min(self.baseline_seeds, self.seeds),
            layers=list(self.layers),
            probes=list(self.probes),
            mlp_tasks=list(self.mlp_tasks),
            attentive_tasks=list(self.attentive_tasks or ()),
            attentive_policies=list(self.reading_policies()),
            suite_tasks=list(self.suite()),
            precision=self.precision,
        )


def run_curation(
    experiment: CurationExperiment | None = None,
    results_dir: Path = RESULTS_DIR,
    sensitivity_dir: Path = SENSITIVITY_DIR,
    refresh: bool = False,
    on_result: Callable[[Result, Path], None] | None = None,
    on_stage: Callable[[str], None] | None = None,
    write: bool = True,
) -> tuple[ExperimentRecord, Path | None]:
    """Pretrain (or reuse) one model per policy and seed, then run the plan (clipprobe.runner: every task probed at
    every layer beside the baselines), score sensitivity on the embeddings, and write the headline table as
    `<results_dir>/experiments/<name>.json`; returns (record, path). With `experiment.part`, only that part's
    jobs run and nothing but their results is written (path None): the record of a part covers part of the
    seeds, so the call without a part, once every part is done, writes it from what they stored.

    `refresh` recomputes results and scores (not weights or features: delete them from the cache for that).
    `on_result(record, path)` is called for each probe or baseline result, `on_stage(text)` at each stage."""
    experiment = experiment or CurationExperiment()
    experiment.check()
    say = on_stage or (lambda text: None)
    started = time.perf_counter()
    jobs = experiment.jobs(results_dir, refresh)
    # The record keys tasks by the experiment's names ("traffic-light"), not by the tasks' names in the plans, which
    # record a changed world ("traffic-light[image_size=64]").
    tasks = [with_world(get_task(name), experiment.world) for name in experiment.all_tasks()]
    task_names = {task.name: name for task, name in zip(tasks, experiment.all_tasks())}
    labels = {task_names[task.name]: task.labels(task.source.load()["test"]) for task in tasks}
    names = experiment.model_names()
    baselines = experiment.baselines_declared()
    rows: dict[tuple[str, str, str | None], Series] = {}
    timings: dict[str, float] = {}
    scored: dict[ExtractorConfig, dict[str, SensitivityCell]] = {}
    stage, current = time.perf_counter(), None

    for job, (record, path) in run_jobs(jobs, Path(results_dir), refresh, on_result):
        origin = job.origin
        where = (origin.seed, origin.model, origin.baseline)
        if where != current:
            if current is not None:
                _lap(timings, _stage_name(current, names), stage)
            current, stage = where, time.perf_counter()
            say(_stage_name(current, names))
        row = _row_for(rows, job, record, names, baselines, experiment.layers)
        row.add(task_names[job.task.name], record, path)
        if experiment.attributes and isinstance(job, ProbeJob) and job.shots is None:
            # Scored once per embedding, on the row of the experiment's first probe (its linear probe by default).
            if job.config.layer == "embedding" and job.probe.name == experiment.probes[0]:
                if job.config not in scored:
                    scored[job.config] = _sensitivity(experiment, job.config, sensitivity_dir, refresh)
                row.sensitivity[origin.seed] = scored[job.config]
    if current is not None:
        _lap(timings, _stage_name(current, names), stage)

    ordered = sorted(rows.values(), key=lambda row: row.order)
    primary = primary_contrasts(ordered, labels)
    summaries = [_summary(r, labels) for r in ordered]
    document = ExperimentRecord(
        kind=EXPERIMENT_KIND,
        name=experiment.name(),
        design=experiment.describe(),
        tasks=list(experiment.all_tasks()),
        attributes=list(experiment.attributes or ()),
        seeds=list(experiment.seed_range()),
        layers=experiment.record_layers(),
        rows=summaries,
        preregistration=PREREGISTRATION_VERSION,
        primary=primary,
        exploratory=exploratory_contrasts(ordered, labels, primary),
        provenance=Provenance.now(),
        run=RunInfo.since(started, stages=timings),
        blindness=blindness_table(summaries, list(experiment.all_tasks())),
    )
    if experiment.part is not None or not write:  # a part stores its results; the call without a part writes
        return document, None
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
    rows: dict[tuple[str, str, str | None], Series],
    job: Job,
    record: Result,
    names: list[tuple[str, str | None]],
    baselines: dict[str, Baseline],
    layers: tuple[str, ...],
) -> Series:
    """The headline row a job's result belongs to, from what the job declares (its kind and origin in the plan).
    Rows are ordered by model (its probes, then its zero-shot row), then by baseline, then by layer."""
    origin = job.origin
    order_of = list(baselines)
    policy = None
    layer = job.config.layer if isinstance(job, (ProbeJob, ZeroShotJob)) else None
    depth = layers.index(layer) if layer in layers else 0
    if origin.baseline is None or job.kind is RowKind.ZERO_SHOT:  # the model's own rows: its probes, its zero-shot
        number = origin.model if origin.model is not None else 0
        label, policy = names[number]
        order: tuple[int, ...] = (0, number, job.kind is RowKind.ZERO_SHOT, depth)
    else:
        order = (1, order_of.index(origin.baseline) if origin.baseline in order_of else len(order_of), 0, depth)
        if job.kind is RowKind.CONTROL and origin.model is not None:  # a control on the model's architecture
            label = f"{record.model}/{origin.baseline}"
        else:  # a control or a network that owes nothing to the model: its own row name
            label = record.representation
    key = (label, record.method, layer)
    if key not in rows:
        # A row's seeds are the pretraining seeds unless it declares seeds of its own (a trained network, pixels).
        declared = baselines[origin.baseline].seeds if origin.baseline in baselines else SeedPolicy.PRETRAINING
        paired = job.kind is RowKind.ZERO_SHOT or declared is not SeedPolicy.OWN
        probe = job.probe.name if isinstance(job, ProbeJob) else None
        rows[key] = Series(label, record.method, job.kind, origin.baseline, policy, layer, paired, probe, order)
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
        threshold=experiment.blind_threshold,
    )
    return {
        attribute: SensitivityCell(
            score=score.stats.score,
            sd=None,
            interval=score.stats.interval,
            per_seed=[score.stats.score],
            ratio=[score.stats.ratio],
            numerator=[score.stats.numerator],
            per_seed_interval=[score.stats.interval],
            blind_pair_rate=score.stats.blind_pair_rate,
            blind_pair_interval=score.stats.blind_pair_interval,
            blind_per_seed=[score.stats.blind_pair_rate],
            unrelated_blind_rate=[score.stats.unrelated_blind_rate],
            threshold=score.stats.threshold,
        )
        for attribute, score in record.scores.items()
    }


def _summary(series: Series, labels: dict[str, np.ndarray]) -> ExperimentRow:
    """A row as the record stores it: per task the mean over seeds, their sd, the mean's seed-level interval, each
    seed's value and result file; sensitivity likewise."""
    return ExperimentRow(
        representation=series.label,
        method=series.method,
        kind=series.kind,
        policy=series.policy,
        layer=series.layer,
        descriptive_fraction=descriptive_fraction(series.policy) if series.policy is not None else None,
        tasks={task: row_cell(series, task, labels[task]) for task in series.results},
        sensitivity=_pooled_sensitivity(series.sensitivity) if series.sensitivity else None,
        baseline=series.baseline,
    )


def _pooled_sensitivity(per_seed: dict[int, dict[str, SensitivityCell]]) -> dict[str, SensitivityCell]:
    """Sensitivity scores over seeds: their mean, sd and a seed-level 95 % interval of the mean (Student's t over
    the seeds, not below 0; one seed: its score and bootstrap interval over pairs as they are), each seed's score
    and ratio."""
    seeds = sorted(per_seed)
    pooled = {}
    for attribute in per_seed[seeds[0]]:
        cells = [per_seed[s][attribute] for s in seeds]
        blind = _pooled_blind_rate(cells)
        scores = [c.score for c in cells]
        ratios = [c.ratio[0] if c.ratio else None for c in cells]
        numerators = [c.numerator[0] if c.numerator else None for c in cells]
        intervals = [c.per_seed_interval[0] if c.per_seed_interval else None for c in cells]
        if any(score is None for score in scores):
            pooled[attribute] = SensitivityCell(None, None, None, scores, ratios, numerators, intervals, **blind)
            continue
        values = np.asarray(scores, dtype=np.float64)
        interval = (
            cells[0].interval if len(values) == 1 else within_range(paired_difference(values).interval, high=None)
        )
        pooled[attribute] = SensitivityCell(
            score=float(values.mean()),
            sd=float(values.std(ddof=1)) if len(values) > 1 else None,
            interval=list(interval) if interval is not None else None,
            per_seed=[float(v) for v in values],
            ratio=ratios,
            numerator=numerators,
            per_seed_interval=intervals,
            **blind,
        )
    return pooled


def _pooled_blind_rate(cells: list[SensitivityCell]) -> dict[str, Any]:
    """The blind-pair rate over seeds: the mean of each seed's rate with a seed-level 95 % interval within 0 to 1
    (one seed: its Wilson interval over pairs), each seed's rate and the unrelated pairs' rate."""
    rates = [rate for c in cells for rate in c.blind_per_seed]
    if len(rates) != len(cells):  # a cell made without the rate
        return {}
    interval = cells[0].blind_pair_interval if len(rates) == 1 else within_range(paired_difference(rates).interval)
    return {
        "blind_pair_rate": float(np.mean(rates)),
        "blind_pair_interval": list(interval) if interval is not None else None,
        "blind_per_seed": rates,
        "unrelated_blind_rate": [rate for c in cells for rate in c.unrelated_blind_rate],
        "threshold": cells[0].threshold,
    }
