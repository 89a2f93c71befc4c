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

from ..baselines.registry import parse_baselines
from ..baselines.zeroshot import zero_shot
from ..core.errors import UsageError
from ..core.paths import slug
from ..data.task import get_task
from ..features.config import ExtractorConfig
from ..features.weights import resolve_weights
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


@dataclass(frozen=True)
class CurationExperiment:
    """What the experiment compares; the defaults are `make demo`."""

    policies: tuple[str, ...] = DEFAULT_POLICIES
    tasks: tuple[str, ...] = WORLD_TASK_NAMES
    baselines: str = DEFAULT_EXPERIMENT_BASELINES
    # Overrides of the trained baselines' budgets (see clipprobe.baselines.Budget), e.g. {"epochs": 8}.
    budget: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_EXPERIMENT_BUDGET))
    # Counterfactual attributes for the invariance columns (clipprobe.world.pairs); None: all of them, (): none.
    attributes: tuple[str, ...] | None = None
    pairs: int = 100
    zero_shot: bool = True
    # Other open_clip models probed on the same tasks, as MODEL or MODEL@WEIGHTS (a tag, a file, a folder): real CLIP rows.
    models: tuple[str, ...] = ()
    # The pretraining recipe; its `captions` is replaced by each policy in turn.
    recipe: PretrainConfig = PretrainConfig()
    world: WorldConfig = WorldConfig()
    seed: int = 0

    def __post_init__(self):
        object.__setattr__(self, "policies", tuple(dict.fromkeys(self.policies)))
        object.__setattr__(self, "tasks", tuple(dict.fromkeys(self.tasks)))
        if self.attributes is None:
            object.__setattr__(self, "attributes", tuple(list_counterfactuals()))

    def recipes(self) -> list[PretrainConfig]:
        return [
            dataclasses.replace(self.recipe, captions=policy, world=self.world, seed=self.seed)
            for policy in self.policies
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
            resolve_weights(*parse_model(spec))
        for attribute in self.attributes:
            COUNTERFACTUALS.get(attribute)
        if self.pairs < 2:
            raise UsageError(f"--pairs must be at least 2 (an unrelated pair needs two scenes), got {self.pairs}")

    def name(self) -> str:
        """The record's file name: the policies and the seed (a later run with other tasks or rows replaces it)."""
        return f"curation__{slug('+'.join(self.policies))}__seed{self.seed}"

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
        }


def parse_model(spec: str) -> tuple[str, str | None]:
    """`ViT-B-32@openai` -> ("ViT-B-32", "openai"); `hf-hub:ORG/NAME` -> (spec, None): the model's own default weights."""
    model, _, weights = spec.partition("@")
    return model, weights or None


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
    baselines = parse_baselines(experiment.baselines, experiment.budget)
    rows: list[dict[str, Any]] = []
    timings: dict[str, float] = {}

    def done(outcome):
        if on_result is not None:
            on_result(*outcome)
        return outcome

    def embedding_rows(config: ExtractorConfig, kind: str, policy: str | None) -> None:
        """A frozen embedding's rows: its probe on every task with its invariance scores, then its zero-shot row."""
        probes = [done(probe(task, config, results_dir=results_dir, refresh=refresh)) for task in tasks]
        rows.append(
            _row(experiment.tasks, probes, kind, policy, _invariance(experiment, config, invariance_dir, refresh))
        )
        if experiment.zero_shot:
            shots = [done(zero_shot(task, config, results_dir, refresh=refresh)) for task in tasks]
            rows.append(_row(experiment.tasks, shots, kind, policy, None))

    for recipe in experiment.recipes():
        stage = time.perf_counter()
        weights = policy_weights(recipe)  # trained here on first use, then loaded from the cache
        say(f"Caption policy {recipe.captions}: mini-clip weights {weights.tag}")
        embedding_rows(
            ExtractorConfig(model=recipe.model, pretrained=weights.tag, seed=experiment.seed),
            "pretrained",
            recipe.captions,
        )
        timings[f"policy {recipe.captions}"] = round(time.perf_counter() - stage, 2)

    for spec in experiment.models:
        stage = time.perf_counter()
        say(f"Model {spec}")
        model, weights = parse_model(spec)
        embedding_rows(ExtractorConfig(model=model, pretrained=weights, seed=experiment.seed), "model", None)
        timings[f"model {spec}"] = round(time.perf_counter() - stage, 2)

    reference = ExtractorConfig(model=experiment.recipe.model, seed=experiment.seed)
    for baseline, option in baselines:
        stage = time.perf_counter()
        say(f"Baseline {baseline.name}{':' + option if option else ''}")
        outcomes = [
            done(baseline.run(task, reference, results_dir, option=option, budget=experiment.budget, refresh=refresh))
            for task in tasks
        ]
        # Probe controls have an embedding of their own, whose invariance is measured like a policy model's.
        configure = getattr(baseline, "configure", None)
        invariance = _invariance(experiment, configure(reference), invariance_dir, refresh) if configure else None
        rows.append(_row(experiment.tasks, outcomes, "baseline", None, invariance))
        timings[f"baseline {baseline.name}"] = round(time.perf_counter() - stage, 2)

    record = {
        "kind": EXPERIMENT_KIND,
        "name": experiment.name(),
        "design": experiment.describe(),
        "tasks": list(experiment.tasks),
        "attributes": list(experiment.attributes),
        "rows": rows,
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


def _row(tasks: tuple[str, ...], outcomes: list[Outcome], kind: str, policy: str | None, invariance) -> dict[str, Any]:
    """One headline row: a representation and method, its balanced accuracy per task (keyed by the experiment's task
    names; a non-default world adds a suffix to the names in the result files), its invariance scores."""
    first = outcomes[0][0]
    return {
        "representation": first.representation,
        "method": first.method,
        "kind": kind,
        "policy": policy,
        "descriptive_fraction": descriptive_fraction(policy) if policy is not None else None,
        "tasks": {
            name: {
                "balanced_accuracy": record.metrics["balanced_accuracy"],
                "interval": record.metrics.get("intervals", {}).get("balanced_accuracy"),
                "chance": 1 / len(record.classes),
                "n_test": record.metrics["n"],
                "result": str(path),
            }
            for name, (record, path) in zip(tasks, outcomes, strict=True)
        },
        "invariance": invariance,
    }
