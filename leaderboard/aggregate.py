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
rows have, else Welch (`leaderboard.differences`, the rule the report applies). pandas does the grouping; scipy does the statistics; nothing is hand-rolled.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import math
import re
import sys
import warnings
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd
from scipy import stats

from bench.core import store
from bench.core.records import Record
from bench.core.stats import sem  # noqa: F401  (re-exported: leaderboard.sem)

from .derived import corruption_error_rows, record_rows
from .differences import differences
from .pareto import pareto_points

# Columns that identify an aggregated row (besides the statistics).
GROUP_COLS = ["dataset", "color", "arch", "width", "budget_steps", "regularizer", "reg_params",
              "comparison_key", "protocol_id"]
# Descriptive columns carried along (identical within a group by construction, or joined).
INFO_COLS = ["label", "external", "model_params", "protocol", "suite_name", "epochs", "n_test"]
BASELINE = "none"
SCORE = "score"
# device_shared_by: present (> 1) only when worker processes shared the device, so its seconds include theirs
TRAIN_COST_KEYS = ("wall_s", "device_s", "steps", "images", "reg_images", "task_images", "peak_memory_mb",
                   "device_shared_by")


def _canon(obj) -> str:
    return json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))


def _short_hash(obj) -> str:
    return hashlib.sha256(_canon(obj).encode()).hexdigest()[:10]


