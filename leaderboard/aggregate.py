"""Records -> tidy pandas tables -> one aggregated row per (setup, regularizer, protocol).

`load_records` flattens every run directory into one row per (record, metric): the suite's
summary scalars (`<test>.<metric>`), the normalised area under each suite curve
(`<test>.<curve>_auc`), the training costs (`train.<key>`) and the suite's evaluation costs
(`<test>.cost.<key>`). `load_curves` gives the curves point by point for the plots.

`aggregate` groups records that may be averaged: same dataset, colour, architecture, width,
step budget, regularizer, hyper-parameters, comparison key (every other training setting) and
the same *suite protocol* (every test's protocol, version and number of examples). Records
whose protocol differs are never averaged: they land in separate rows. Per metric it reports
n, mean, SEM (ddof=1, as scipy.stats.sem) and, against the `none` row with the same comparison
key and protocol and each baseline arm, the difference with its interval: paired over the seed blocks both
rows have, else Welch (`leaderboard.differences`, the rule the report applies). pandas does the grouping;
scipy does the statistics; nothing is hand-rolled.

One record's meta and metric rows come from `leaderboard.flatten`, the robust walk over the results roots from
`leaderboard.loading`; this module joins them into the tidy table and computes the statistics.
"""
from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from bench.core.stats import sem  # noqa: F401  (re-exported: leaderboard.sem)

from .derived import corruption_error_rows, record_rows
from .differences import differences
from .flatten import BASELINE  # noqa: F401  (re-exported: leaderboard.aggregate.BASELINE)
from .flatten import canon, compatible, protocol_text, record_meta, record_metrics, short_hash
from .loading import iter_records
from .pareto import pareto_points

# Columns that identify an aggregated row (besides the statistics).
GROUP_COLS = ["dataset", "color", "arch", "width", "budget_steps", "regularizer", "reg_params",
              "comparison_key", "protocol_id"]
# Descriptive columns carried along (identical within a group by construction, or joined).
INFO_COLS = ["label", "external", "model_params", "protocol", "suite_name", "epochs", "n_test"]
SCORE = "score"
SCORE_TESTS = ("gaussian_noise", "transfer_fgsm")


def record_score(metric_rows: list[dict]) -> tuple[float, str]:
    """The sortable summary score of one record and what it is based on: the mean relative
    robustness (accuracy / the model's own clean accuracy, over the perturbed levels) of the
    Gaussian-noise and transfer-FGSM curves, so that clean accuracy does not decide the ranking;
    older records without it fall back to the normalised AUC of those curves; clean accuracy where
    neither test is present."""
    rel = {r["test"]: r for r in metric_rows
           if r["test"] in SCORE_TESTS and r["metric"] == f"{r['test']}.relative_robustness"
           and np.isfinite(r["value"])}
    if rel:
        return (float(np.mean([r["value"] for r in rel.values()])),
                "mean relative robustness of " + " & ".join(sorted(rel)))
    per_test = {}
    for r in metric_rows:
        if r["kind"] == "auc" and r["test"] in SCORE_TESTS:
            per_test.setdefault(r["test"], r)
    if per_test:
        vals = [r["value"] for r in per_test.values()]
        return float(np.mean(vals)), "mean normalised AUC of " + " & ".join(r["metric"] for r in per_test.values())
    for r in metric_rows:
        if r["metric"] == "clean.accuracy":
            return r["value"], "clean.accuracy"
    return float("nan"), "none"


CONFIG_KEY = ["dataset", "color", "arch", "width", "budget_steps", "regularizer", "reg_params", "comparison_key"]


def _assign_protocols(metas: list[dict]) -> None:
    """Within records of one configuration, cluster those whose suite protocols agree on every
    shared test (greedy, most tests first); each cluster gets the protocol id and text of the
    union of its members' protocols. Extra tests on some seeds keep them in one row (those
    metrics just have a smaller n); a test run with a different protocol splits the row."""
    groups: dict[tuple, list[dict]] = {}
    for m in metas:
        groups.setdefault(tuple(repr(m[c]) for c in CONFIG_KEY), []).append(m)
    for g in groups.values():
        clusters: list[tuple[dict, list]] = []
        for m in sorted(g, key=lambda m: (-len(m["_sig"]), m["run_dir"])):
            for cmap, members in clusters:
                if compatible(cmap, m["_sig"]):
                    cmap.update(m["_sig"])
                    members.append(m)
                    break
            else:
                clusters.append((dict(m["_sig"]), [m]))
        for cmap, members in clusters:
            for m in members:
                m.update(protocol_id=short_hash(cmap), protocol=protocol_text(cmap), protocol_map=canon(cmap))


