"""The curation experiment: one model pretrained per caption policy, probed on every world task beside the baselines.

Same world, recipe and seed for every policy; only the captions differ. Each stage reuses what is stored
(built-in weights by recipe fingerprint, features by content key, results and invariance scores by key), so a
re-run after a crash, or with one more policy, does only the new work. The headline table (rows =
representations, columns = tasks and invariance scores) is written to `<results>/experiments/` and rendered
by `clipprobe report`."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..baselines.registry import parse_baselines
from ..baselines.zeroshot import zero_shot
from ..core.errors import UsageError
from ..core.paths import slug
from ..data.task import get_task
from ..features.config import LAYERS, ExtractorConfig, check_choice
from ..features.weights import check_weights, parse_model_spec
from ..probes.intervals import seed_pooled_statistics
from ..probes.probe import Outcome, probe
from ..results import DEFAULT_RESULTS_DIR, EXPERIMENTS_FOLDER, provenance, write_document
from .captions import descriptive_fraction, get_caption_policy
from .invariance import DEFAULT_INVARIANCE_DIR, measure_invariance
from .pairs import COUNTERFACTUALS, list_counterfactuals
from .pretrain import PretrainConfig, policy_weights
from .report import EXPERIMENT_KIND, EXPERIMENT_SCHEMA_VERSION
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
    # Counterfactual attributes for the invariance columns (clipprobe.dashcam.pairs); None: all of them, (): none.
    attributes: tuple[str, ...] | None = None
    pairs: int = 100
    zero_shot: bool = True
    # Other open_clip models probed on the same tasks, as MODEL or MODEL@WEIGHTS (a tag, a file, a folder): real CLIP rows.
    models: tuple[str, ...] = ()
    # The pretraining recipe; its `captions` is replaced by each policy in turn.
    recipe: PretrainConfig = PretrainConfig()
    world: WorldConfig = WorldConfig()
    seed: int = 0
    # Pretraining seeds seed .. seed + seeds - 1: every policy is pretrained, and every baseline trained, once each.
    seeds: int = 1
    # Where in each frozen image tower the tasks are probed (clipprobe.features.config.LAYERS).
    layers: tuple[str, ...] = DEFAULT_EXPERIMENT_LAYERS

    def __post_init__(self):
        object.__setattr__(self, "policies", tuple(dict.fromkeys(self.policies)))
        object.__setattr__(self, "tasks", tuple(dict.fromkeys(self.tasks)))
        object.__setattr__(self, "layers", tuple(dict.fromkeys(self.layers)))
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
        """Every name checked before any work: policies, tasks, baselines and budget, models, attributes."""
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
        parse_baselines(self.baselines, self.budget)
        for spec in self.models:
            check_weights(*parse_model_spec(spec))
        for attribute in self.attributes:
            COUNTERFACTUALS.get(attribute)
        if self.seed < 0:
            raise UsageError(f"--seed must be a whole number 0 or more, got {self.seed}")
        if self.pairs < 2:
            raise UsageError(f"--pairs must be at least 2 (an unrelated pair needs two scenes), got {self.pairs}")
        if self.seeds < 1:
            raise UsageError(f"--seeds must be at least 1, got {self.seeds}")
        if not self.layers:
            raise UsageError(f"--layers needs at least one layer. Available: {', '.join(LAYERS)}")
        for layer in self.layers:
            check_choice("layer", layer, LAYERS)

    def name(self) -> str:
        """The record's file name: the policies and the seed (a later run with other tasks or rows replaces it)."""
        seeds = f"seed{self.seed}" if self.seeds == 1 else f"seeds{self.seed}-{self.seed + self.seeds - 1}"
        return f"curation__{slug('+'.join(self.policies))}__{seeds}"

    def describe(self) -> dict[str, Any]:
        return {
            "policies": list(self.policies),
            "tasks": list(self.tasks),
            "baselines": self.baselines,
            "budget": dict(self.budget),
            "attributes": list(self.attributes),
            "pairs": self.pairs,
            "zero_shot": self.zero_shot,
            "models": list(self.models),
            "recipe": {
                k: v for k, v in dataclasses.asdict(self.recipe).items() if k not in ("captions", "world", "seed")
            },
            "world": self.world.fingerprint(),
            "seed": self.seed,
            "seeds": self.seeds,
            "layers": list(self.layers),
        }


