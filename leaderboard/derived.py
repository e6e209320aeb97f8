"""Metrics derived from a record's stored results or from several records.

* `minimal_l2.median_l2` (one record): the per-image minimal L2 over the converged distance attacks run
  on that image (`min_perturbation`, `boundary_converged`: each an upper bound on the true distance to
  the decision boundary, so the minimum is the tightest bound), in plain L2 (not squared, not per pixel:
  the unit of Li et al.'s 0.13 vs 0.09), median over the images some attack broke.
* `<curve test>.relative_accuracy_max_level` (one record): accuracy at the strongest level / clean
  accuracy, the clean-independent form of "accuracy at the strongest noise".
* `corruptions.mean_error`, `corruptions.error_increase` (one record) and the relative mCE against the
  `none` baseline (several records), below.

Hendrycks & Dietterich (2019) normalise a model's corruption errors by a baseline's, so that hard
corruptions do not dominate the average: for corruption c over severities s,

    CE_c          = sum_s E(c, s) / sum_s E_base(c, s)
    relative CE_c = sum_s (E(c, s) - E_clean) / sum_s (E_base(c, s) - E_base_clean)

and mCE / relative mCE are the means over corruptions (lower is better; 1 = as the baseline). The
baseline here is the mean error of the `none` records of the same comparison (same budget, data,
model, suite protocol of the corruptions test), per corruption and severity, measured on the same
images. relative mCE separates robustness from clean cost: a model that is worse on clean images
but degrades no further under corruption has relative mCE 1 even though its mCE is above 1.
A corruption enters the relative mCE only where the baseline's error increase is large enough to
divide by: its mean over severities at least `MIN_INCREASE` (5 points) and at least `MIN_IMAGES` (10)
images' worth of the images used; the others are listed as excluded (on 100 images, an increase of
0.02 is two images and the ratio is noise). The absolute error and its increase are always reported.
Hand-written: the two ratios above are the whole method and no maintained package provides them
for records like ours.
"""
from __future__ import annotations

import json

import numpy as np

BASELINE = "none"
TEST = "corruptions"
MIN_INCREASE = 0.05  # mean error increase over severities of the baseline, for a corruption to be a denominator
MIN_IMAGES = 10  # ... and at least this many images' worth of the images used
# the converged ones (each checks its convergence)
DISTANCE_TESTS = ("min_perturbation", "min_perturbation_fmn", "boundary_converged")
CURVE_TESTS = ("gaussian_noise", "transfer_fgsm", "transfer_fgsm_reverse", "uniform_noise", "salt_pepper",
               "gaussian_noise_extended", "transfer_fgsm_extended", "transfer_fgsm_reverse_extended")


def per_image_l2(suite: dict, test: str) -> dict[int, float]:
    """{test image index: L2 distance} of a distance test's stored details (inf where the attack failed); empty
    when the record has no well-formed per-image distances for it."""
    det = (((suite or {}).get(test) or {}).get("result") or {}).get("details") or {}
    l2, idx = det.get("per_image_l2"), det.get("image_indices")
    if not (isinstance(l2, list) and isinstance(idx, list) and len(l2) == len(idx)):
        return {}
    return {int(i): (float(v) if v is not None else np.inf) for i, v in zip(idx, l2)}


def record_rows(suite: dict) -> list[dict]:
    """Metrics derived from one record's own results (module docstring)."""
    rows = []
    per = {t: d for t in DISTANCE_TESTS if (d := per_image_l2(suite, t))}
    if per:
        images = sorted(set().union(*[set(d) for d in per.values()]))
        best = np.array([min(d.get(i, np.inf) for d in per.values()) for i in images])
        broken = best[np.isfinite(best)]
        if len(broken):
            rows.append({"test": "minimal_l2", "metric": "minimal_l2.median_l2", "value": float(np.median(broken)),
                         "kind": "summary", "lower_is_better": False})
    for t in CURVE_TESTS:
        c = ((((suite or {}).get(t) or {}).get("result") or {}).get("curves") or {}).get("accuracy")
        if isinstance(c, dict) and c.get("x") and c.get("y") and len(c["x"]) == len(c["y"]):
            pts = sorted(zip(map(float, c["x"]), map(float, c["y"])))
            if pts[0][0] == 0.0 and pts[0][1] > 0:
                rows.append({"test": t, "metric": f"{t}.relative_accuracy_max_level", "value": pts[-1][1] / pts[0][1],
                             "kind": "summary", "lower_is_better": False})
    t = _table((suite or {}).get(TEST))
    if t is not None:
        err, clean_err, _ = t
        rows.append({"test": TEST, "metric": f"{TEST}.mean_error", "value": float(err.mean()), "kind": "summary",
                     "lower_is_better": True})
        rows.append({"test": TEST, "metric": f"{TEST}.error_increase", "value": float(err.mean() - clean_err),
                     "kind": "summary", "lower_is_better": True})
    return rows


def min_denominator(n_images) -> float:
    """The smallest mean error increase of the baseline a relative CE may divide by."""
    n = int(n_images or 0)
    return max(MIN_INCREASE, MIN_IMAGES / n) if n > 0 else MIN_INCREASE


