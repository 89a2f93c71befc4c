"""The pipeline as Python calls: data -> features (cached) -> probes and baselines -> result records.

`RunPlan.build` checks every name, option and number of a run once (tasks, models, probes, baselines and their
budget, shots, seeds, layers) before anything runs; `RunPlan.jobs` turns it into jobs (clipprobe.jobs), one per
row, from what each baseline declares; `run(plan)` runs them. The runner is the only thing that runs a job, always
in the same steps: resolve -> key -> claim (the result file's lock; a stored result with the same key answers) ->
compute -> record. `extract`, `extract_shard` and `merge` fill the feature cache; `probe`, `run_baseline` and
`zero_shot` run one row."""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .baselines.registry import (
    BASELINES,
    DEFAULT_BASELINES,
    Baseline,
    LabelBaseline,
    ProbeControl,
    PromptBaseline,
    get_baseline,
    parse_baselines,
)
from .baselines.training import Budget, parse_budget
from .core.defaults import AUTO, RESULTS_DIR
from .core.errors import UsageError
from .core.kinds import RowKind, SeedPolicy
from .data.task import PROBE_SPLITS, Task
from .data.taskfile import resolve_task
from .features import extract as extraction
from .features.cache import FeatureCache, FeatureSet
from .features.chunks import DEFAULT_CHUNK_ROWS, Shard, parse_shard
from .features.config import LAYERS, ExtractorConfig, check_choice
from .features.devices import check_device
from .jobs.base import Job, Origin
from .jobs.precision import resolve_precision
from .jobs.probe import ProbeJob
from .jobs.trained import TrainedJob
from .jobs.zeroshot import ZeroShotJob
from .probes.registry import DEFAULT_PROBES, Probe, get_probe, parse_probes
from .probes.shots import Shots, parse_shots
from .results import Identity, Result, check_results_folder, claim

# The task whose data `extract` reads when given none: the dashcam world, which all its tasks share.
DEFAULT_EXTRACT_TASK = "traffic-light"

Outcome = tuple[Result, Path]