def run_curation(
    experiment: CurationExperiment | None = None,
    results_dir: Path = DEFAULT_RESULTS_DIR,
    invariance_dir: Path = DEFAULT_INVARIANCE_DIR,
    refresh: bool = False,
    on_result: Callable[..., None] | None = None,
    on_stage: Callable[[str], None] | None = None,
) -> tuple[dict[str, Any], Path]:
    """Pretrain (or reuse) one model per policy, extract, probe every task, score invariance, run the baselines;
    write the headline table as `<results_dir>/experiments/<name>.json` and return (record, path).

    `refresh` recomputes results and scores (not weights or features: delete them from the cache for that).
    `on_result(record, path)` is called for each probe or baseline result, `on_stage(text)` at each stage."""
    experiment = experiment or CurationExperiment()
    experiment.check()
    say = on_stage or (lambda text: None)
    started = time.perf_counter()
    tasks = [with_world(get_task(name), experiment.world) for name in experiment.tasks]
    labels = {name: task.labels(task.source.load()["test"]) for name, task in zip(experiment.tasks, tasks)}
    baselines = parse_baselines(experiment.baselines, experiment.budget)
    seeds = list(experiment.seed_range())
    rows: list[_Row] = []
    timings: dict[str, float] = {}

    def done(outcome):
        if on_result is not None:
            on_result(*outcome)
        return outcome

    def row(label: str, method: str, kind: str, policy: str | None, layer: str | None) -> _Row:
        key = (label, method, layer)
        found = next((r for r in rows if r.key == key), None)
        if found is None:
            found = _Row(label, method, kind, policy, layer)
            rows.append(found)
        return found

    def embedding_rows(config: ExtractorConfig, label: str, kind: str, policy: str | None) -> None:
        """A frozen embedding's rows for one seed: its probe on every task at every layer, its invariance scores
        (on the final embedding), then its zero-shot row."""
        for layer in experiment.layers:
            at_layer = dataclasses.replace(config, layer=layer)
            outcomes = [done(probe(task, at_layer, results_dir=results_dir, refresh=refresh)) for task in tasks]
            invariance = _invariance(experiment, at_layer, invariance_dir, refresh) if layer == "embedding" else None
            row(label, outcomes[0][0].method, kind, policy, layer).add(experiment.tasks, outcomes, invariance)
        if experiment.zero_shot:
            config = dataclasses.replace(config, layer="embedding")
            outcomes = [done(zero_shot(task, config, results_dir, refresh=refresh)) for task in tasks]
            row(label, "zero-shot", kind, policy, "embedding").add(experiment.tasks, outcomes, None)

    for seed in seeds:
        for recipe in experiment.recipes(seed):
            stage = time.perf_counter()
            weights = policy_weights(recipe)  # trained here on first use, then loaded from the cache
            say(f"Caption policy {recipe.captions}, seed {seed}: mini-clip weights {weights.tag}")
            config = ExtractorConfig(model=recipe.model, pretrained=weights.tag, seed=seed)
            embedding_rows(config, f"{recipe.model}/dashcam-{recipe.captions}", "pretrained", recipe.captions)
            timings[f"policy {recipe.captions} seed {seed}"] = round(time.perf_counter() - stage, 2)

        for spec in experiment.models:
            stage = time.perf_counter()
            say(f"Model {spec}, seed {seed}")
            model, weights = parse_model_spec(spec)
            embedding_rows(ExtractorConfig(model=model, pretrained=weights, seed=seed), spec, "model", None)
            timings[f"model {spec} seed {seed}"] = round(time.perf_counter() - stage, 2)

        reference = ExtractorConfig(model=experiment.recipe.model, seed=seed)
        for baseline, option in baselines:
            # The seeds are pretraining seeds: a baseline without pretrained weights runs once (the first seed),
            # except random weights, whose seed is their pretraining.
            if seed != seeds[0] and not getattr(baseline, "layered", False):
                continue
            stage = time.perf_counter()
            say(f"Baseline {baseline.name}{':' + option if option else ''}, seed {seed}")
            configure = getattr(baseline, "configure", None)
            if configure is None:  # trained on the labels: no layers, no embedding to score
                outcomes = [
                    done(
                        baseline.run(
                            task, reference, results_dir, option=option, budget=experiment.budget, refresh=refresh
                        )
                    )
                    for task in tasks
                ]
                first = outcomes[0][0]
                row(first.representation, first.method, "baseline", None, None).add(experiment.tasks, outcomes, None)
            else:  # a probe on other features, read at the experiment's layers where they have them
                layers = experiment.layers if baseline.layered else ("embedding",)
                for layer in layers:
                    config = dataclasses.replace(configure(reference), layer=layer)
                    outcomes = [done(probe(task, config, results_dir=results_dir, refresh=refresh)) for task in tasks]
                    # Its embedding's invariance is measured like a model's.
                    invariance = (
                        _invariance(experiment, config, invariance_dir, refresh) if layer == "embedding" else None
                    )
                    first = outcomes[0][0]
                    row(_base_name(first.representation), first.method, "baseline", None, layer).add(
                        experiment.tasks, outcomes, invariance
                    )
            timings[f"baseline {baseline.name} seed {seed}"] = round(time.perf_counter() - stage, 2)

    summaries = [r.summary(labels) for r in rows]
    record = {
        "kind": EXPERIMENT_KIND,
        "name": experiment.name(),
        "design": experiment.describe(),
        "tasks": list(experiment.tasks),
        "attributes": list(experiment.attributes),
        "seeds": seeds,
        "layers": list(experiment.layers),
        "rows": summaries,
        "comparisons": _comparisons(rows, labels, experiment),
        **provenance(started, stages=timings),
    }
    path = write_document(
        Path(results_dir) / EXPERIMENTS_FOLDER / f"{experiment.name()}.json", record, EXPERIMENT_SCHEMA_VERSION
    )
    return record, path


