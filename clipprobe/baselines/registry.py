"""The registry of baselines: every row a comparison puts beside the frozen-feature probe, by name."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ..core.errors import UsageError
from ..core.registry import Registry

if TYPE_CHECKING:
    from ..data.task import Task
    from ..features.config import ExtractorConfig
    from ..results import Result

# What `clipprobe probe` runs beside the probe unless told otherwise.
DEFAULT_BASELINES = ("cnn", "orbit-cnn", "pixels", "random")


class Baseline(Protocol):
    """A reference row for a task: `run` writes one result file in the probes' schema and returns it."""

    name: str
    description: str
    # Whether its row depends on the probed model (zero-shot: the model's text tower; random: its architecture).
    # One that does not runs once per task and seed however many models a run probes.
    uses_model: bool

    def check_option(self, option: str | None, budget: dict[str, Any] | None = None) -> None:
        """Raise UsageError when `option` (the text after NAME:) or the budget overrides do not fit this baseline."""

    def run(
        self,
        task: Task,
        config: ExtractorConfig,
        results_dir: Path,
        *,
        option: str | None = None,
        budget: dict[str, Any] | None = None,
        refresh: bool = False,
    ) -> tuple[Result, Path]: ...


BASELINES: Registry[Baseline] = Registry("baseline")


def list_baselines() -> list[str]:
    return BASELINES.names()


def get_baseline(name: str) -> Baseline:
    return BASELINES.get(name)


def parse_baselines(
    spec: str | list[str] | tuple[str, ...], budget: dict[str, Any] | None = None
) -> list[tuple[Baseline, str | None]]:
    """`cnn,orbit-cnn:hflip,pixels` -> [(baseline, option)]; `none` (or an empty list) -> [].

    The option after the first colon is the baseline's own (the orbit group for orbit-cnn). Every name, and
    every option against the `budget` overrides, is checked before anything runs."""
    names = [part.strip() for part in spec.split(",")] if isinstance(spec, str) else list(spec)
    names = [name for name in names if name]
    if names == ["none"] or not names:
        return []
    if "none" in names:
        raise UsageError("--baselines none cannot be combined with other baselines")
    chosen = []
    for name in names:
        base, _, option = name.partition(":")
        baseline = get_baseline(base)
        baseline.check_option(option or None, budget)
        chosen.append((baseline, option or None))
    return chosen