def _read_all(roots, strict: bool | None = None) -> list[tuple[Path, dict, dict, dict]]:
    """(run_dir, config record, metrics, meta) of every record, protocol clusters assigned."""
    if not roots:
        roots = ("results",)
    missing = [str(r) for r in roots if not Path(r).exists()]
    if missing:
        raise FileNotFoundError(f"results directory not found: {', '.join(missing)}")
    out = [(d, rec, m, record_meta(d, rec, m)) for d, rec, m in iter_records(roots, strict)]
    _assign_protocols([x[3] for x in out])
    for x in out:
        x[3].pop("_sig", None)
    return out


TIDY_COLS = ["run_dir", "hash", "dataset", "color", "arch", "width", "model_params", "budget_steps", "epochs",
             "n_test", "regularizer", "reg_params", "label", "comparison_key", "external", "seed", "design",
             "suite_name", "protocol_id", "protocol", "protocol_map", "test", "metric", "value", "kind",
             "lower_is_better", "score_basis", "skipped", "censored"]



def load_records(*roots, strict: bool | None = None) -> pd.DataFrame:
    """Every record under the roots as a tidy DataFrame: one row per (record, metric)."""
    rows = []
    records = list(_read_all(roots, strict))
    # metrics that need the `none` records of the same comparison (leaderboard.derived)
    derived = corruption_error_rows([(meta, metrics.get("suite") or {}) for _, _, metrics, meta in records])
    for run_dir, rec, metrics, meta in records:
        mrows = record_metrics(metrics)
        if not mrows:
            continue
        mrows += record_rows(metrics.get("suite") or {})
        mrows += derived.get(meta["run_dir"], [])
        score, basis = record_score(mrows)
        mrows.append({"test": "", "metric": SCORE, "value": score, "kind": "score", "lower_is_better": False})
        for r in mrows:
            rows.append({**meta, "censored": False, **r, "score_basis": basis})
    return pd.DataFrame(rows, columns=TIDY_COLS)


def load_curves(*roots) -> pd.DataFrame:
    """Every suite curve point by point: one row per (record, test, curve, x)."""
    rows = []
    for run_dir, rec, metrics, meta in _read_all(roots):
        for test, ent in (metrics.get("suite") or {}).items():
            for cname, c in (((ent or {}).get("result") or {}).get("curves") or {}).items():
                if not isinstance(c, dict) or "x" not in c or "y" not in c:
                    continue
                for i, (x, y) in enumerate(zip(c["x"], c["y"])):
                    if y is None:
                        continue
                    rows.append({**meta, "test": test, "curve": cname, "i": i, "x": x, "y": float(y),
                                 "x_label": c.get("x_label", "x"), "y_label": c.get("y_label", "accuracy")})
    cols = ["run_dir", "dataset", "color", "arch", "width", "budget_steps", "regularizer", "reg_params", "label",
            "comparison_key", "protocol_id", "external", "seed", "test", "curve", "i", "x", "y", "x_label", "y_label"]
    return pd.DataFrame(rows, columns=cols)


def load_details(*roots) -> list[dict]:
    """(meta, suite dict) per record, for plots that need a test's `details` (e.g. corruptions)."""
    return [{"meta": meta, "suite": metrics.get("suite") or {}} for _, _, metrics, meta in _read_all(roots)]


