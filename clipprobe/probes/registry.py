"""The probes by name. Each probe module declares its probe (`Probe`: name, method label, description, the
hyperparameter it sweeps and its default grid, and its fit) and registers it in `PROBES` when imported
(clipprobe.probes.linear, clipprobe.probes.mlp; clipprobe.catalog imports them)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..core.errors import UsageError
from ..core.registry import Registry

# What every probe's hyperparameter is chosen on, on the validation split (clipprobe.probes.select).
SELECTION_METRIC = "balanced_accuracy"
# Bump when the probe's fitting changes, so that stored results are not reused for the new code.
# 6: the linear probe's own preconditioned L-BFGS (float32), warm-started along the C path, each C converged to
# its optimum.
# 7: each C of the linear probe stops on a gradient certificate only (no step-length test), and the curve says
# whether each fit converged.
PROBE_VERSION = 7
DEFAULT_PROBES = ("linear",)


@dataclass(frozen=True)
class Probe:
    """A kind of probe, as it declares itself: its method name in result files, what it is, the hyperparameter it
    sweeps with its default grid, and its fit: fit(train_x, train_y, val_x, val_y, grid, seed=...) -> the
    choice made on validation (clipprobe.probes.select.ProbeFit, not imported here: select reads this module)."""

    name: str
    method: str
    description: str
    parameter: str
    grid: tuple[float, ...]
    fit: Callable[..., Any]


PROBES: Registry[Probe] = Registry("probe")


def list_probes() -> list[str]:
    return PROBES.names()


def get_probe(name: str) -> Probe:
    return PROBES.get(name)


def parse_probes(spec: str | Sequence[str] = DEFAULT_PROBES) -> list[Probe]:
    """ "linear,mlp" or a list of names -> the probes, each checked (an unknown one lists what exists)."""
    names = [n.strip() for n in spec.split(",")] if isinstance(spec, str) else list(spec)
    if not names or any(not n for n in names):
        raise UsageError(f"--probe expects probe names separated by commas ({', '.join(list_probes())}); got '{spec}'")
    return [get_probe(name) for name in dict.fromkeys(names)]
