"""Power, detectable effects and the seeds that would decide an inconclusive comparison.

Split out of `leaderboard.stats` (which re-exports every name here): the t-test power of the paired and
the Welch analyses (one noncentral t each), the smallest effect each detects, and the one rule that says
how many seeds would decide a line the verdict rule left inconclusive (`SEEDS_RULE`, applied by
`seeds_to_decide`, printed by `leaderboard.stats.rule_text`).

The assumption, the same on every line: the true difference is the effect the line is judged against,
at the spread observed. A superiority line is undecided while its interval holds both 0 and the effect E;
a non-inferiority line while it holds minus the margin M. The seeds that would decide it are those at which
the test of the analysis the line used (paired: the SD of the per-block differences; Welch: each arm's SD),
at the claim's adjusted level alpha / m and power 0.8, separates a true difference of E from 0
(superiority), or a true difference of 0 from -M (non-inferiority): the distance between the true value
assumed and the boundary tested is E (or M) on every line. The observed difference is not the assumption:
it is noisy exactly where a line is undecided, and an observed difference near 0 would ask for
thousands of seeds on that noise alone.
"""
from __future__ import annotations

import math

from scipy import optimize, stats

ALPHA = 0.05
POWER = 0.8
MAX_SEEDS = 1000
SEEDS_RULE = ("How many seeds would decide an inconclusive line (the same assumption on every line): the seeds per "
              "arm at which the test of the analysis the line used, at the adjusted level alpha/m and power "
              f"{POWER:g}, separates the true difference assumed from the boundary the verdict turns on, with "
              "the true difference assumed to be the effect the line is judged against (superiority: the claimed "
              "effect or the smallest effect of interest, tested against 0; non-inferiority: a true difference "
              "of 0, tested against minus the margin) and the spread as observed (paired: the SD of the "
              "per-block differences; Welch: each arm's SD; the unpaired figure beside a paired line: each "
              f"arm's SD); above {MAX_SEEDS} it says so.")
SEEDS_LINE_NOTE = "if the true difference is the effect judged against"


def welch_df(va: float, na: int, vb: float, nb: int) -> float:
    """Welch-Satterthwaite degrees of freedom from the two sample variances."""
    qa, qb = va / na, vb / nb
    den = qa * qa / (na - 1) + qb * qb / (nb - 1)
    return (qa + qb) ** 2 / den if den > 0 else float(na + nb - 2)


def _power_t(effect: float, se: float, df: float, alpha: float) -> float:
    """Power of a two-sided t-test with standard error `se` and `df` degrees of freedom."""
    if se == 0:
        return 1.0 if effect != 0 else alpha
    t = stats.t.ppf(1 - alpha / 2, df)
    nc = abs(effect) / se
    if nc > t + 40:  # far beyond the critical value: power is 1 to double precision (nct returns NaN there)
        return 1.0
    pw = float(stats.nct.sf(t, df, nc) + stats.nct.cdf(-t, df, nc))
    if pw != pw:  # numerical trouble of nct: the normal approximation
        pw = float(stats.norm.sf(t - nc) + stats.norm.cdf(-t - nc))
    return pw


def power_welch(effect: float, sd_a: float, n_a: int, sd_b: float, n_b: int, alpha: float = ALPHA) -> float:
    """Power of the two-sided Welch t-test to detect a true difference `effect`."""
    se = math.sqrt(sd_a ** 2 / n_a + sd_b ** 2 / n_b)
    return _power_t(effect, se, welch_df(sd_a ** 2, n_a, sd_b ** 2, n_b) if se > 0 else 1.0, alpha)


def power_paired(effect: float, sd_d: float, n: int, alpha: float = ALPHA) -> float:
    """Power of the two-sided paired t-test (n blocks, sd of the differences sd_d)."""
    return _power_t(effect, sd_d / math.sqrt(n), n - 1, alpha)


def detectable_effect(sd_a: float, n_a: int, sd_b: float, n_b: int, alpha: float = ALPHA,
                      power: float = POWER) -> float:
    """Smallest true difference the Welch test detects with the given power (same unit as the data)."""
    se = math.sqrt(sd_a ** 2 / n_a + sd_b ** 2 / n_b)
    return _detectable(lambda e: power_welch(e, sd_a, n_a, sd_b, n_b, alpha), se, power)


def detectable_effect_paired(sd_d: float, n: int, alpha: float = ALPHA, power: float = POWER) -> float:
    """Smallest true difference the paired t-test detects with the given power."""
    return _detectable(lambda e: power_paired(e, sd_d, n, alpha), sd_d / math.sqrt(max(n, 1)), power)


def _detectable(pw, se: float, power: float) -> float:
    if not se > 0:
        return 0.0
    hi = se
    while pw(hi) < power:
        hi *= 2
        if hi > 1e6 * se:
            return float("inf")
    return float(optimize.brentq(lambda e: pw(e) - power, 0.0, hi, xtol=se * 1e-6))


def seeds_needed(effect: float, sd_a: float, sd_b: float, alpha: float = ALPHA, power: float = POWER,
                 max_n: int = 1000) -> int | None:
    """Seeds per arm (equal arms) for the Welch test to detect `effect` with `power`; None above max_n."""
    if not effect or not math.isfinite(effect):
        return None
    for n in range(2, max_n + 1):
        if power_welch(effect, sd_a, n, sd_b, n, alpha) >= power - 1e-6:
            return n
    return None


def seeds_needed_paired(effect: float, sd_d: float, alpha: float = ALPHA, power: float = POWER,
                        max_n: int = 1000) -> int | None:
    """Seed blocks (= seeds per arm) for the paired t-test to detect `effect`; None above max_n."""
    if not effect or not math.isfinite(effect) or not math.isfinite(sd_d):
        return None
    for n in range(2, max_n + 1):
        if power_paired(effect, sd_d, n, alpha) >= power - 1e-6:
            return n
    return None


def seeds_to_decide(effect: float, analysis: str, sd_diff: float, sd_a: float, sd_b: float,
                    alpha: float) -> tuple[int | None, int | None]:
    """(seeds under the analysis used, seeds of an unpaired design) that would decide an inconclusive line
    judged against `effect` (the claimed effect, smallest effect of interest or margin) at level `alpha`
    (`SEEDS_RULE`); None where more than MAX_SEEDS would be needed."""
    target = abs(float(effect))
    unpaired = seeds_needed(target, sd_a, sd_b, alpha, max_n=MAX_SEEDS)
    if analysis == "paired":
        return seeds_needed_paired(target, sd_diff, alpha, max_n=MAX_SEEDS), unpaired
    return unpaired, unpaired
