"""Errors the CLI turns into one-line messages with the right exit code, and the "Did you mean ...?" they offer."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class ClipProbeError(Exception):
    """Base class: a problem the user can act on, reported without a traceback."""

    exit_code = 1


class UsageError(ClipProbeError):
    """Bad input: an unknown name, a missing file, an invalid value (exit code 2)."""

    exit_code = 2


class RunError(ClipProbeError):
    """The input was valid but the run failed: corrupted cache, unreachable weights (exit code 1)."""

    exit_code = 1


def close_matches(name: str, choices: Iterable[str], n: int = 3, cutoff: float = 0.7) -> list[str]:
    """The choices that look like `name` (difflib's ratio, ignoring case), closest first: at most `n`, each at least
    `cutoff` alike and nearly as alike as the closest (so 'trafic-light' gets traffic-light, not also
    traffic-light-crops)."""
    by_lower: dict[str, str] = {}
    for choice in choices:
        by_lower.setdefault(choice.lower(), choice)
    matcher = difflib.SequenceMatcher(b=name.lower())
    scored = []
    for lower, choice in by_lower.items():
        matcher.set_seq1(lower)
        scored.append((matcher.ratio(), choice))
    scored = sorted((item for item in scored if item[0] >= cutoff), key=lambda item: -item[0])
    return [choice for ratio, choice in scored[:n] if ratio >= scored[0][0] - 0.1]


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """'Did you mean X? ' (or 'X or Y', 'X, Y or Z') for the choices close to `name`; '' when none is close. It goes
    before the list of every choice: `f"Unknown task '{name}'. {did_you_mean(name, names)}Available: ..."`."""
    close = close_matches(name, choices)
    if not close:
        return ""
    listed = close[0] if len(close) == 1 else f"{', '.join(close[:-1])} or {close[-1]}"
    return f"Did you mean {listed}? "