def _table(ent: dict):
    """(errors [C, S] over sorted corruptions, clean error, corruption names) of one record's test."""
    det = ((ent or {}).get("result") or {}).get("details") or {}
    per = det.get("per_corruption")
    clean = det.get("clean_accuracy")
    if not isinstance(per, dict) or not per or clean is None:
        return None
    names = sorted(per)
    try:
        err = 1.0 - np.array([[float(a) for a in per[c]] for c in names], float)
    except (TypeError, ValueError):
        return None
    return err, 1.0 - float(clean), names


def corruption_error_rows(records: list[tuple[dict, dict]]) -> dict[str, list[dict]]:
    """records: (meta, suite dict) per record. Returns {run_dir: [metric rows]} with
    `corruptions.mce_vs_none` and `corruptions.relative_mce_vs_none` for every record that has a
    `none` baseline in its comparison (the `none` records themselves included: their value is
    around 1 by construction, which shows the seed-to-seed spread)."""
    tables, groups = {}, {}
    for meta, suite in records:
        ent = (suite or {}).get(TEST)
        t = _table(ent) if ent else None
        if t is None:
            continue
        proto = json.dumps((ent or {}).get("protocol"), sort_keys=True, default=str)
        key = (meta.get("comparison_key"), proto, (ent or {}).get("n_examples"))
        tables[meta["run_dir"]] = (key, t)
        if meta.get("regularizer") == BASELINE:
            groups.setdefault(key, []).append(t)
    base = {}
    for key, ts in groups.items():
        names = ts[0][2]
        if any(t[2] != names or t[0].shape != ts[0][0].shape for t in ts):
            continue
        base[key] = (np.mean([t[0] for t in ts], 0), float(np.mean([t[1] for t in ts])))
    out = {}
    for run_dir, (key, (err, clean_err, names)) in tables.items():
        if key not in base or base[key][0].shape != err.shape:
            continue
        b_err, b_clean = base[key]
        with np.errstate(divide="ignore", invalid="ignore"):
            ce = err.sum(1) / b_err.sum(1)
            rden = (b_err - b_clean).mean(1)  # the baseline's mean increase over severities, per corruption
            use = rden >= min_denominator(key[2])
            rce = (err - clean_err).mean(1)[use] / rden[use]
        rows = [{"test": TEST, "metric": f"{TEST}.mce_vs_none", "value": float(np.mean(ce)), "kind": "summary",
                 "lower_is_better": True}]
        if len(rce) and np.isfinite(rce).all():
            rows.append({"test": TEST, "metric": f"{TEST}.relative_mce_vs_none", "value": float(np.mean(rce)),
                         "kind": "summary", "lower_is_better": True})
        out[run_dir] = rows
    return out


def relative_mce_comparison(records: list[tuple[dict, dict]], reg: str, key=None, alpha: float = 0.05) -> dict | None:
    """Relative mCE of `reg` minus the baseline's (1 by construction), with an interval that carries the
    uncertainty of the baseline's mean into it. Per corruption c the ratio R_c = mean_s A_cs / mean_s B_cs
    of the mean error increases (A: reg, B: none, s: seed blocks, both arms paired over common blocks);
    the difference is mean_c R_c - 1 and its standard error comes from the linearised per-block values
    z_s = mean_c (A_cs - R_c B_cs) / mean_s B_cs (the ratio estimator's delta method, Cochran 1977,
    sec. 6.4), so a small or noisy denominator widens the interval instead of hiding in it. Corruptions
    below the denominator threshold are left out and counted. None without two common blocks."""
    from scipy import stats as sst
    incs: dict[str, dict[int, np.ndarray]] = {BASELINE: {}, reg: {}}
    names_of, n_img = None, None
    for meta, suite in records:
        r = meta.get("regularizer")
        if r not in incs or (key is not None and meta.get("comparison_key") != key):
            continue
        t = _table((suite or {}).get(TEST))
        if t is None:
            continue
        err, clean_err, names = t
        if names_of is not None and names != names_of:
            continue
        names_of = names
        n_img = ((suite.get(TEST) or {}).get("n_examples"))
        incs[r][int(meta.get("seed", 0))] = (err - clean_err).mean(1)
    common = sorted(incs[BASELINE].keys() & incs[reg].keys())
    if len(common) < 2:
        return None
    A = np.array([incs[reg][s] for s in common])  # [blocks, corruptions]
    B = np.array([incs[BASELINE][s] for s in common])
    bbar = B.mean(0)
    use = bbar >= min_denominator(n_img)
    if not use.any():
        return {"corruptions_used": 0, "excluded": list(names_of or []), "n": len(common)}
    R = A[:, use].mean(0) / bbar[use]
    diff = float(R.mean() - 1.0)
    z = ((A[:, use] - R * B[:, use]) / bbar[use]).mean(1)
    se = float(z.std(ddof=1) / np.sqrt(len(z)))
    half = float(sst.t.ppf(1 - alpha / 2, len(z) - 1)) * se
    excluded = [n for n, u in zip(names_of, use) if not u]
    return {"diff": diff, "ci_low": diff - half, "ci_high": diff + half, "se": se, "n": len(common),
            "relative_mce": float(R.mean()), "corruptions_used": int(use.sum()), "excluded": excluded,
            "threshold": min_denominator(n_img)}