def _is_number(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


def reg_label(name: str, params: dict, defaults: dict | None = None) -> str:
    """`pixel_sim(alpha=5)`: the name and the hyper-parameters that differ from the defaults the record
    holds (`config.json: regularizer.defaults`; a record without them shows every hyper-parameter)."""
    if not params or name == BASELINE:
        return str(name)
    d = defaults or {}
    shown = {k: v for k, v in params.items() if k not in d or d[k] != v}
    if not shown:
        return str(name)
    return f"{name}(" + ", ".join(f"{k}={v}" for k, v in sorted(shown.items())) + ")"


def curve_auc(x, y) -> float:
    """Normalised area under a curve: trapezoid area / x range = mean y over the range."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if len(x) < 2 or np.ptp(x) == 0:
        return float(y.mean()) if len(y) else float("nan")
    order = np.argsort(x)
    return float(np.trapezoid(y[order], x[order]) / np.ptp(x))


def protocol_text(sig: dict) -> str:
    """Compact human form of a suite protocol map {test: {"protocol", "n_examples"}}:
    `clean v1 n=128; gaussian_noise v1 n=128 (clamp=image, stds=[...])`."""
    parts = []
    for test in sorted(sig):
        ent = sig[test] or {}
        proto = dict(ent.get("protocol") or {})
        proto.pop("test", None)
        ver = proto.pop("version", "?")
        extra = ", ".join(f"{k}={v}" for k, v in sorted(proto.items()))
        parts.append(f"{test} v{ver} n={ent.get('n_examples', '?')}" + (f" ({extra})" if extra else ""))
    return "; ".join(parts)


def compatible(a: dict, b: dict) -> bool:
    """Two protocol maps agree on every test they share (a record may lack a test another has)."""
    return all(a[t] == b[t] for t in a.keys() & b.keys())


def _float(v) -> float:
    return float(v) if _is_number(v) else float("nan")


def _skipped(ent) -> bool:
    """A test recorded as skipped (e.g. no surrogate): not part of the protocol, no metrics."""
    return bool((((ent or {}).get("result") or {}).get("details") or {}).get("skipped"))


def _record_meta(run_dir: Path, rec: dict, metrics: dict) -> dict:
    cfg = rec.get("config") or {}
    model = rec.get("model") or {}
    budget = rec.get("budget") or {}
    regd = rec.get("regularizer") or {}
    reg = regd.get("name") or cfg.get("regularizer", "?")
    params = regd.get("params")
    if params is None:
        params = cfg.get("reg_params") or {}
    suite = {t: e for t, e in (metrics.get("suite") or {}).items() if not _skipped(e)}
    # The suite protocol: each test's protocol and number of examples. Seeds are not part of it
    # (they differ between the seeds being averaged by design).
    sig = {t: {"protocol": (e or {}).get("protocol"), "n_examples": (e or {}).get("n_examples")}
           for t, e in suite.items()}
    ext = rec.get("external")
    return {
        "run_dir": str(run_dir), "hash": rec.get("hash", run_dir.name),
        "dataset": (rec.get("data") or {}).get("dataset", cfg.get("dataset", "?")),
        "color": (rec.get("data") or {}).get("color", cfg.get("color", "?")),
        "arch": model.get("arch", cfg.get("arch", "?")),
        "width": _float(model.get("width", cfg.get("width"))),
        "model_params": model.get("params"),
        "budget_steps": budget.get("steps", -1) if budget.get("steps") is not None else -1,
        "epochs": budget.get("epochs", cfg.get("epochs")),
        "n_test": (rec.get("data") or {}).get("n_test", cfg.get("n_test")),
        "regularizer": str(reg), "reg_params": _canon(params), "label": reg_label(reg, params, regd.get("defaults")),
        "comparison_key": rec.get("comparison_key", "?"),
        "external": bool(ext) or str(reg).startswith("robustbench:"),
        "seed": cfg.get("seed", 0),
        "design": "blocks" if cfg.get("data_seed") is None and cfg.get("surrogate_seed") is None else "fixed data",
        "suite_name": metrics.get("suite_name", cfg.get("suite")),
        "protocol_id": _short_hash(sig), "protocol": protocol_text(sig), "protocol_map": _canon(sig), "_sig": sig,
        "skipped": _canon({t: str(((e or {}).get("result") or {}).get("details", {}).get("skipped"))
                           for t, e in (metrics.get("suite") or {}).items() if _skipped(e)}),
    }


def _record_metrics(metrics: dict) -> list[dict]:
    rows = []
    suite = metrics.get("suite") or {}
    for test, ent in sorted(suite.items()):
        ent = ent or {}
        if _skipped(ent):
            continue
        res = ent.get("result") or {}
        lower = set(ent.get("lower_is_better") or [])
        for k, v in (res.get("summary") or {}).items():
            if _is_number(v):
                rows.append({"test": test, "metric": f"{test}.{k}", "value": float(v), "kind": "summary",
                             "lower_is_better": k in lower})
            elif v is None and k == "strength_50":
                top = _top_level(res)
                if top is not None:  # never fell to half of clean: censored at the top level, not dropped
                    rows.append({"test": test, "metric": f"{test}.{k}", "value": top, "kind": "summary",
                                 "lower_is_better": False, "censored": True})
        summary = res.get("summary") or {}
        for cname, c in (res.get("curves") or {}).items():
            if not isinstance(c, dict) or "x" not in c or "y" not in c:
                continue
            key = f"{cname}_auc"
            if key in summary:
                continue
            rows.append({"test": test, "metric": f"{test}.{key}", "value": curve_auc(c["x"], c["y"]),
                         "kind": "auc", "lower_is_better": False})
        for k, v in (ent.get("cost") or {}).items():
            if _is_number(v):
                rows.append({"test": test, "metric": f"{test}.cost.{k}", "value": float(v), "kind": "cost",
                             "lower_is_better": True})
    costs = [(e or {}).get("cost") or {} for e in suite.values()]
    for k in ("seconds", "forward_images"):
        vals = [c[k] for c in costs if _is_number(c.get(k))]
        if vals:
            rows.append({"test": "eval", "metric": f"eval.{k}", "value": float(sum(vals)), "kind": "cost",
                         "lower_is_better": True})
    train = metrics.get("train") or {}
    for k in TRAIN_COST_KEYS:
        if _is_number(train.get(k)):
            rows.append({"test": "train", "metric": f"train.{k}", "value": float(train[k]), "kind": "cost",
                         "lower_is_better": True})
    return rows


def _top_level(res: dict) -> float | None:
    """The strongest level of a result's accuracy curve (where a censored strength_50 is censored)."""
    c = (res.get("curves") or {}).get("accuracy") or {}
    xs = [float(x) for x in c.get("x") or [] if _is_number(x)]
    return max(xs) if xs else None


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
                m.update(protocol_id=_short_hash(cmap), protocol=protocol_text(cmap), protocol_map=_canon(cmap))


def _read_all(roots, strict: bool | None = None) -> list[tuple[Path, dict, dict, dict]]:
    """(run_dir, config record, metrics, meta) of every record, protocol clusters assigned."""
    if not roots:
        roots = ("results",)
    missing = [str(r) for r in roots if not Path(r).exists()]
    if missing:
        raise FileNotFoundError(f"results directory not found: {', '.join(missing)}")
    out = [(d, rec, m, _record_meta(d, rec, m)) for d, rec, m in _iter_records(roots, strict)]
    _assign_protocols([x[3] for x in out])
    for x in out:
        x[3].pop("_sig", None)
    return out


TIDY_COLS = ["run_dir", "hash", "dataset", "color", "arch", "width", "model_params", "budget_steps", "epochs",
             "n_test", "regularizer", "reg_params", "label", "comparison_key", "external", "seed", "design", "suite_name",
             "protocol_id", "protocol", "protocol_map", "test", "metric", "value", "kind", "lower_is_better", "score_basis",
             "skipped", "censored"]


# ------------------------------------------------------------------ robust record loading
_LOADING = {"strict": False, "warned": None, "warn": None}


@contextlib.contextmanager
def loading_options(strict: bool = False, warn=None):
    """Within the block, record loading is strict (a damaged record is an error) or not (it is
    skipped with a warning), and each warning is emitted once (the plots read the records
    several times). `warn(message)` defaults to a `warning: ...` line on stderr."""
    old = dict(_LOADING)
    _LOADING.update(strict=bool(strict), warned=set(), warn=warn)
    try:
        yield
    finally:
        _LOADING.clear()
        _LOADING.update(old)


def _warn(msg: str) -> None:
    seen = _LOADING.get("warned")
    if seen is not None:
        if msg in seen:
            return
        seen.add(msg)
    fn = _LOADING.get("warn")
    if fn is not None:
        fn(msg)
    else:
        print(f"warning: {msg}", file=sys.stderr)


def _record_key(run_dir: Path, rec: dict) -> tuple:
    """A record is one (config hash, seed): copies of it (overlapping roots, a copied folder) are one."""
    cfg = rec.get("config") or {}
    return (str(rec.get("hash") or run_dir.name), repr(cfg.get("seed")), str(rec.get("external") or ""))


_HEADER_DICTS = ("config", "model", "budget", "regularizer", "data")
_HASH_RE = re.compile(r"[0-9a-f]{12}")


def _check_shape(record: Record, rec: dict, metrics: dict) -> None:
    """A record the board can read: the header's parts and the metrics' entries are JSON objects, every value
    the board takes reads (`_record_meta`, `_record_metrics` run once here), and a header written by this
    project (a 12-hex `hash`) still matches its config (`Record.hash_problem`). Else `DamagedRecord`."""
    cfg_path, met_path = record.path / "config.json", record.path / "metrics.json"
    for k in _HEADER_DICTS:
        if k in rec and rec[k] is not None and not isinstance(rec[k], dict):
            raise store.DamagedRecord(cfg_path, f"{k!r} is a {type(rec[k]).__name__}, not a JSON object")
    for k in ("train", "suite"):
        if k in metrics and metrics[k] is not None and not isinstance(metrics[k], dict):
            raise store.DamagedRecord(met_path, f"{k!r} is a {type(metrics[k]).__name__}, not a JSON object")
    bad = [t for t, e in (metrics.get("suite") or {}).items() if e is not None and not isinstance(e, dict)]
    if bad:
        raise store.DamagedRecord(met_path, f"suite entry {bad[0]!r} is not a JSON object")
    if isinstance(rec.get("config"), dict):
        from bench.core.config import RunConfig, validate
        try:
            validate(RunConfig.from_dict(rec["config"]))
        except (TypeError, ValueError) as e:
            raise store.DamagedRecord(cfg_path, " ".join(str(e).split())[:200]) from None
    try:
        _record_meta(record.path, rec, metrics)
    except (AttributeError, TypeError, ValueError, KeyError) as e:
        raise store.DamagedRecord(cfg_path, f"unreadable ({type(e).__name__}: {e})") from None
    try:
        _record_metrics(metrics)
    except (AttributeError, TypeError, ValueError, KeyError) as e:
        raise store.DamagedRecord(met_path, f"unreadable ({type(e).__name__}: {e})") from None
    if _HASH_RE.fullmatch(str(rec.get("hash") or "")):
        why = record.hash_problem()
        if why is not None:
            raise store.DamagedRecord(cfg_path, f"does not match the record's hash: {why} (edited after training?)")


def _iter_records(roots, strict: bool | None = None) -> Iterable[tuple[Path, dict, dict]]:
    """Every evaluated, successful record under the roots, each (config hash, seed) once.

    A damaged config.json/metrics.json is skipped with a warning naming the file (an error when
    `strict`); a failed record (non-finite training, ...) is never ranked; duplicates are counted
    once (the copy with the most suite results is kept) with a warning naming the others."""
    strict = _LOADING["strict"] if strict is None else strict
    damaged, failed = [], []
    found: dict[tuple, list] = {}
    seen_dirs = set()
    for record in Record.find(*roots):
        run_dir = record.path
        real = run_dir.resolve()
        if real in seen_dirs:  # the same folder reached through two roots
            _warn(f"record {run_dir} is reached through more than one results root; counted once")
            continue
        seen_dirs.add(real)
        try:
            rec = record.header()
            if not isinstance(rec, dict):
                raise store.DamagedRecord(run_dir / "config.json", "not a JSON object")
            metrics = record.metrics()
            if not isinstance(metrics, dict):
                raise store.DamagedRecord(run_dir / "metrics.json", "not a JSON object")
            _check_shape(record, rec, metrics)
        except store.DamagedRecord as e:
            if strict:
                raise store.DamagedRecord(e.path, f"{e.detail} (--strict; without it the record is skipped)") from None
            damaged.append(e.path)
            _warn(f"skipped damaged record file {e.path}: {e.detail}")
            continue
        train = metrics.get("train") or {}
        if isinstance(train, dict) and (train.get("failed") or train.get("done") is False):
            failed.append(run_dir)
            why = " ".join(str(train.get("error") or "training did not finish").split())[:200]
            _warn(f"skipped failed record {run_dir}: {why}")
            continue
        if not metrics.get("suite"):
            # trained but never evaluated (e.g. a transfer surrogate, or a run still in its suite):
            # its training costs alone would inflate the n of its group's cost columns
            continue
        found.setdefault(_record_key(run_dir, rec), []).append((run_dir, rec, metrics))
    if damaged:
        _warn(f"{len(damaged)} damaged record(s) skipped (--strict makes this an error)")
    for key, items in found.items():
        if len(items) > 1:
            items.sort(key=lambda x: -len(x[2].get("suite") or {}))  # stable: the first of equals stays
            others = ", ".join(str(x[0]) for x in items[1:])
            _warn(f"{len(items)} copies of record {key[0]} (seed {key[1]}) counted once: using {items[0][0]}, "
                  f"ignoring {others}")
        yield items[0]


def load_records(*roots, strict: bool | None = None) -> pd.DataFrame:
    """Every record under the roots as a tidy DataFrame: one row per (record, metric)."""
    rows = []
    records = list(_read_all(roots, strict))
    # metrics that need the `none` records of the same comparison (leaderboard.derived)
    derived = corruption_error_rows([(meta, metrics.get("suite") or {}) for _, _, metrics, meta in records])
    for run_dir, rec, metrics, meta in records:
        mrows = _record_metrics(metrics)
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
    over common seed blocks, else Welch), and the same with `@<baseline>` (`leaderboard.differences`). `attrs` carries the
    metric order and which metrics are lower-is-better."""
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
        protocol=("protocol", "first"), protocol_map=("protocol_map", "first"), suite_name=("suite_name", "first"), epochs=("epochs", "first"),
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
