"""Does the fast step path change what a study concludes? (issue 30, item 3): an equivalence check, fast vs
plain, paired over seed blocks, on the metrics the studies judge.

Reads two folders of records made with the same preset, regularizers and seeds, one per step path (the plain
arm can be the committed study records: the plain path reruns them bit for bit), pairs each fast record with
the plain record of the same (regularizer, seed) and the same comparison key but for the path, and reports
for every metric the mean difference fast - plain with its 90% t interval over the blocks, per regularizer and
pooled over all (regularizer, seed) pairs. Equivalence margins (issue 30): absolute metrics +-0.02; distances
+-10% (judged on the log ratio, log(fast / plain), whose interval must lie inside [log 0.9, log 1.1]). A metric
is "equivalent" when its interval lies inside the margin, "not equivalent" when the interval lies wholly
outside it, "undecided" otherwise. The rule printed is the rule this code applies.

Run: python benchmarks/fastpath_equivalence.py FAST_DIR PLAIN_DIR [--regularizers none,pixel_sim,pixel_th]
     [--seeds 0-4] [--json OUT]
"""
from __future__ import annotations

import argparse
import json
import math
import sys

import numpy as np
from scipy import stats

ABSOLUTE = ["clean.accuracy", "gaussian_noise.relative_robustness", "transfer_fgsm.relative_robustness"]
DISTANCE = ["minimal_l2.median_l2"]
ABS_MARGIN, REL_MARGIN, LEVEL = 0.02, 0.10, 0.90
RULE = (f"Equivalence rule: per metric, the {LEVEL:.0%} t interval of the paired differences fast - plain over "
        f"seed blocks must lie inside +-{ABS_MARGIN} (absolute metrics) or, for distances, the interval of "
        f"log(fast/plain) inside [log {1 - REL_MARGIN:g}, log {1 + REL_MARGIN:g}]; wholly outside: not "
        "equivalent; otherwise undecided.")


def values(folder: str, regs: list[str], seeds: list[int], as_plain: bool = False) -> dict:
    """{(regularizer, seed, plain hash): {metric: value}} of the records in `folder` (the leaderboard's own
    reader). The plain hash is the record's config hash with step_path=plain, so a fast record pairs with
    exactly the plain record of the same config (not one of another budget with the same seed)."""
    from bench.core.records import Record
    from leaderboard.aggregate import load_records
    tidy = load_records(folder)
    tidy = tidy[tidy["regularizer"].isin(regs) & tidy["seed"].isin(seeds)]
    out: dict = {}
    for run_dir, g in tidy.groupby("run_dir"):
        cfg = Record(run_dir).config()
        key = (cfg.regularizer, int(cfg.seed), cfg.replace(step_path="plain").hash())
        out[key] = {m: float(v) for m, v in zip(g["metric"], g["value"])}
    return out


def interval(d: np.ndarray) -> tuple[float, float, float]:
    n = len(d)
    m = float(np.mean(d))
    if n < 2:
        return m, float("nan"), float("nan")
    h = float(stats.t.ppf(0.5 + LEVEL / 2, n - 1) * np.std(d, ddof=1) / math.sqrt(n))
    return m, m - h, m + h


def verdict(lo: float, hi: float, margin: float) -> str:
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return "undecided"
    if -margin <= lo and hi <= margin:
        return "equivalent"
    if hi < -margin or lo > margin:
        return "not equivalent"
    return "undecided"


def table(fast: dict, plain: dict, regs: list[str]) -> list[dict]:
    rows = []
    for metric in ABSOLUTE + DISTANCE:
        dist = metric in DISTANCE
        for group in regs + ["all"]:
            keys = sorted(k for k in fast if (group == "all" or k[0] == group) and k in plain
                          and metric in fast[k] and metric in plain[k])
            if not keys:
                continue
            f = np.array([fast[k][metric] for k in keys])
            p = np.array([plain[k][metric] for k in keys])
            d = np.log(f / p) if dist else f - p
            m, lo, hi = interval(d)
            rows.append({"metric": metric, "arm": group, "n_blocks": len(keys), "fast_mean": float(f.mean()),
                         "plain_mean": float(p.mean()), "diff": m, "lo": lo, "hi": hi,
                         "scale": "log ratio" if dist else "absolute",
                         "margin": (1 - REL_MARGIN, 1 + REL_MARGIN) if dist else (-ABS_MARGIN, ABS_MARGIN),
                         "verdict": verdict_ratio(lo, hi) if dist else verdict(lo, hi, ABS_MARGIN)})
    return rows


def verdict_ratio(lo: float, hi: float) -> str:
    """Equivalence on log(fast/plain): inside [log 0.9, log 1.1] (asymmetric on the log scale)."""
    a, b = math.log(1 - REL_MARGIN), math.log(1 + REL_MARGIN)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return "undecided"
    if a <= lo and hi <= b:
        return "equivalent"
    if hi < a or lo > b:
        return "not equivalent"
    return "undecided"


def markdown(rows: list[dict]) -> str:
    out = ["| metric | arm | blocks | plain mean | fast mean | fast - plain (90% CI) | margin | verdict |",
           "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r["scale"] == "log ratio":
            diff = (f"x{math.exp(r['diff']):.3f} ({math.exp(r['lo']):.3f} to {math.exp(r['hi']):.3f})"
                    if math.isfinite(r["lo"]) else f"x{math.exp(r['diff']):.3f}")
            margin = f"x{r['margin'][0]:g} to x{r['margin'][1]:g}"
        else:
            diff = f"{r['diff']:+.4f} ({r['lo']:+.4f} to {r['hi']:+.4f})"
            margin = f"+-{r['margin'][1]:g}"
        out.append(f"| {r['metric']} | {r['arm']} | {r['n_blocks']} | {r['plain_mean']:.4f} | {r['fast_mean']:.4f} | "
                   f"{diff} | {margin} | {r['verdict']} |")
    return "\n".join(out) + "\n\n" + RULE


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("fast")
    ap.add_argument("plain")
    ap.add_argument("--regularizers", default="none,pixel_sim,pixel_th")
    ap.add_argument("--seeds", default="0-4")
    ap.add_argument("--json")
    a = ap.parse_args(argv)
    regs = a.regularizers.split(",")
    lo, _, hi = a.seeds.partition("-")
    seeds = list(range(int(lo), int(hi or lo) + 1))
    rows = table(values(a.fast, regs, seeds), values(a.plain, regs, seeds), regs)
    print(markdown(rows))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"rule": RULE, "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
