"""The probes by name. Each probe module declares its probe (`Probe`: name, method label, description, the
hyperparameter it sweeps and its default grid, and its fit) and registers it in `PROBES` when imported
(clipprobe.probes.linear, clipprobe.probes.mlp; clipprobe.catalog imports them). Parameterised probes are
families written `NAME:ARG` (`linear-pca:128`, as caption policies are), registered in `PROBE_FAMILIES`
(clipprobe.probes.pca): the family makes the probe for its argument, and the probe's name and method hold it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..core.errors import UsageError, did_you_mean
from ..core.registry import Registry

# What every probe's hyperparameter is chosen on, on the validation split (clipprobe.probes.select).
SELECTION_METRIC = "balanced_accuracy"
# Bump when the probe's fitting changes, so that stored results are not reused for the new code.
# 6: the linear probe's own preconditioned L-BFGS (float32), warm-started along the C path, each C converged to
# its optimum.
# 7: each C of the linear probe stops on a gradient certificate only (no step-length test), and the curve says
# whether each fit converged.
# 8: one class-weighting rule for every trained row: the linear probe's loss weighted as scikit-learn's
# class_weight="balanced", the MLP's by the same sample weights; the linear probe's C grid extended a decade at a
# time beyond an edge where validation chose it (up to C_LIMITS), the grid swept recorded in the selection.
PROBE_VERSION = 8
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
    # The layer it reads whatever the run's (clipprobe.features.config.LAYERS): the attentive probe reads
    # `all-tokens`, and its fit gets (n, positions, width) arrays. None: the run's layer, (n, d) arrays.
    layer: str | None = None


@dataclass(frozen=True)
class ProbeFamily:
    """A parameterised kind of probe, written `NAME:ARG`: `usage` says how (`linear-pca:K`), `make` gives the
    probe for an argument (a UsageError for an argument it cannot take)."""

    name: str
    usage: str
    description: str
    make: Callable[[str], Probe]


PROBES: Registry[Probe] = Registry("probe")
PROBE_FAMILIES: Registry[ProbeFamily] = Registry("probe family")


def list_probes() -> list[str]:
    """What `--probe` accepts: each probe's name, then each family as it is written (`linear-pca:K`)."""
    return [*PROBES.names(), *(family.usage for _, family in PROBE_FAMILIES.items())]


def get_probe(name: str) -> Probe:
    """A probe by name (`linear`), or a family's probe for its argument (`linear-pca:128`)."""
    if name in PROBES:
        return PROBES.get(name)
    family, colon, argument = name.partition(":")
    if family in PROBE_FAMILIES:
        return PROBE_FAMILIES.get(family).make(argument)
    if colon and family in PROBES:
        raise UsageError(f"Probe '{family}' takes no argument, got '{name}'")
    close = did_you_mean(family if colon else name, [*PROBES.names(), *PROBE_FAMILIES.names()])
    raise UsageError(f"Unknown probe '{name}'. {close}Available: {', '.join(list_probes())}")


def parse_probes(spec: str | Sequence[str] = DEFAULT_PROBES) -> list[Probe]:
    """ "linear,mlp,linear-pca:128" or a list of names -> the probes, each checked (an unknown one lists what
    exists), each once (two spellings of one family member, `linear-pca:128` and `linear-pca:0128`, are one)."""
    names = [n.strip() for n in spec.split(",")] if isinstance(spec, str) else list(spec)
    if not names or any(not n for n in names):
        raise UsageError(f"--probe expects probe names separated by commas ({', '.join(list_probes())}); got '{spec}'")
    probes = (get_probe(name) for name in dict.fromkeys(names))
    return list({probe.name: probe for probe in probes}.values())
