"""Floors and controls: the same linear probe on features that owe nothing to pretraining."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.errors import UsageError
from ..data.task import Task
from ..features.config import ExtractorConfig
from ..probes.probe import Outcome, probe
from .registry import BASELINES


@dataclass(frozen=True)
class ProbeControl:
    """A linear probe, exactly as for the probed model, on features from a changed extractor config."""

    name: str
    description: str
    configure: Callable[[ExtractorConfig], ExtractorConfig]
    # Whether its features have layers (an architecture with random weights does; raw pixels do not).
    layered: bool = False
    uses_model: bool = False  # see Baseline.uses_model

    def check_option(self, option: str | None, budget: dict[str, Any] | None = None) -> None:
        if option is not None:
            raise UsageError(f"Baseline '{self.name}' takes no option (got '{self.name}:{option}')")

    def run(
        self,
        task: Task,
        config: ExtractorConfig,
        results_dir: Path,
        *,
        option: str | None = None,
        budget: dict[str, Any] | None = None,
        refresh: bool = False,
    ) -> Outcome:
        self.check_option(option)
        return probe(task, self.configure(config), results_dir=results_dir, refresh=refresh)


BASELINES.register(
    "pixels",
    ProbeControl(
        "pixels",
        "Linear probe on the raw pixels downsampled to 32x32 (3,072 numbers): what the input gives without any network",
        # Pixels have only one "layer": the pixels themselves.
        lambda config: dataclasses.replace(config, extractor="pixels", pretrained=None, layer="embedding"),
    ),
)
BASELINES.register(
    "random",
    ProbeControl(
        "random",
        "Linear probe on the probed architecture with random weights: what the architecture gives without pretraining",
        lambda config: dataclasses.replace(config, extractor="open_clip", pretrained="random"),
        uses_model=True,
        layered=True,
    ),
)