def _invariance(experiment: CurationExperiment, config: ExtractorConfig, invariance_dir: Path, refresh: bool):
    if not experiment.attributes:
        return None
    record, path = measure_invariance(
        list(experiment.attributes),
        config,
        n=experiment.pairs,
        world=experiment.world,
        seed=experiment.seed,
        results_dir=invariance_dir,
        refresh=refresh,
    )
    return {attribute: {"score": s["score"], "interval": s["interval"]} for attribute, s in record["scores"].items()}


def _base_name(representation: str) -> str:
    """ "mini-clip/random [tokens]" -> "mini-clip/random": the layer is a column of its own in the experiment."""
    return representation.split(" [", 1)[0]


@dataclass
class _Row:
    """One headline row while the experiment runs: a representation (all its seeds), a method, a layer, and per task
    the result of each seed (its test predictions kept for pooled and paired statistics)."""

    label: str
    method: str
    kind: str
    policy: str | None
    layer: str | None
    outcomes: dict[str, list[Outcome]] = field(default_factory=dict)
    invariance: list[dict[str, Any]] = field(default_factory=list)

    @property
    def key(self) -> tuple:
        return (self.label, self.method, self.layer)

    def add(self, tasks: tuple[str, ...], outcomes: list[Outcome], invariance: dict[str, Any] | None) -> None:
        for name, outcome in zip(tasks, outcomes, strict=True):
            self.outcomes.setdefault(name, []).append(outcome)
        if invariance is not None:
            self.invariance.append(invariance)

    def predictions(self, task: str) -> list[np.ndarray]:
        return [np.asarray(record.predictions) for record, _ in self.outcomes[task]]

    def summary(self, labels: dict[str, np.ndarray]) -> dict[str, Any]:
        """The row as the record stores it: per task the mean over seeds, their standard deviation, the interval
        pooled over seeds (test images resampled), each seed's value and result file; invariance likewise."""
        tasks = {}
        for name, outcomes in self.outcomes.items():
            classes = outcomes[0][0].classes
            stats = seed_pooled_statistics(labels[name], self.predictions(name), len(classes))
            tasks[name] = {
                "balanced_accuracy": stats["mean"],
                "sd": stats["sd"],
                "interval": stats["interval"],
                "per_seed": stats["per_seed"],
                "chance": 1 / len(classes),
                "n_test": outcomes[0][0].metrics["n"],
                "results": [str(path) for _, path in outcomes],
                "representations": [record.representation for record, _ in outcomes],
            }
        return {
            "representation": self.label,
            "method": self.method,
            "kind": self.kind,
            "policy": self.policy,
            "layer": self.layer,
            "descriptive_fraction": descriptive_fraction(self.policy) if self.policy is not None else None,
            "tasks": tasks,
            "invariance": _pooled_invariance(self.invariance) if self.invariance else None,
        }


