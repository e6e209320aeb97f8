"""Comparisons over seeds and the verdict words of a claim.

For a regularizer against a baseline on one metric (values: one per seed):
  * the difference of means with its 95% Welch interval (Welch-Satterthwaite degrees of freedom)
    and Welch's two-sided p-value (`scipy.stats.ttest_ind(equal_var=False)`);
  * Holm's step-down correction across the comparisons of one claim;
  * the smallest effect the design could detect (two-sided alpha 0.05, power 0.8, at the observed
    spread and seed counts; exact power of the Welch t-test from the noncentral t distribution) and
    the number of seeds per arm that would detect a given effect.

Verdict of one comparison, in the "better" direction (d > 0 means the regularizer is better) with
E > 0 the claimed effect (or, for claims that give a direction only, the smallest effect of interest):
  reproduced    significant after Holm with d > 0, and the interval reaches E;
  partly        significant after Holm with d > 0, but the interval lies below E (a smaller effect);
  contradicted  the interval lies wholly below 0 (the wrong direction), or wholly below E (whatever
                the effect is, it is smaller than claimed: a null with power);
  inconclusive  otherwise: not significant and the interval contains both 0 and E; the verdict says
                how many seeds per arm would detect E.
Non-inferiority comparisons (e.g. "clean accuracy is preserved within 2 points") use the margin M:
reproduced when the interval lies above -M, contradicted when it lies below -M, else inconclusive.
A claim is reproduced when all its comparisons are, contradicted when all are, partly when at least
one is reproduced or partly, and inconclusive otherwise.

Written by hand: Holm is six lines and the detectable effect one root-find; statsmodels (which has
both) would be a large dependency for them. scipy supplies every distribution.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass

import numpy as np
from scipy import optimize, stats

ALPHA = 0.05
POWER = 0.8
WORDS = ("reproduced", "partly", "contradicted", "inconclusive")


def _clean(v) -> np.ndarray:
    a = np.asarray(list(v), float)
    return a[np.isfinite(a)]


def welch_df(va: float, na: int, vb: float, nb: int) -> float:
    """Welch-Satterthwaite degrees of freedom from the two sample variances."""
    qa, qb = va / na, vb / nb
    den = qa * qa / (na - 1) + qb * qb / (nb - 1)
    return (qa + qb) ** 2 / den if den > 0 else float(na + nb - 2)


def power_welch(effect: float, sd_a: float, n_a: int, sd_b: float, n_b: int, alpha: float = ALPHA) -> float:
    """Power of the two-sided Welch t-test to detect a true difference `effect`."""
    se = math.sqrt(sd_a ** 2 / n_a + sd_b ** 2 / n_b)
    if se == 0:
        return 1.0 if effect != 0 else alpha
    df = welch_df(sd_a ** 2, n_a, sd_b ** 2, n_b)
    t = stats.t.ppf(1 - alpha / 2, df)
    nc = abs(effect) / se
    if nc > t + 40:  # far beyond the critical value: power is 1 to double precision (nct returns NaN there)
        return 1.0
    pw = float(stats.nct.sf(t, df, nc) + stats.nct.cdf(-t, df, nc))
    if pw != pw:  # numerical trouble of nct: the normal approximation
        pw = float(stats.norm.sf(t - nc) + stats.norm.cdf(-t - nc))
    return pw


def detectable_effect(sd_a: float, n_a: int, sd_b: float, n_b: int, alpha: float = ALPHA,
                      power: float = POWER) -> float:
    """Smallest true difference the Welch test detects with the given power (same unit as the data)."""
    se = math.sqrt(sd_a ** 2 / n_a + sd_b ** 2 / n_b)
    if not se > 0:
        return 0.0
    hi = se
    while power_welch(hi, sd_a, n_a, sd_b, n_b, alpha) < power:
        hi *= 2
        if hi > 1e6 * se:
            return float("inf")
    return float(optimize.brentq(lambda e: power_welch(e, sd_a, n_a, sd_b, n_b, alpha) - power, 0.0, hi,
                                 xtol=se * 1e-6))


def seeds_needed(effect: float, sd_a: float, sd_b: float, alpha: float = ALPHA, power: float = POWER,
                 max_n: int = 1000) -> int | None:
    """Seeds per arm (equal arms) for the Welch test to detect `effect` with `power`; None above max_n."""
    if not effect or not math.isfinite(effect):
        return None
    for n in range(2, max_n + 1):
        if power_welch(effect, sd_a, n, sd_b, n, alpha) >= power - 1e-6:
            return n
    return None


def holm(pvalues) -> list[float]:
    """Holm's step-down adjusted p-values (NaNs stay NaN and do not count as tests)."""
    p = [float(x) for x in pvalues]
    idx = [i for i, x in enumerate(p) if x == x]
    m = len(idx)
    out = [float("nan")] * len(p)
    running = 0.0
    for rank, i in enumerate(sorted(idx, key=lambda i: p[i])):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out


