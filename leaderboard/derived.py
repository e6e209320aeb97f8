"""Metrics that need more than one record: corruption error relative to the `none` baseline.

Hendrycks & Dietterich (2019) normalise a model's corruption errors by a baseline's, so that hard
corruptions do not dominate the average: for corruption c over severities s,

    CE_c          = sum_s E(c, s) / sum_s E_base(c, s)
    relative CE_c = sum_s (E(c, s) - E_clean) / sum_s (E_base(c, s) - E_base_clean)

and mCE / relative mCE are the means over corruptions (lower is better; 1 = as the baseline). The
baseline here is the mean error of the `none` records of the same comparison (same budget, data,
model, suite protocol of the corruptions test), per corruption and severity, measured on the same
images. relative mCE separates robustness from clean cost: a model that is worse on clean images
but degrades no further under corruption has relative mCE 1 even though its mCE is above 1.
Hand-written: the two ratios above are the whole method and no maintained package provides them
for records like ours.
"""
from __future__ import annotations

import json

import numpy as np

BASELINE = "none"
TEST = "corruptions"


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
            rden = (b_err - b_clean).sum(1)
            rce = np.where(rden > 0, (err - clean_err).sum(1) / rden, np.nan)
        rows = [{"test": TEST, "metric": f"{TEST}.mce_vs_none", "value": float(np.mean(ce)), "kind": "summary",
                 "lower_is_better": True}]
        if np.isfinite(rce).all():
            rows.append({"test": TEST, "metric": f"{TEST}.relative_mce_vs_none", "value": float(np.mean(rce)),
                         "kind": "summary", "lower_is_better": True})
        out[run_dir] = rows
    return out
