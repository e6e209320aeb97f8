"""Comparisons over seed blocks and the verdict words of a claim: one rule, applied as written.

Design. A seed is a block: for every regularizer, seed s fixes the initialisation, the training subset,
the data order, the pair draws, the test images, the transfer surrogate and every attack's randomness.
So a regularizer's value at seed s and the baseline's value at seed s are a pair, and a comparison uses
the pairing whenever both arms have the seed:
  * paired: the mean of the per-block differences with its t interval (n - 1 degrees of freedom) and
    the paired t-test (`scipy.stats.ttest_rel`); blocks present in one arm only are left out and counted
    (`dropped_unpaired`);
  * Welch: for sets that are not paired (no common seeds, or `paired=False`, e.g. records from another
    budget or a zoo model): the difference of means with the Welch-Satterthwaite interval
    (`scipy.stats.ttest_ind(equal_var=False)`).
Per-image metrics (a median distance over the block's test images) are compared the same way: the
block's statistic is computed on a sample of images drawn anew in every block (the test subset follows
the seed), so the spread of the per-block differences already holds the image-sampling variance next to
the training variance (two-stage sampling: the variance of a block mean includes the within-block
variance), and the paired t interval over blocks is valid for both. That is the equivalent of a
hierarchical (seeds, then images) bootstrap that we use instead of one: with 3-5 blocks a bootstrap
over blocks has too few distinct resamples to give a reliable interval, and the t interval does not
need them. Where a design fixes the images for every seed (a fixed `data_seed`), the interval covers
training variability on those images only; the report says so.

Verdicts. A claim's comparisons form one family: each comparison's interval is widened to the
Bonferroni level 1 - alpha / m (m = the claim's comparisons), so all m hold together with probability
at least 1 - alpha. The word of a comparison comes from its adjusted interval [lo, hi] in the "better"
direction and the claimed effect E > 0 (or, for a direction-only claim, the smallest effect of
interest) by the first rule of `RULES` that holds; non-inferiority comparisons (margin M) by
`NONINFERIORITY_RULES`. A claim combines its words by its quantifier (`QUANTIFIERS`: all, any, or per
metric family). The report prints `rule_text()`, which is built from the same tables the code applies,
so the stated rule and the applied rule cannot drift apart.

Censored values (a curve that never falls to half of clean within the tested range) have no mean; a
metric with censored seeds is compared by the paired sign test on the signs that are known (`sign_test`).

Written by hand: Bonferroni is one division, the sign test one binomial tail, power one noncentral t;
statsmodels (which has them) would be a large dependency for that. scipy supplies every distribution.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass, field

import numpy as np
from scipy import stats

from .power import (ALPHA, POWER, SEEDS_RULE, detectable_effect, detectable_effect_paired,  # noqa: F401 (re-exported)
                    power_paired, power_welch, seeds_needed, seeds_needed_paired, seeds_to_decide, welch_df)

WORDS = ("reproduced", "partly", "contradicted", "inconclusive")

# The verdict of one superiority comparison: the first rule whose test holds, on the adjusted interval
# [lo, hi] in the better direction and the claimed effect e > 0.
RULES = (
    ("reproduced", "the adjusted interval lies above 0 and reaches the claimed effect",
     lambda lo, hi, e: lo > 0 and hi >= e),
    ("partly", "the adjusted interval lies above 0 but wholly below the claimed effect (a smaller effect)",
     lambda lo, hi, e: lo > 0 and hi < e),
    ("contradicted", "the adjusted interval holds 0 or lies below it, and lies wholly below the claimed effect "
                     "(whatever the effect is, it is smaller than claimed, or of the wrong sign)",
     lambda lo, hi, e: lo <= 0 and hi < e),
    ("inconclusive", "the adjusted interval holds both 0 and the claimed effect",
     lambda lo, hi, e: True),
)
NONINFERIORITY_RULES = (
    ("reproduced", "the adjusted interval lies above minus the margin", lambda lo, hi, m: lo > -m),
    ("contradicted", "the adjusted interval lies wholly below minus the margin", lambda lo, hi, m: hi < -m),
    ("inconclusive", "the adjusted interval holds minus the margin", lambda lo, hi, m: True),
)
# How a claim combines its comparisons' words: the first rule that holds.
QUANTIFIERS = {
    "all": (
        ("contradicted", "any comparison is contradicted", lambda w: "contradicted" in w),
        ("reproduced", "every comparison is reproduced", lambda w: all(x == "reproduced" for x in w)),
        ("partly", "every comparison is reproduced or partly", lambda w: all(x in ("reproduced", "partly") for x in w)),
        ("inconclusive", "otherwise", lambda w: True),
    ),
    "any": (
        ("reproduced", "any comparison is reproduced", lambda w: "reproduced" in w),
        ("partly", "any comparison is partly", lambda w: "partly" in w),
        ("contradicted", "every comparison is contradicted", lambda w: all(x == "contradicted" for x in w)),
        ("inconclusive", "otherwise", lambda w: True),
    ),
}
QUANTIFIER_TEXT = {"all": "all of its comparisons must hold", "any": "one comparison suffices",
                   "family": "judged per metric family (each family by the `all` rule)"}


def _clean(v) -> np.ndarray:
    a = np.asarray(list(v), float)
    return a[np.isfinite(a)]


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
    """(difference of means, Welch interval low, high, p) of values a minus values b at level 1 - alpha;
    NaNs with fewer than two finite values on a side."""
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


def paired_interval(a, b, alpha: float = ALPHA) -> tuple[float, float, float, float]:
    """(mean difference, t interval low, high, p) of paired values a[i] - b[i] at level 1 - alpha
    (pairs with a non-finite side dropped); NaNs with fewer than two pairs."""
    a, b = np.asarray(list(a), float), np.asarray(list(b), float)
    ok = np.isfinite(a) & np.isfinite(b)
    d = a[ok] - b[ok]
    nan = float("nan")
    if len(d) < 2:
        return nan, nan, nan, nan
    mean, se = float(d.mean()), float(d.std(ddof=1)) / math.sqrt(len(d))
    if not se > 0:
        return mean, mean, mean, (1.0 if mean == 0 else 0.0)
    half = float(stats.t.ppf(1 - alpha / 2, len(d) - 1)) * se
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        p = float(stats.ttest_rel(a[ok], b[ok]).pvalue)
    return mean, mean - half, mean + half, p


def sign_test(a, b, censor_a=None, censor_b=None) -> dict:
    """Paired sign test for right-censored values (a value censored at the top of the tested range is
    known only to be at least that): the sign of a - b is known unless both are censored (then it is a
    tie and left out), and a censored side beats an uncensored one. Two-sided exact binomial p."""
    a, b = np.asarray(list(a), float), np.asarray(list(b), float)
    ca = np.zeros(len(a), bool) if censor_a is None else np.asarray(list(censor_a), bool)
    cb = np.zeros(len(b), bool) if censor_b is None else np.asarray(list(censor_b), bool)
    pos = neg = ties = 0
    for x, y, cx, cy in zip(a, b, ca, cb):
        if cx and cy:
            ties += 1
        elif cx:
            pos += 1
        elif cy:
            neg += 1
        elif x > y:
            pos += 1
        elif x < y:
            neg += 1
        else:
            ties += 1
    n = pos + neg
    p = float(stats.binomtest(pos, n).pvalue) if n else float("nan")
    return {"positive": pos, "negative": neg, "ties": ties, "p": p}


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
    diff: float  # mean difference (paired) or difference of means (Welch), metric units
    ci_low: float  # 95% interval (unadjusted) ...
    ci_high: float
    p: float
    higher_is_better: bool = True
    analysis: str = "welch"  # paired | welch
    n_pairs: int = 0
    dropped_unpaired: int = 0
    se: float = float("nan")  # of the difference
    df: float = float("nan")
    sd_a: float = float("nan")
    sd_b: float = float("nan")
    sd_diff: float = float("nan")  # paired only
    corr: float = float("nan")  # paired only: correlation of the two arms over blocks
    welch_ci: tuple = (float("nan"), float("nan"))  # the unpaired interval on the same values, for reference
    p_holm: float = float("nan")
    detectable: float = float("nan")  # smallest |diff| detectable with power 0.8 (unadjusted alpha)
    effect: float | None = None  # E in the better direction (claimed, or smallest effect of interest)
    effect_source: str = ""
    kind: str = "superiority"  # superiority | noninferiority
    family: str = ""  # metric family (noise, transfer, decision-based distance, ...)
    adj_level: float = 0.95  # level of the family-wise adjusted interval the verdict used
    adj_low: float = float("nan")
    adj_high: float = float("nan")
    verdict: str = ""
    seeds_to_decide: int | None = None  # under the analysis used (paired: seed blocks)
    seeds_to_decide_unpaired: int | None = None
    censored: int = 0
    base_censored: int = 0
    values: list = field(default_factory=list)  # per block, for the record
    base_values: list = field(default_factory=list)

    @property
    def better_diff(self) -> float:
        return self.diff if self.higher_is_better else -self.diff

    @property
    def better_ci(self) -> tuple[float, float]:
        return _better(self.ci_low, self.ci_high, self.higher_is_better)

    @property
    def better_adj(self) -> tuple[float, float]:
        return _better(self.adj_low, self.adj_high, self.higher_is_better)

    def interval(self, level: float) -> tuple[float, float]:
        """The interval of the difference at `level` (the analysis this comparison used)."""
        if not (self.se > 0) or not math.isfinite(self.se):
            return self.diff, self.diff
        half = float(stats.t.ppf(0.5 + level / 2, self.df)) * self.se
        return self.diff - half, self.diff + half

    def to_dict(self) -> dict:
        d = asdict(self)
        d["welch_ci"] = list(self.welch_ci)
        return d


def _better(lo, hi, higher):
    return (lo, hi) if higher else (-hi, -lo)


def compare(a, b, metric: str = "", reg: str = "", base: str = "", higher_is_better: bool = True,
            alpha: float = ALPHA, seeds_a=None, seeds_b=None, paired: bool | None = None) -> Comparison | None:
    """Regularizer values `a` against baseline values `b` (one per seed). With the seeds of both arms and
    `paired` not False, the blocks both arms have are compared pairwise (module docstring); else Welch.
    None with fewer than two values (or pairs) to compare."""
    if seeds_a is not None and seeds_b is not None and paired is not False:
        da = {int(s): float(v) for s, v in zip(seeds_a, a) if v is not None and math.isfinite(float(v))}
        db = {int(s): float(v) for s, v in zip(seeds_b, b) if v is not None and math.isfinite(float(v))}
        common = sorted(da.keys() & db.keys())
        if len(common) >= 2:
            return _paired(da, db, common, metric, reg, base, higher_is_better, alpha)
        if paired:
            return None
    a, b = _clean(a), _clean(b)
    if len(a) < 2 or len(b) < 2:
        return None
    va, vb = float(a.var(ddof=1)), float(b.var(ddof=1))
    diff, lo, hi, p = welch_interval(a, b, alpha)
    se = math.sqrt(va / len(a) + vb / len(b))
    df = welch_df(va, len(a), vb, len(b)) if se > 0 else float(len(a) + len(b) - 2)
    return Comparison(metric=metric, reg=reg, base=base, n=len(a), base_n=len(b), mean=float(a.mean()),
                      sem=math.sqrt(va / len(a)), base_mean=float(b.mean()), base_sem=math.sqrt(vb / len(b)),
                      diff=diff, ci_low=lo, ci_high=hi, p=p, higher_is_better=higher_is_better, analysis="welch",
                      se=se, df=df, sd_a=math.sqrt(va), sd_b=math.sqrt(vb), welch_ci=(lo, hi),
                      detectable=detectable_effect(math.sqrt(va), len(a), math.sqrt(vb), len(b), alpha),
                      values=a.tolist(), base_values=b.tolist())


def _paired(da: dict, db: dict, common: list, metric, reg, base, higher, alpha) -> Comparison:
    a = np.array([da[s] for s in common])
    b = np.array([db[s] for s in common])
    n = len(common)
    diff, lo, hi, p = paired_interval(a, b, alpha)
    d = a - b
    sd_d = float(d.std(ddof=1))
    sd_a, sd_b = float(a.std(ddof=1)), float(b.std(ddof=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = float(np.corrcoef(a, b)[0, 1]) if sd_a > 0 and sd_b > 0 else float("nan")
    _, wlo, whi, _ = welch_interval(a, b, alpha)
    return Comparison(metric=metric, reg=reg, base=base, n=n, base_n=n, mean=float(a.mean()),
                      sem=sd_a / math.sqrt(n), base_mean=float(b.mean()), base_sem=sd_b / math.sqrt(n),
                      diff=diff, ci_low=lo, ci_high=hi, p=p, higher_is_better=higher, analysis="paired",
                      n_pairs=n, dropped_unpaired=len(da) + len(db) - 2 * n, se=sd_d / math.sqrt(n),
                      df=float(n - 1), sd_a=sd_a, sd_b=sd_b, sd_diff=sd_d, corr=corr, welch_ci=(wlo, whi),
                      detectable=detectable_effect_paired(sd_d, n, alpha), values=a.tolist(), base_values=b.tolist())


def judge(c: Comparison, m: int = 1, alpha: float = ALPHA) -> str:
    """The verdict word of one comparison in a family of `m` (module docstring); sets the adjusted
    interval, `verdict` and, when inconclusive, the seeds per arm that would decide it (`SEEDS_RULE`)."""
    level = 1 - alpha / max(int(m), 1)
    c.adj_level = level
    c.adj_low, c.adj_high = c.interval(level)
    lo, hi = c.better_adj
    e = c.effect
    if c.kind == "noninferiority":
        rules, e = NONINFERIORITY_RULES, abs(e or 0.0)
    elif e is None or not e > 0:
        raise ValueError(f"{c.metric}: a superiority comparison needs a positive effect of interest")
    else:
        rules = RULES
    word = next(w for w, _, test in rules if test(lo, hi, e))
    c.verdict = word
    if word == "inconclusive":  # one assumption on every line (`leaderboard.power.SEEDS_RULE`)
        c.seeds_to_decide, c.seeds_to_decide_unpaired = seeds_to_decide(
            e, c.analysis, c.sd_diff, c.sd_a, c.sd_b, alpha / max(int(m), 1))
    return word


def combine(words: list[str], quantifier: str = "all") -> str:
    """A claim's word from its comparisons' words by its quantifier (`QUANTIFIERS`)."""
    return next(w for w, _, test in QUANTIFIERS[quantifier] if test(words))


def judge_claim(comps: list, quantifier: str = "all", alpha: float = ALPHA) -> tuple[str, dict]:
    """Judge every comparison at the Bonferroni level over the claim's comparisons and combine them by
    the quantifier: (verdict, {family: verdict} when the quantifier is `family`, else {})."""
    comps = [c for c in comps if c is not None]
    if not comps:
        return "not tested (metric missing)", {}
    m = len(comps)
    for c in comps:
        judge(c, m, alpha)
    if quantifier == "family":
        fams: dict[str, list[str]] = {}
        for c in comps:
            fams.setdefault(c.family or c.metric, []).append(c.verdict)
        per = {f: combine(w, "all") for f, w in fams.items()}
        words = set(per.values())
        overall = words.pop() if len(words) == 1 else "mixed"
        return overall, per
    return combine([c.verdict for c in comps], quantifier), {}


def rule_text(alpha: float = ALPHA) -> str:
    """The rule the verdicts follow, in words, built from the tables `judge` and `combine` apply."""
    sup = "; ".join(f"*{w}* when {d}" for w, d, _ in RULES)
    ni = "; ".join(f"*{w}* when {d}" for w, d, _ in NONINFERIORITY_RULES)
    q = " ".join(f"Quantifier `{k}` ({QUANTIFIER_TEXT[k]}): " + "; ".join(f"*{w}* when {d}" for w, d, _ in rules) + "."
                 for k, rules in QUANTIFIERS.items())
    return (f"Each comparison's interval is the family-wise adjusted one: Bonferroni over the claim's m comparisons, "
            f"level 1 - {alpha}/m, in the direction the claim calls better. Superiority: {sup}. Non-inferiority "
            f"(margin M): {ni}. {q} Quantifier `family`: {QUANTIFIER_TEXT['family']}; the claim's word is the "
            "families' common word, or *mixed* with each family's word listed. " + SEEDS_RULE)
