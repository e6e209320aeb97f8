"""The accuracy-matched `none` control (issue 31, item 4): each regularized run beside `none` of the same seed
block at the `none` epoch whose validation accuracy is closest to the regularized run's (its selected epoch's).

A regularizer that costs clean accuracy can look robust for that reason alone; `none` at the same accuracy says
how much of a gain is left once accuracy is matched. The `none` records carry their epochs' evaluations
(`epoch_suite`, written by `bench.app.epoch_evals` when a run has `epoch_evals=true`); this module only reads
records. Matching is on the validation split the runs were selected on: its size and the standard error of an
accuracy on it, sqrt(p (1 - p) / n), are reported, since two accuracies closer than about two standard errors
cannot be told apart.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as st

from .derived import record_rows

METRICS = ("clean.accuracy", "gaussian_noise.relative_robustness", "gaussian_noise_extended.relative_robustness",
           "transfer_fgsm.relative_robustness", "transfer_fgsm_extended.relative_robustness", "minimal_l2.median_l2")


def _json(p: Path):
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError):
        return None


def _val_accs(run: Path) -> dict[int, float]:
    p = run / "train_log.jsonl"
    lines = p.read_text().splitlines() if p.is_file() else []
    return {int(x["epoch"]): float(x["val_acc"]) for x in map(json.loads, lines) if "val_acc" in x}


def _epoch_values(ent: dict) -> dict[str, float]:
    """Summary metrics of one evaluated epoch (the derived minimal L2 from its per-image distances)."""
    out = {}
    for t, summ in (ent.get("results") or {}).items():
        for k, v in (summ or {}).items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                out[f"{t}.{k}"] = float(v)
    pseudo = {t: {"result": {"details": d}} for t, d in (ent.get("details") or {}).items()}
    out.update({r["metric"]: r["value"] for r in record_rows(pseudo) if r["metric"] == "minimal_l2.median_l2"})
    return out


def _runs(roots) -> list[dict]:
    runs = []
    for root in roots:
        for cfg_p in sorted(Path(root).glob("*/config.json")):
            head, met = _json(cfg_p), _json(cfg_p.parent / "metrics.json")
            # a damaged record (named by the leaderboard's loader, which skips it) has no place in the control
            if not (isinstance(head, dict) and isinstance(head.get("config"), dict) and isinstance(met, dict)
                    and isinstance(met.get("train"), dict) and isinstance(head.get("comparison_key"), str)
                    and isinstance(head.get("data"), dict)):
                continue
            runs.append({"dir": cfg_p.parent, "head": head, "metrics": met})
    return runs


def _arm(cfg: dict) -> str:
    """The arm's name with the hyper-parameters its config sets (two settings of one regularizer are two arms)."""
    p = cfg.get("reg_params") or {}
    return cfg["regularizer"] + (f" ({', '.join(f'{k}={p[k]}' for k in sorted(p))})" if p else "")


def _setup(head: dict) -> str:
    """What a comparison shares, readably (the comparison key's hash, its data and budget): rows of two setups
    are never averaged together."""
    d, b = head.get("data") or {}, head.get("budget") or {}
    return f"{d.get('dataset', '?')} {d.get('color', '')} {b.get('steps', '?')} steps [{head['comparison_key'][:6]}]"


