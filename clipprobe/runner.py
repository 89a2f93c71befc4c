"""The pipeline as Python calls: data -> features (cached) -> probes and baselines -> result records.

`RunPlan.build` checks every name, option and number of a run once (tasks, probes, baselines and their budget,
shots, seeds) before anything runs; `run(plan)` then fits every probe and runs every baseline, one result file
each. `extract`, `extract_shard` and `merge` fill the feature cache; `probe` (clipprobe.probes.probe) is one probe
on one task."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .baselines.registry import DEFAULT_BASELINES, Baseline, parse_baselines
from .baselines.training import parse_budget
from .core.errors import UsageError
from .data.task import Task, skipped_files
from .data.taskfile import resolve_task
from .features import extract as extraction
from .features.cache import FeatureCache, FeatureSet
from .features.chunks import DEFAULT_CHUNK_ROWS, Shard, parse_shard
from .features.config import ExtractorConfig
from .probes.probe import Outcome, probe
from .probes.registry import DEFAULT_PROBES, Probe, parse_probes
from .probes.shots import Shots, parse_shots
from .results import DEFAULT_RESULTS_DIR, Result, check_results_folder

# The task whose data `extract` reads when given none: the dashcam world, which all its tasks share.
DEFAULT_EXTRACT_TASK = "traffic-light"


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
    source = resolve_task(task).source
    features = extraction.extract_features(source, config, cache=cache, refresh=refresh, chunk_rows=chunk_rows)
    skipped_files(source)  # even when every split was cached: unreadable images are reported, or fail with strict
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
    return extraction.extract_shard(resolve_task(task).source, config, shard, cache=cache, chunk_rows=chunk_rows)


def merge(
    task: str | Task = DEFAULT_EXTRACT_TASK,
    config: ExtractorConfig | None = None,
    cache: FeatureCache | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> FeatureSet:
    """Assemble the shards' chunks into the feature cache, checking that every row is there exactly once."""
    return extraction.merge_features(resolve_task(task).source, config, cache=cache, chunk_rows=chunk_rows)


@dataclass(frozen=True)
class RunPlan:
    """One `clipprobe probe` run, every part of it checked: build it with `RunPlan.build`, run it with `run`.

    Each task gets every probe kind on each model's features (and on those of the baselines that are probes
    themselves: pixels, random weights), for the whole train split and each few-shot k, and every other
    baseline; all of it for each seed config.seed, config.seed + 1, ... (`seeds` of them). A baseline whose
    row does not depend on the model (`uses_model` False: cnn, pixels) runs once, not once per model."""

    tasks: tuple[Task, ...]
    configs: tuple[ExtractorConfig, ...]  # one per model probed, in order
    probes: tuple[Probe, ...]
    baselines: tuple[tuple[Baseline, str | None], ...]
    budget: dict[str, Any]
    shots: tuple[Shots, ...]
    seeds: int
    results_dir: Path = DEFAULT_RESULTS_DIR
    refresh: bool = False

    @classmethod
    def build(
        cls,
        tasks: str | Task | Sequence[str | Task],
        config: ExtractorConfig | Sequence[ExtractorConfig] | None = None,
        probes: str | Sequence[str] = DEFAULT_PROBES,
        baselines: str | Sequence[str] = DEFAULT_BASELINES,
        budget: str | dict[str, Any] | None = None,
        shots: str | Sequence[Shots] | None = None,
        seeds: int = 1,
        results_dir: Path = DEFAULT_RESULTS_DIR,
        refresh: bool = False,
        strict: bool = False,
    ) -> RunPlan:
        """Check and resolve everything (a typo in the last option fails before any work is done).

        `tasks`: names, task files or Tasks; `config` one extractor config or several (several models in one
        run, e.g. from `read_models_file`); `baselines` a spec such as "cnn,orbit-cnn:hflip,pixels" ("none":
        the probes alone); `budget` overrides fields of the trained baselines' own budgets ("epochs=40" or a
        dict; see clipprobe.baselines.training.Budget); `probes` "linear,mlp"; `shots` "1,2,4,8,16,all";
        `strict`: the first unreadable image is an error instead of being skipped and counted."""
        overrides = parse_budget(budget) if isinstance(budget, str) or budget is None else dict(budget)
        chosen = tuple(parse_baselines(baselines, overrides))
        kinds = tuple(parse_probes(probes))
        ks = () if shots is None else parse_shots(shots)
        if seeds < 1:
            raise UsageError(f"--seeds must be at least 1, got {seeds}")
        tasks = [tasks] if isinstance(tasks, (str, Task)) else list(tasks)
        if not tasks:
            raise UsageError("Give at least one task")
        resolved = tuple(resolve_task(task, strict) for task in tasks)
        for task in resolved:
            if strict:  # before anything is reused: a stored result from a lenient run must not answer
                skipped_files(task.source)
            check_results_folder(task, Path(results_dir))
        configs = (config or ExtractorConfig(),) if not isinstance(config, Sequence) else tuple(config)
        if not configs:
            raise UsageError("Give at least one model")
        return cls(
            resolved,
            configs,
            kinds,
            chosen,
            overrides,
            tuple(ks),
            seeds,
            Path(results_dir),
            refresh,
        )

    def steps(self) -> list[Callable[[], Outcome]]:
        """Every probe and baseline of the plan, in order (probes first), as calls that write one result each."""
        steps: list[Callable[[], Outcome]] = []
        for task in self.tasks:
            for index, config in enumerate(self.configs):
                steps += self._model_steps(task, config, first=index == 0)
        return steps

    @property
    def config(self) -> ExtractorConfig:
        """The first model's config."""
        return self.configs[0]

    def _model_steps(self, task: Task, config: ExtractorConfig, first: bool) -> list[Callable[[], Outcome]]:
        steps: list[Callable[[], Outcome]] = []
        for seed in range(config.seed, config.seed + self.seeds):
            seeded = dataclasses.replace(config, seed=seed)
            steps += self._probes(task, seeded)
            for baseline, option in self.baselines:
                if not first and not baseline.uses_model:
                    continue  # the same row for every model: run with the first
                configure = getattr(baseline, "configure", None)
                if configure is not None:  # a probe on other features: every probe kind and shot, as above
                    steps += self._probes(task, configure(seeded))
                else:
                    steps.append(
                        functools.partial(
                            baseline.run,
                            task,
                            seeded,
                            self.results_dir,
                            option=option,
                            budget=self.budget,
                            refresh=self.refresh,
                        )
                    )
        return steps

    def _probes(self, task: Task, config: ExtractorConfig) -> list[Callable[[], Outcome]]:
        return [
            functools.partial(
                probe, task, config, results_dir=self.results_dir, refresh=self.refresh, kind=kind, shots=k
            )
            for kind in self.probes
            for k in (None, *self.shots)
        ]


def run(plan: RunPlan, on_result: Callable[[Result, Path], None] | None = None) -> list[Outcome]:
    """Run every step of `plan`; `on_result(record, path)` is called as each result is written."""
    outcomes = []
    for step in plan.steps():
        outcomes.append(step())
        if on_result is not None:
            on_result(*outcomes[-1])
    return outcomes


def compare(
    task: str | Task,
    config: ExtractorConfig | None = None,
    baselines: str | Sequence[str] = DEFAULT_BASELINES,
    **options: Any,
) -> list[Outcome]:
    """The probes and each baseline on one task: `run(RunPlan.build(task, config, baselines=..., **options))`."""
    on_result = options.pop("on_result", None)
    return run(RunPlan.build(task, config, baselines=baselines, **options), on_result=on_result)
