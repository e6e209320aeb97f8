"""One record flattened for the board: its meta (setup, regularizer label, suite protocol) and its metric rows
(summary scalars, normalised curve areas, evaluation and training costs).

Kept apart from `leaderboard.aggregate` (which groups and averages the rows) and `leaderboard.loading` (which
finds and checks the records) because both read a record through these functions: the loader runs them once
on every record to refuse one the board could not read.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

BASELINE = "none"
# device_shared_by: present (> 1) only when worker processes shared the device, so its seconds include theirs
TRAIN_COST_KEYS = ("wall_s", "device_s", "steps", "images", "reg_images", "task_images", "peak_memory_mb",
                   "device_shared_by")


def canon(obj) -> str:
    return json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))


def short_hash(obj) -> str:
    return hashlib.sha256(canon(obj).encode()).hexdigest()[:10]


def is_number(v) -> bool:
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
    return float(v) if is_number(v) else float("nan")


def _skipped(ent) -> bool:
    """A test recorded as skipped (e.g. no surrogate): not part of the protocol, no metrics."""
    return bool((((ent or {}).get("result") or {}).get("details") or {}).get("skipped"))


def record_meta(run_dir: Path, rec: dict, metrics: dict) -> dict:
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
        "regularizer": str(reg), "reg_params": canon(params), "label": reg_label(reg, params, regd.get("defaults")),
        "comparison_key": rec.get("comparison_key", "?"),
        "external": bool(ext) or str(reg).startswith("robustbench:"),
        "seed": cfg.get("seed", 0),
        "design": "blocks" if cfg.get("data_seed") is None and cfg.get("surrogate_seed") is None else "fixed data",
        "suite_name": metrics.get("suite_name", cfg.get("suite")),
        "protocol_id": short_hash(sig), "protocol": protocol_text(sig), "protocol_map": canon(sig), "_sig": sig,
        "skipped": canon({t: str(((e or {}).get("result") or {}).get("details", {}).get("skipped"))
                           for t, e in (metrics.get("suite") or {}).items() if _skipped(e)}),
    }


def record_metrics(metrics: dict) -> list[dict]:
    rows = []
    suite = metrics.get("suite") or {}
    for test, ent in sorted(suite.items()):
        ent = ent or {}
        if _skipped(ent):
            continue
        res = ent.get("result") or {}
        lower = set(ent.get("lower_is_better") or [])
        for k, v in (res.get("summary") or {}).items():
            if is_number(v):
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
            if is_number(v):
                rows.append({"test": test, "metric": f"{test}.cost.{k}", "value": float(v), "kind": "cost",
                             "lower_is_better": True})
    costs = [(e or {}).get("cost") or {} for e in suite.values()]
    for k in ("seconds", "forward_images"):
        vals = [c[k] for c in costs if is_number(c.get(k))]
        if vals:
            rows.append({"test": "eval", "metric": f"eval.{k}", "value": float(sum(vals)), "kind": "cost",
                         "lower_is_better": True})
    train = metrics.get("train") or {}
    for k in TRAIN_COST_KEYS:
        if is_number(train.get(k)):
            rows.append({"test": "train", "metric": f"train.{k}", "value": float(train[k]), "kind": "cost",
                         "lower_is_better": True})
    return rows


def _top_level(res: dict) -> float | None:
    """The strongest level of a result's accuracy curve (where a censored strength_50 is censored)."""
    c = (res.get("curves") or {}).get("accuracy") or {}
    xs = [float(x) for x in c.get("x") or [] if is_number(x)]
    return max(xs) if xs else None