def matched_rows(tidy: pd.DataFrame, *roots) -> pd.DataFrame:
    """One row per (regularized run, metric): the run's value, `none`'s final value (both from `tidy`, the
    records of `roots` as `leaderboard.load_records` reads them) and `none`'s value at the matched epoch, with
    the two validation accuracies and the matched epoch."""
    runs = _runs(roots)
    nones = {(r["head"]["comparison_key"], r["head"]["config"]["seed"]): r for r in runs
             if r["head"]["config"].get("regularizer") == "none"
             and isinstance(r["metrics"].get("epoch_suite"), dict)
             and isinstance(r["metrics"]["epoch_suite"].get("epochs"), dict) and r["metrics"]["epoch_suite"]["epochs"]}
    if not nones:
        return pd.DataFrame()
    final = {(d, m): v for d, m, v in zip(tidy["run_dir"], tidy["metric"], tidy["value"])}
    rows = []
    for r in runs:
        cfg = r["head"]["config"]
        base = nones.get((r["head"]["comparison_key"], cfg["seed"]))
        if cfg["regularizer"] == "none" or base is None:
            continue
        sel = int(r["metrics"]["train"].get("selected_epoch", -1))
        acc = _val_accs(r["dir"]).get(sel)
        epochs = base["metrics"]["epoch_suite"]["epochs"]
        if acc is None or not epochs:
            continue
        k = min(epochs, key=lambda e: (abs(float(epochs[e].get("val_acc", np.inf)) - acc), int(e)))
        vals, n_val = _epoch_values(epochs[k]), int(r["head"]["data"]["n_val"])
        se, nacc = math.sqrt(max(acc * (1 - acc), 1e-12) / n_val), float(epochs[k].get("val_acc", np.nan))
        for m in METRICS:
            rows.append({"regularizer": cfg["regularizer"], "arm": _arm(cfg), "setup": _setup(r["head"]),
                         "seed": cfg["seed"], "metric": m,
                         "comparison_key": r["head"]["comparison_key"], "reg_val_acc": acc, "reg_epoch": sel,
                         "none_epoch": int(k), "none_val_acc": nacc, "n_val": n_val, "val_se": se,
                         "within_2se": bool(abs(nacc - acc) <= 2 * se),
                         "value": final.get((str(r["dir"]), m), np.nan),
                         "none_final": final.get((str(base["dir"]), m), np.nan),
                         "none_matched": vals.get(m, np.nan)})
    return pd.DataFrame(rows)


def paired_interval_text(d) -> str:
    """`mean [lo, hi]` of paired differences `d` with its 95% t interval over the blocks (the mean alone for one)."""
    d = np.asarray(d, dtype=float)
    if len(d) < 2:
        return f"{d.mean():+.3g}"
    h = float(st.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d)))
    return f"{d.mean():+.3g} [{d.mean() - h:+.3g}, {d.mean() + h:+.3g}]"


def matched_markdown(df: pd.DataFrame) -> str:
    """Per arm and metric: the arm, `none` at the end, `none` at matched accuracy, and the paired difference to
    the matched `none` with its 95% t interval over the seed blocks, one line per setup (comparison key) and arm.
    The last column counts the blocks whose `none` has an epoch within two standard errors of the arm's accuracy:
    where it has none (the arm is less accurate than `none`'s first epoch, or more accurate than its best), the
    control is not at the same accuracy."""
    if df is None or df.empty:
        return ""
    out = ["| setup | arm | metric | blocks | arm's value | none (final) | none (accuracy-matched) | "
           "arm - matched none (95% CI) | "
           "val. acc. arm / matched none (epochs) | val. split | matched within 2 SE |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    for (setup, reg, m), g in df.groupby(["setup", "arm", "metric"], sort=True):
        g = g.dropna(subset=["value", "none_matched"])
        if g.empty:
            continue
        d = (g["value"] - g["none_matched"]).to_numpy()
        n = len(d)
        ci = paired_interval_text(d)
        out.append(f"| {setup} | {reg} | {m} | {n} | {g['value'].mean():.4g} | {g['none_final'].mean():.4g} | "
                   f"{g['none_matched'].mean():.4g} | {ci} | {g['reg_val_acc'].mean():.3f} / "
                   f"{g['none_val_acc'].mean():.3f} ({', '.join(map(str, g['none_epoch']))}) | "
                   f"n={int(g['n_val'].iloc[0])}, SE {g['val_se'].mean():.3f} | "
                   f"{int(g['within_2se'].sum())} of {n} |")
    return "\n".join(out)
