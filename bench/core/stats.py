"""Mean and standard error of the mean: the one definition every layer uses.

SEM is undefined for fewer than two values and is NaN then (never 0, which would read as "no spread":
a single seed or a single repeat says nothing about variability). Non-finite values are ignored.
"""
from __future__ import annotations

import math


def _finite(values) -> list[float]:
    out = []
    for a in values:
        try:
            f = float(a)
        except (TypeError, ValueError):
            continue
        if math.isfinite(f):
            out.append(f)
    return out


def sem(values) -> float:
    """Standard error of the mean (sample std with ddof=1 / sqrt(n)); NaN for n < 2."""
    v = _finite(values)
    if len(v) < 2:
        return float("nan")
    m = sum(v) / len(v)
    return math.sqrt(sum((a - m) ** 2 for a in v) / (len(v) - 1) / len(v))


def mean_sem(values) -> tuple[float, float]:
    """(mean, SEM) over the finite values; (NaN, NaN) when there are none, SEM NaN for one value."""
    v = _finite(values)
    if not v:
        return float("nan"), float("nan")
    return sum(v) / len(v), sem(v)
