"""Summaries of an accuracy-vs-strength curve that keep clean cost apart from robustness.

A curve's plain mean over levels that include 0 mixes the model's clean accuracy into its
"robustness": a model that loses 6 points of clean accuracy loses on that mean even when it
degrades more slowly. So every curve test reports, next to the legacy `mean_accuracy`:

  * `accuracy_max_level`     accuracy at the strongest level (Li et al.'s "accuracy at the
                             strongest noise"); the accuracy at every level is the curve itself;
  * `mean_accuracy_perturbed` mean accuracy over the levels > 0;
  * `relative_robustness`    mean over the levels > 0 of accuracy / clean accuracy, where clean
                             accuracy is the curve's own value at level 0 (same images);
  * `strength_50`            the level at which accuracy first falls to half of clean accuracy,
                             linearly interpolated between the two levels around the crossing
                             (None when it stays above half over the whole range).
All are higher-is-better. Written by hand: a dozen lines of arithmetic no library packages.
"""
from __future__ import annotations

import math

CURVE_METRICS = ("mean_accuracy", "accuracy_max_level", "mean_accuracy_perturbed", "relative_robustness",
                 "strength_50")


def strength_50(levels, acc) -> float | None:
    """First level where accuracy reaches half the level-0 accuracy (linear interpolation);
    None when never reached or when there is no level 0."""
    pts = sorted(zip((float(x) for x in levels), (float(a) for a in acc)))
    if not pts or pts[0][0] != 0.0 or not pts[0][1] > 0:
        return None
    half = 0.5 * pts[0][1]
    for (x0, a0), (x1, a1) in zip(pts, pts[1:]):
        if a1 <= half:
            if a0 == a1:
                return x1
            return x0 + (a0 - half) * (x1 - x0) / (a0 - a1)
    return None


def curve_summary(levels, acc) -> dict:
    """The summaries above for one curve (levels ascending or not; level 0 = clean)."""
    levels = [float(x) for x in levels]
    acc = [float(a) for a in acc]
    if len(levels) != len(acc) or not acc:
        raise ValueError(f"curve needs as many accuracies as levels, got {len(acc)} and {len(levels)}")
    pert = [a for x, a in zip(levels, acc) if x > 0]
    clean = next((a for x, a in zip(levels, acc) if x == 0), None)
    top = max(range(len(levels)), key=lambda i: levels[i])
    out = {"mean_accuracy": sum(acc) / len(acc), "accuracy_max_level": acc[top],
           "mean_accuracy_perturbed": sum(pert) / len(pert) if pert else math.nan,
           "relative_robustness": (sum(a / clean for a in pert) / len(pert)) if (pert and clean) else math.nan,
           "strength_50": strength_50(levels, acc)}
    return out