def welch_p(a, b) -> float:
    """Two-sided Welch t-test p-value (unequal variances); NaN when either side has < 2 values."""
    a = np.asarray(a, float)
    b = np.asarray(b, float)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if len(a) < 2 or len(b) < 2:
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # zero variance on both sides -> NaN
        return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def aggregate(tidy: pd.DataFrame) -> pd.DataFrame:
    """Tidy per-record table -> one wide row per group, with per metric the columns
    `<metric>|mean`, `|sem`, `|n`, `|diff` (minus `none`), `|ci_low`, `|ci_high`, `|p`, `|analysis` (paired
    over common seed blocks, else Welch), and the same with `@<baseline>` (`leaderboard.differences`). `attrs`
    carries the metric order and which metrics are lower-is-better."""
    if tidy.empty:
        out = pd.DataFrame(columns=GROUP_COLS + INFO_COLS + ["n_seeds", "seeds"])
        out.attrs.update(metrics=[], lower_is_better=[], kinds={})
        return out
    df = tidy.copy()
    df["width"] = df["width"].fillna(-1.0)
    df["model_params"] = df["model_params"].fillna(-1)
    # per group and metric: the per-seed values (one per record)
    vals = df.groupby(GROUP_COLS + ["metric"], sort=False, dropna=False)["value"].apply(list)
    cens = (df.assign(censored=df["censored"].fillna(False).astype(bool)) if "censored" in df
            else df.assign(censored=False)).groupby(GROUP_COLS + ["metric"], sort=False, dropna=False)["censored"].sum()
    rows = {}
    for key, v in vals.items():
        gkey, metric = key[:-1], key[-1]
        rows.setdefault(gkey, {})[metric] = v
    info = df.groupby(GROUP_COLS, sort=False, dropna=False).agg(
        label=("label", "first"), external=("external", "max"), model_params=("model_params", "max"),
        protocol=("protocol", "first"), protocol_map=("protocol_map", "first"), suite_name=("suite_name", "first"),
        epochs=("epochs", "first"),
        n_test=("n_test", "first"), score_basis=("score_basis", "first"), skipped=("skipped", "first"),
        seeds=("seed", lambda s: ",".join(str(x) for x in sorted(set(int(i) for i in s)))),
        n_seeds=("run_dir", "nunique"))
    meta_m = df.drop_duplicates("metric").set_index("metric")
    metrics = list(meta_m.index)
    # order: score first, then summary metrics and AUCs by test, then costs
    kind_rank = {"score": 0, "summary": 1, "auc": 2, "cost": 3}
    metrics.sort(key=lambda m: (kind_rank.get(meta_m.loc[m, "kind"], 9),
                                0 if m.startswith("clean.") else 1, m))
    out_rows = []
    for gkey, per_metric in rows.items():
        base = dict(zip(GROUP_COLS, gkey))
        base.update(info.loc[gkey].to_dict())
        for m in metrics:
            v = per_metric.get(m, [])
            arr = np.asarray(v, float)
            fin = arr[np.isfinite(arr)]
            base[f"{m}|mean"] = float(fin.mean()) if len(fin) else float("nan")
            base[f"{m}|sem"] = sem(fin)
            base[f"{m}|n"] = int(len(fin))
            k = int(cens.get(gkey + (m,), 0)) if m in per_metric else 0
            if k:
                base[f"{m}|censored"] = k
        out_rows.append(base)
    out = pd.DataFrame(out_rows)
    # differences to `none` and to each baseline arm: paired over common seed blocks, else Welch
    extra = differences(df, GROUP_COLS, out_rows, metrics, {m: meta_m.loc[m, "kind"] for m in metrics}, cens)
    if extra:  # one concat instead of a column at a time (no fragmented frame)
        out = pd.concat([out, pd.DataFrame(extra, index=out.index)], axis=1)
    # setup columns first, then by score (best first) within each setup
    out = out.sort_values(["dataset", "color", "arch", "width", "budget_steps", "comparison_key", f"{SCORE}|mean"],
                          ascending=[True, True, True, True, True, True, False], na_position="last", kind="stable")
    out = out.reset_index(drop=True)
    out["width"] = out["width"].replace(-1.0, float("nan"))
    out["model_params"] = out["model_params"].replace(-1, float("nan"))
    out.attrs.update(metrics=metrics,
                     lower_is_better=[m for m in metrics if bool(meta_m.loc[m, "lower_is_better"])],
                     kinds={m: str(meta_m.loc[m, "kind"]) for m in metrics},
                     pareto=pareto_points(tidy).to_dict("records"))  # per-seed points for the HTML board
    return out


def build_table(*roots_or_df, strict: bool | None = None) -> pd.DataFrame:
    """Aggregated leaderboard from results directories, or from a tidy DataFrame of load_records."""
    if len(roots_or_df) == 1 and isinstance(roots_or_df[0], pd.DataFrame):
        tidy = roots_or_df[0]
    else:
        tidy = load_records(*roots_or_df, strict=strict)
        table = aggregate(tidy)
        from .matched import matched_markdown, matched_rows  # the accuracy-matched `none` control, when recorded
        table.attrs["matched"] = matched_markdown(matched_rows(tidy, *roots_or_df))
        return table
    return aggregate(tidy)


def fmt_num(x, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{x:.{digits}g}"


def fmt_value(mean, sem_, n) -> str:
    """`mean ± SEM (n=3)`."""
    if n is None or (isinstance(n, float) and math.isnan(n)) or int(n) == 0:
        return "–"
    return f"{fmt_num(mean)} ± {fmt_num(sem_, 2)} (n={int(n)})"


def fmt_diff(diff, p) -> str:
    if diff is None or (isinstance(diff, float) and math.isnan(diff)):
        return ""
    return f"{diff:+.3g} (p={fmt_num(p, 2)})"