def _pooled_invariance(per_seed: list[dict[str, Any]]) -> dict[str, Any]:
    """Invariance scores over seeds: their mean, sample standard deviation and each seed's score and interval
    (one seed: its score and interval as they are)."""
    pooled = {}
    for attribute in per_seed[0]:
        scores = [s[attribute]["score"] for s in per_seed]
        if any(score is None for score in scores):
            pooled[attribute] = {"score": None, "sd": None, "interval": None, "per_seed": scores}
            continue
        values = np.asarray(scores, dtype=np.float64)
        pooled[attribute] = {
            "score": float(values.mean()),
            "sd": float(values.std(ddof=1)) if len(values) > 1 else None,
            "interval": per_seed[0][attribute]["interval"] if len(values) == 1 else None,
            "per_seed": [float(v) for v in values],
            "ratio": [s[attribute].get("ratio") for s in per_seed],
        }
    return pooled


def _comparisons(rows: list[_Row], labels: dict[str, np.ndarray], experiment: CurationExperiment) -> list[dict]:
    """The paired differences the conclusions rest on, per task and layer, combined across seeds (paired seed by
    seed; test images resampled together): each policy against salient captions, each frozen representation
    against the CNN trained on the labels, and each policy against random weights at the same layer."""
    probes = [r for r in rows if r.method == "linear-probe" and r.kind in ("pretrained", "model")]
    by_key = {r.key: r for r in rows}
    cnn = next((r for r in rows if r.method == "supervised-cnn"), None)
    pairs = []
    for current in probes:
        salient = by_key.get((f"{experiment.recipe.model}/dashcam-salient", "linear-probe", current.layer))
        if current.policy not in (None, "salient") and salient is not None:
            pairs.append((current, salient))
        random = next(
            (r for r in rows if r.kind == "baseline" and r.label.endswith("/random") and r.layer == current.layer), None
        )
        if random is not None:
            pairs.append((current, random))
        if cnn is not None:
            pairs.append((current, cnn))
    out = []
    for current, against in pairs:
        for task in experiment.tasks:
            if task not in current.outcomes or task not in against.outcomes:
                continue
            n_classes = len(current.outcomes[task][0][0].classes)
            stats = seed_pooled_statistics(
                labels[task], current.predictions(task), n_classes, against=against.predictions(task)
            )
            # Resolved: the interval over test images excludes 0 and every seed's difference has the mean's sign
            # (the interval covers test images, not pretraining seeds: the seeds must agree as well).
            agree = all(np.sign(d) == np.sign(stats["mean"]) for d in stats["per_seed"])
            out.append(
                {
                    "task": task,
                    "layer": current.layer,
                    "row": current.label,
                    "against": against.label,
                    "against_layer": against.layer,
                    "difference": stats["mean"],
                    "sd": stats["sd"],
                    "per_seed": stats["per_seed"],
                    "interval": stats["interval"],
                    "seeds_agree": agree,
                    "resolved": stats["resolved"] and agree,
                    "seeds": len(stats["per_seed"]),
                }
            )
    return out
