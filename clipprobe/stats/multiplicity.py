"""Corrections for the number of comparisons: Holm's step-down adjustment for the pre-registered primary family
(family-wise error), Benjamini-Hochberg q-values (scipy.stats.false_discovery_control) for the exploratory rest
(false discovery rate). A None p-value (a comparison with one seed) stays None and does not count."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm-adjusted p-values: sorted ascending, the i-th (from 0) of m is multiplied by m - i, then made
    non-decreasing and capped at 1. Reject where the adjusted value is below alpha: family-wise error <= alpha
    under any dependence between the tests."""
    present = [i for i, p in enumerate(p_values) if p is not None]
    out: list[float | None] = [None] * len(p_values)
    if not present:
        return out
    adjusted = holm_matrix(np.asarray([p_values[i] for i in present], dtype=np.float64))
    for i, value in zip(present, adjusted):
        out[i] = float(value)
    return out


def holm_matrix(p: np.ndarray) -> np.ndarray:
    """Holm-adjusted p-values along the last axis of an array (each row one family; for simulations)."""
    p = np.asarray(p, dtype=np.float64)
    m = p.shape[-1]
    order = np.argsort(p, axis=-1, kind="stable")
    ranked = np.take_along_axis(p, order, axis=-1)
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * ranked, axis=-1))
    out = np.empty_like(adjusted)
    np.put_along_axis(out, order, adjusted, axis=-1)
    return out


def benjamini_hochberg(p_values: Sequence[float | None]) -> list[float | None]:
    """Benjamini-Hochberg q-values (false discovery rate), by scipy.stats.false_discovery_control."""
    present = [i for i, p in enumerate(p_values) if p is not None]
    out: list[float | None] = [None] * len(p_values)
    if present:
        q = stats.false_discovery_control([float(p_values[i]) for i in present], method="bh")  # type: ignore[arg-type]
        for i, value in zip(present, np.atleast_1d(q)):
            out[i] = float(value)
    return out