def welch_interval(a, b, alpha: float = ALPHA) -> tuple[float, float, float, float]:
    """(difference of means, 95% Welch interval low, high, p) of values a minus values b; NaNs with
    fewer than two finite values on a side."""
    a, b = _clean(a), _clean(b)
    nan = float("nan")
    if len(a) < 2 or len(b) < 2:
        return nan, nan, nan, nan
    va, vb = float(a.var(ddof=1)), float(b.var(ddof=1))
    diff = float(a.mean() - b.mean())
    se = math.sqrt(va / len(a) + vb / len(b))
    if not se > 0:
        return diff, diff, diff, (1.0 if diff == 0 else 0.0)
    half = float(stats.t.ppf(1 - alpha / 2, welch_df(va, len(a), vb, len(b)))) * se
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        p = float(stats.ttest_ind(a, b, equal_var=False).pvalue)
    return diff, diff - half, diff + half, p


@dataclass
class Comparison:
    metric: str
    reg: str
    base: str
    n: int
    base_n: int
    mean: float
    sem: float
    base_mean: float
    base_sem: float
    diff: float  # mean - base_mean (metric units)
    ci_low: float
    ci_high: float
    p: float
    higher_is_better: bool = True
    p_holm: float = float("nan")
    detectable: float = float("nan")  # smallest |diff| detectable with power 0.8
    effect: float | None = None  # E in the better direction (claimed, or smallest effect of interest)
    effect_source: str = ""
    kind: str = "superiority"  # superiority | noninferiority
    verdict: str = ""
    seeds_to_decide: int | None = None

    @property
    def better_diff(self) -> float:
        return self.diff if self.higher_is_better else -self.diff

    @property
    def better_ci(self) -> tuple[float, float]:
        return (self.ci_low, self.ci_high) if self.higher_is_better else (-self.ci_high, -self.ci_low)

    def to_dict(self) -> dict:
        return asdict(self)


def compare(a, b, metric: str = "", reg: str = "", base: str = "", higher_is_better: bool = True,
            alpha: float = ALPHA) -> Comparison | None:
    """Regularizer values `a` against baseline values `b` (one per seed); None with < 2 on a side."""
    a, b = _clean(a), _clean(b)
    if len(a) < 2 or len(b) < 2:
        return None
    va, vb = float(a.var(ddof=1)), float(b.var(ddof=1))
    diff, lo, hi, p = welch_interval(a, b, alpha)
    det = detectable_effect(math.sqrt(va), len(a), math.sqrt(vb), len(b), alpha)
    return Comparison(metric=metric, reg=reg, base=base, n=len(a), base_n=len(b), mean=float(a.mean()),
                      sem=math.sqrt(va / len(a)), base_mean=float(b.mean()), base_sem=math.sqrt(vb / len(b)),
                      diff=diff, ci_low=lo, ci_high=hi, p=p, higher_is_better=higher_is_better,
                      detectable=det)


def judge(c: Comparison, alpha: float = ALPHA) -> str:
    """The verdict word of one comparison (module docstring); sets `c.verdict` and `seeds_to_decide`."""
    lo, hi = c.better_ci
    e = c.effect
    p = c.p_holm if c.p_holm == c.p_holm else c.p
    if c.kind == "noninferiority":
        m = abs(e or 0.0)
        word = "reproduced" if lo > -m else "contradicted" if hi < -m else "inconclusive"
    elif e is None or not e > 0:
        raise ValueError(f"{c.metric}: a superiority comparison needs a positive effect of interest")
    elif p < alpha and c.better_diff > 0:
        word = "reproduced" if hi >= e else "partly"
    elif hi < 0 or hi < e:
        word = "contradicted"
    else:
        word = "inconclusive"
    c.verdict = word
    if word == "inconclusive":
        sd_a, sd_b = c.sem * math.sqrt(c.n), c.base_sem * math.sqrt(c.base_n)
        c.seeds_to_decide = seeds_needed(abs(e or 0.0) or abs(c.diff), sd_a, sd_b, alpha)
    return word


def judge_claim(comps: list[Comparison], alpha: float = ALPHA) -> str:
    """Holm-correct the claim's superiority comparisons, judge each, and combine (module docstring)."""
    comps = [c for c in comps if c is not None]
    if not comps:
        return "not tested (metric missing)"
    sup = [c for c in comps if c.kind == "superiority"]
    for c, ph in zip(sup, holm([c.p for c in sup])):
        c.p_holm = ph
    words = [judge(c, alpha) for c in comps]
    if all(w == "reproduced" for w in words):
        return "reproduced"
    if all(w == "contradicted" for w in words):
        return "contradicted"
    if any(w in ("reproduced", "partly") for w in words):
        return "partly"
    return "inconclusive"