def extract(
    task: str | Task = DEFAULT_EXTRACT_TASK,
    config: ExtractorConfig | None = None,
    cache: FeatureCache | None = None,
    refresh: bool = False,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> FeatureSet:
    """Cache features for every probe split of `task`'s data (a name, a task file or a Task).

    Extraction goes in chunks of `chunk_rows` rows: a killed run resumes where it stopped, and the chunks that
    shards (`extract_shard`) wrote are assembled rather than recomputed."""
    task = resolve_task(task)
    config = resolve_precision(config or ExtractorConfig(), task)
    features = extraction.extract_features(task.source, config, cache=cache, refresh=refresh, chunk_rows=chunk_rows)
    task.source.skipped()  # even when every split was cached: unreadable images are reported, or fail with strict
    return features


def extract_shard(
    shard: str | Shard,
    task: str | Task = DEFAULT_EXTRACT_TASK,
    config: ExtractorConfig | None = None,
    cache: FeatureCache | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> dict[str, int]:
    """Shard I of N ("I/N") of `extract`: this process's chunks of every missing split; `merge` assembles them.

    Returns the chunks computed per split (0 for a split whose chunks were all there already)."""
    shard = parse_shard(shard) if isinstance(shard, str) else shard
    task = resolve_task(task)
    config = resolve_precision(config or ExtractorConfig(), task)
    return extraction.extract_shard(task.source, config, shard, cache=cache, chunk_rows=chunk_rows)


def merge(
    task: str | Task = DEFAULT_EXTRACT_TASK,
    config: ExtractorConfig | None = None,
    cache: FeatureCache | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> FeatureSet:
    """Assemble the shards' chunks into the feature cache, checking that every row is there exactly once."""
    task = resolve_task(task)
    config = resolve_precision(config or ExtractorConfig(), task)
    return extraction.merge_features(task.source, config, cache=cache, chunk_rows=chunk_rows)


@dataclass(frozen=True)
class Model:
    """One model of a plan: its extractor config at each seed of the plan, in seed order. A model pretrained once
    per seed (the curation experiment) has other weights at each seed; a fixed model has the same weights, and
    the seed is its probes' own (a few-shot sample, an MLP's initialisation)."""

    configs: tuple[ExtractorConfig, ...]

    @classmethod
    def seeded(cls, config: ExtractorConfig, seeds: Sequence[int]) -> Model:
        return cls(tuple(dataclasses.replace(config, seed=seed) for seed in seeds))


@dataclass(frozen=True)
class RunPlan:
    """One run, every part of it checked: build it with `RunPlan.build`, run it with `run`.

    For each task and seed, each model's probes (every probe kind, on the whole train split and each few-shot k, at
    each layer), then each baseline's rows as it declares them (clipprobe.baselines.registry): a control is probed
    like the model on its own features (at every layer if its features have layers); a network trained on the
    labels and zero-shot give one row each. A baseline whose row does not depend on the model (`uses_model` False)
    runs once, not once per model; its seed policy says whether it runs once per seed (`own`, `pretraining`) or
    once in all (`none`). `--precision auto` is resolved here, once per config and task, before any job is keyed."""

    tasks: tuple[Task, ...]
    models: tuple[Model, ...]
    probes: tuple[Probe, ...]
    baselines: tuple[tuple[Baseline, str | None], ...]
    budget: dict[str, Any]
    shots: tuple[Shots, ...]
    seeds: tuple[int, ...]
    # The layers every model (and every control whose features have layers) is probed at; None: each config's own.
    layers: tuple[str, ...] | None = None
    results_dir: Path = RESULTS_DIR
    refresh: bool = False
    cache: FeatureCache | None = None
    # How many of the plan's seeds a baseline with seeds of its own (`SeedPolicy.OWN`: a network trained on the
    # labels, pixels) runs at, from the first; None: every seed. Its seeds are unrelated to the models' seeds, so
    # its rows are compared with theirs unpaired.
    own_seeds: int | None = None

    @classmethod
    def build(
        cls,
        tasks: str | Task | Sequence[str | Task],
        config: ExtractorConfig | Sequence[ExtractorConfig] | None = None,
        probes: str | Sequence[str] = DEFAULT_PROBES,
        baselines: str | Sequence[str] = DEFAULT_BASELINES,
        budget: str | Mapping[str, Any] | None = None,
        shots: str | Sequence[Shots] | None = None,
        seeds: int | Sequence[int] = 1,
        results_dir: Path = RESULTS_DIR,
        refresh: bool = False,
        strict: bool = False,
        layers: Sequence[str] | None = None,
        models: Sequence[Model] | None = None,
        cache: FeatureCache | None = None,
        own_seeds: int | None = None,
    ) -> RunPlan:
        """Check and resolve everything (a typo in the last option fails before any work is done).

        `tasks`: names, task files or Tasks; `config` one extractor config or several (several models in one run,
        e.g. from `read_models_file`), each probed at seeds config.seed, config.seed + 1, ... (`seeds` of them; or
        the seeds themselves, a list); `models` instead gives each model's config per seed (a model pretrained per
        seed); `baselines` a spec such as "cnn,orbit-cnn:hflip,pixels" ("none": the probes alone); `budget`
        overrides fields of the trained baselines' own budgets ("epochs=40" or a dict; see
        clipprobe.baselines.training.Budget); `probes` "linear,mlp"; `shots` "1,2,4,8,16,all"; `layers` where every
        model is probed (default: each config's own); `strict`: the first unreadable image is an error instead of
        being skipped and counted; `own_seeds`: how many of the seeds the baselines with seeds of their own run at
        (default: all)."""
        overrides = parse_budget(budget) if isinstance(budget, str) or budget is None else dict(budget)
        chosen = tuple(parse_baselines(baselines, overrides))
        kinds = tuple(parse_probes(probes))
        ks = () if shots is None else tuple(parse_shots(shots))
        if isinstance(seeds, int):
            if seeds < 1:
                raise UsageError(f"--seeds must be at least 1, got {seeds}")
        elif not seeds:
            raise UsageError("Give at least one seed")
        if own_seeds is not None and own_seeds < 1:
            raise UsageError(f"--baseline-seeds must be at least 1, got {own_seeds}")
        if layers is not None:
            if not layers:
                raise UsageError(f"--layers needs at least one layer. Available: {', '.join(LAYERS)}")
            for layer in layers:
                check_choice("layer", layer, LAYERS)
            layers = tuple(dict.fromkeys(layers))
        task_list = [tasks] if isinstance(tasks, (str, Task)) else list(tasks)
        if not task_list:
            raise UsageError("Give at least one task")
        resolved = tuple(resolve_task(task, strict) for task in task_list)
        if models is None:
            configs = (config or ExtractorConfig(),) if not isinstance(config, Sequence) else tuple(config)
            if not configs:
                raise UsageError("Give at least one model")
            first = configs[0].seed
            seed_list = tuple(range(first, first + seeds)) if isinstance(seeds, int) else tuple(seeds)
            models = tuple(
                Model(tuple(dataclasses.replace(c, seed=c.seed + s - first) for s in seed_list)) for c in configs
            )
        else:
            models = tuple(models)
            if not models:
                raise UsageError("Give at least one model")
            seed_list = tuple(range(seeds)) if isinstance(seeds, int) else tuple(seeds)
            if any(len(model.configs) != len(seed_list) for model in models):
                raise ValueError("every model of a plan needs one config per seed")
        for model in models:
            for c in model.configs:
                check_device(c.device)
        for task in resolved:
            if strict:  # before anything is reused: a stored result from a lenient run must not answer
                task.source.skipped()
            check_results_folder(task.name, task.source.location(), Path(results_dir))
        return cls(
            resolved,
            models,
            kinds,
            chosen,
            overrides,
            ks,
            seed_list,
            layers,
            Path(results_dir),
            refresh,
            cache,
            own_seeds,
        )

    @property
    def configs(self) -> tuple[ExtractorConfig, ...]:
        """Each model's config at the first seed."""
        return tuple(model.configs[0] for model in self.models)

    @property
    def config(self) -> ExtractorConfig:
        """The first model's config."""
        return self.configs[0]

    def check_data(self) -> list[str]:
        """Each task's data read as a run reads it (splits made or mapped, labels checked, duplicates refused; no
        image decoded for a model), one line per task: "traffic-light: train 1038, validation 149, test 297"."""
        lines = []
        for task in self.tasks:
            data = task.source.load()
            sizes = []
            for split in PROBE_SPLITS:
                sizes.append(f"{split} {len(task.labels(data[split]))}")
            lines.append(f"{task.name}: {', '.join(sizes)} images; classes {', '.join(task.classes)}")
        return lines

    def outline(self) -> list[str]:
        """Every row the plan would write, one line each (Job.outline), found without resolving anything: what a
        dry run prints."""
        return [job.outline() for job in self.jobs(resolve=False)]

    def jobs(self, resolve: bool = True) -> Iterator[Job]:
        """Every row of the plan as a job, in order: per task and seed, each model's probes then its baselines.
        Without `resolve`, `auto` precision is left as it is (the jobs can then only be outlined)."""
        resolved: dict[tuple[str, ExtractorConfig], ExtractorConfig] = {}

        def concrete(task: Task, config: ExtractorConfig) -> ExtractorConfig:
            # `auto` resolved once per (task, config) of the plan, before any job of it is keyed or named.
            if config.precision != AUTO or not resolve:
                return config
            if (task.name, config) not in resolved:
                resolved[(task.name, config)] = resolve_precision(config, task)
            return resolved[(task.name, config)]

        for task in self.tasks:
            for index, seed in enumerate(self.seeds):
                for number, model in enumerate(self.models):
                    config = model.configs[index]
                    for layer in self._layers(config):
                        at_layer = concrete(task, dataclasses.replace(config, layer=layer))
                        own = functools.partial(_at, concrete, task, config)
                        yield from self._probe_jobs(task, at_layer, RowKind.PROBE, Origin(number, seed, layer), own)
                    for baseline, option in self.baselines:
                        if not baseline.uses_model and number > 0:
                            continue  # the same row for every model: run with the first
                        if baseline.seeds is SeedPolicy.NONE and index > 0:
                            continue  # one row whatever the seeds
                        if baseline.seeds is SeedPolicy.OWN and self.own_seeds is not None and index >= self.own_seeds:
                            continue  # its own seeds: as many as the plan gives it
                        yield from self._baseline_jobs(task, config, seed, number, baseline, option, concrete)

    def _layers(self, config: ExtractorConfig) -> tuple[str, ...]:
        return self.layers if self.layers is not None else (config.layer,)

    def _probe_jobs(
        self,
        task: Task,
        config: ExtractorConfig,
        kind: RowKind,
        origin: Origin,
        own: Callable[[str], ExtractorConfig] | None,
    ) -> Iterator[Job]:
        """Each probe's jobs on `config`'s features. A probe that reads a layer of its own (every token) reads it
        at `own(layer)`, the config there with its precision resolved for that layer (`auto`'s check is per
        layer); on features without layers (`own` None: raw pixels) it does not run."""
        for probe in self.probes:
            if probe.layer is not None and own is None:
                continue
            at, where = config, origin
            if probe.layer is not None and own is not None:
                at = own(probe.layer)
                where = dataclasses.replace(origin, layer=probe.layer)
            for k in (None, *self.shots):
                yield ProbeJob(task, at, probe, where, kind=kind, shots=k, cache=self.cache)

    def _baseline_jobs(
        self,
        task: Task,
        config: ExtractorConfig,
        seed: int,
        number: int,
        baseline: Baseline,
        option: str | None,
        concrete: Callable[[Task, ExtractorConfig], ExtractorConfig],
    ) -> Iterator[Job]:
        model = number if baseline.uses_model else None
        if isinstance(baseline, ProbeControl):
            layers = self._layers(config) if baseline.layered else (None,)
            for layer in layers:
                at_layer = dataclasses.replace(config, layer=layer) if layer is not None else config
                controlled = concrete(task, baseline.configure(at_layer))
                origin = Origin(model, seed, layer, baseline.name, option)
                own = functools.partial(_at, concrete, task, baseline.configure(config)) if baseline.layered else None
                yield from self._probe_jobs(task, controlled, RowKind.CONTROL, origin, own)
        elif isinstance(baseline, LabelBaseline):
            origin = Origin(None, seed, None, baseline.name, option)
            yield TrainedJob(task, baseline, seed, origin, option, self.budget, config.resize)
        elif isinstance(baseline, PromptBaseline):
            at_embedding = concrete(task, dataclasses.replace(config, layer="embedding"))
            origin = Origin(model, seed, "embedding", baseline.name, option)
            yield ZeroShotJob(task, at_embedding, baseline, origin, option, cache=self.cache)
        else:  # a registration that is none of the three kinds: a programming error, named
            raise TypeError(f"Baseline '{baseline.name}' is not a ProbeControl, LabelBaseline or PromptBaseline")


def _at(
    concrete: Callable[[Task, ExtractorConfig], ExtractorConfig], task: Task, config: ExtractorConfig, layer: str
) -> ExtractorConfig:
    """`config` (its precision as the user gave it) at `layer`, made concrete there."""
    return concrete(task, dataclasses.replace(config, layer=layer))


def run_job(job: Job, results_dir: Path = RESULTS_DIR, refresh: bool = False) -> Outcome:
    """One job, in the runner's steps: resolve -> key -> claim -> compute -> record; returns (record, path).

    A stored result with the same key answers (its `run.reused` set) unless `refresh`; another process running
    the same job is waited for, then its result is reused."""
    started = time.perf_counter()
    job.resolve()
    identity, key = job.identity(), job.key()
    with claim(identity, key, results_dir, refresh) as stored:
        if stored is not None:
            return stored
        result = job.compute(started)
        return result, result.write(results_dir)


def run_jobs(
    jobs: Iterator[Job] | Sequence[Job],
    results_dir: Path = RESULTS_DIR,
    refresh: bool = False,
    on_result: Callable[[Result, Path], None] | None = None,
) -> list[tuple[Job, Outcome]]:
    """Every job in order, each once: a job whose identity and key an earlier one of the run had (the same random
    weights reached from two models) is answered by that one's outcome."""
    done: dict[tuple[Identity, str], Outcome] = {}
    outcomes = []
    for job in jobs:
        job.resolve()
        seen = (job.identity(), job.key())
        if seen in done:
            outcomes.append((job, done[seen]))
            continue
        outcome = run_job(job, results_dir, refresh)
        done[seen] = outcome
        outcomes.append((job, outcome))
        if on_result is not None:
            on_result(*outcome)
    return outcomes


def run(plan: RunPlan, on_result: Callable[[Result, Path], None] | None = None) -> list[Outcome]:
    """Run every job of `plan`; `on_result(record, path)` is called as each result is written (or reused)."""
    return [outcome for _, outcome in run_jobs(plan.jobs(), plan.results_dir, plan.refresh, on_result)]


def compare(
    task: str | Task,
    config: ExtractorConfig | None = None,
    baselines: str | Sequence[str] = DEFAULT_BASELINES,
    **options: Any,
) -> list[Outcome]:
    """The probes and each baseline on one task: `run(RunPlan.build(task, config, baselines=..., **options))`."""
    on_result = options.pop("on_result", None)
    return run(RunPlan.build(task, config, baselines=baselines, **options), on_result=on_result)


def probe(
    task: str | Task,
    config: ExtractorConfig | None = None,
    results_dir: Path = RESULTS_DIR,
    cache: FeatureCache | None = None,
    grid: tuple[float, ...] | None = None,
    refresh: bool = False,
    kind: str | Probe = "linear",
    shots: Shots | None = None,
    row: RowKind = RowKind.PROBE,
) -> Outcome:
    """One probe of frozen features (extracted first if the cache is cold); returns the record and its path.

    `task` is a registered name, a task file (.toml) or a Task; `kind` a probe (`clipprobe.list_probes()`), `grid`
    its hyperparameter grid (default: the probe's own). The hyperparameter is chosen on the validation split; the
    model fitted on train at that value is scored once on test. With `shots` (k, or "all"), the probe sees k
    training examples per class, drawn with `config.seed`. `row` declares the kind of row it is (a probe of
    pretrained weights, or a control: `RowKind.CONTROL`). A result file from the same features, task, probe,
    grid, shots, seed and code is returned as it is (`run.reused`) unless `refresh`."""
    task = resolve_task(task)
    config = resolve_precision(config or ExtractorConfig(), task)
    chosen = get_probe(kind) if isinstance(kind, str) else kind
    if chosen.layer is not None:  # a probe that reads a layer of its own (every token) reads it whatever `config` says
        config = dataclasses.replace(config, layer=chosen.layer)
    job = ProbeJob(
        task, config, chosen, Origin(0, config.seed, config.layer), kind=row, shots=shots, grid=grid, cache=cache
    )
    return run_job(job, results_dir, refresh)


def run_baseline(
    name: str,
    task: str | Task,
    seed: int = 0,
    results_dir: Path = RESULTS_DIR,
    budget: Budget | Mapping[str, Any] | None = None,
    group: str | None = None,
    refresh: bool = False,
    resize: str | None = None,
) -> Outcome:
    """Train baseline `name` (a network trained on the labels: `clipprobe baselines`) on `task`, choose its epoch on
    validation, score once on test, write its result file; returns (record, path). `group` is an orbit baseline's
    group; `budget` a Budget or overrides of the baseline's own. A stored result with the same inputs is reused."""
    baseline = get_baseline(name)
    if not isinstance(baseline, LabelBaseline):
        trained = [n for n, b in BASELINES.items() if isinstance(b, LabelBaseline)]
        raise UsageError(
            f"Baseline '{name}' is a linear probe, not a trained model; trained baselines: {', '.join(trained)}"
        )
    overrides = dataclasses.asdict(budget) if isinstance(budget, Budget) else budget
    job = TrainedJob(
        resolve_task(task), baseline, seed, Origin(None, seed, None, name, group), group, overrides, resize
    )
    return run_job(job, results_dir, refresh)


def zero_shot(
    task: str | Task,
    config: ExtractorConfig | None = None,
    results_dir: Path = RESULTS_DIR,
    prompts: Mapping[str, Sequence[str]] | None = None,
    refresh: bool = False,
) -> Outcome:
    """Zero-shot classification of `task`'s test images by `config`'s model and its text prompts per class
    (`prompts`, else the task's own, else CLIP's template ensemble); returns (record, path)."""
    task = resolve_task(task)
    config = resolve_precision(config or ExtractorConfig(), task)
    baseline = get_baseline("zero-shot")
    assert isinstance(baseline, PromptBaseline)
    job = ZeroShotJob(task, config, baseline, Origin(0, config.seed, config.layer), given_prompts=prompts)
    return run_job(job, results_dir, refresh)
