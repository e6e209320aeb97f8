"""The paper's figures from the records (matplotlib, Agg backend; PNG and SVG).

* `noise`: accuracy vs Gaussian-noise std, mean over seeds with a ±SEM shade per regularizer;
* `fgsm`: accuracy vs transfer-FGSM eps, same layout;
* `boundary`: median squared L2 per pixel of the boundary attack (bars, SEM over seeds), next to
  the converged white-box minimum (`min_perturbation`) where the records have it;
* `corruption_severity`: corruption accuracy per severity (mean over corruptions), ±SEM shade;
* `corruption_types`: accuracy per corruption at severity 4 (bars, SEM over seeds);
* `training_cost`: wall seconds and images processed per regularizer;
* `pareto`: clean accuracy against each robustness summary, a point per (arm, seed) and the arm's mean
  (`leaderboard.pareto`).

One figure per comparable setup (comparison key + suite protocol: only those share a budget and
a protocol); a suffix names the setup when the results hold more than one. Colours are fixed per
regularizer name (the same in every figure); hyper-parameter variants of one regularizer share its
colour and differ in line style / hatch. A figure whose data is absent is skipped with a message.
"""
from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from . import differences, pareto  # noqa: E402
from .aggregate import load_curves, load_details, load_records, sem  # noqa: E402

# the baselines (leaderboard.differences.BASELINES) get colours outside the hashed palette and their own markers
FIXED_COLORS = {"none": "#555555", "pixel_sim": "#1f77b4", "pixel_th": "#ff7f0e", "neural_pred": "#2ca02c",
                "noise_aug": "#000000", "fgsm_at": "#b8860b"}
MARKERS = {"noise_aug": "s", "fgsm_at": "D"}
_PALETTE = ["#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#aec7e8",
            "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5"]
_STYLES = ["-", "--", ":", "-."]
_HATCHES = ["", "//", "..", "xx"]
NOISE_TEST, FGSM_TEST, BOUNDARY_TEST, MIN_PERT_TEST = "gaussian_noise", "transfer_fgsm", "boundary", "min_perturbation"
CORRUPTION_TEST, SEVERITY_DETAIL = "corruptions", 4


def color_for(regularizer: str) -> str:
    """A fixed colour per regularizer name: the built-ins have their own, others a stable hash."""
    if regularizer in FIXED_COLORS:
        return FIXED_COLORS[regularizer]
    h = int(hashlib.sha256(regularizer.encode()).hexdigest(), 16)
    return _PALETTE[h % len(_PALETTE)]


def marker_for(regularizer: str) -> str:
    """Circles, and a marker of its own for each baseline arm."""
    return MARKERS.get(regularizer, "o")


def _style_index(df: pd.DataFrame) -> dict:
    """label -> index among the labels of the same regularizer (line style / hatch)."""
    out = {}
    for reg, g in df.drop_duplicates("label").groupby("regularizer"):
        for i, lab in enumerate(sorted(g["label"])):
            out[lab] = i
    return out


def _blocks(df: pd.DataFrame, multi: bool = True):
    """(file suffix, title, rows) per comparable setup; `multi`: the results hold several setups
    (the suffix then names the setup, the same in every figure)."""
    keys = ["comparison_key", "protocol_id"]
    for (ck, pid), g in df.groupby(keys, sort=True):
        r = g.iloc[0]
        suffix = f"_{r['dataset']}_{ck}_{pid}" if multi else ""
        w = r.get("width")
        title = f"{r['dataset']} ({r['color']}), {r['arch']}" + ("" if pd.isna(w) else f" width {w:g}")
        yield suffix, title, g


def _setup_cols():
    return ["run_dir", "dataset", "color", "arch", "width", "regularizer", "label", "comparison_key", "protocol_id"]


def _curve_figure(curves: pd.DataFrame, test: str, default_xlabel: str, what: str, multi: bool) -> dict:
    figs = {}
    c = curves[curves["test"] == test]
    if c.empty:
        return figs
    first = c.groupby("test")["curve"].first().iloc[0]  # the test's main curve
    c = c[c["curve"] == first]
    for suffix, title, g in _blocks(c, multi):
        fig, ax = plt.subplots(figsize=(6, 4))
        styles = _style_index(g)
        for lab, gl in g.groupby("label", sort=True):
            reg = gl["regularizer"].iloc[0]
            stats_ = gl.groupby("x")["y"].agg(["mean", lambda v: sem(v), "count"]).sort_index()
            stats_.columns = ["mean", "sem", "n"]
            n = int(gl["run_dir"].nunique())
            x = stats_.index.to_numpy(float)
            m = stats_["mean"].to_numpy()
            s = np.nan_to_num(stats_["sem"].to_numpy())
            col = color_for(reg)
            ax.plot(x, m, _STYLES[styles.get(lab, 0) % len(_STYLES)], color=col, marker=marker_for(reg), ms=3,
                    label=f"{lab} (n={n})")
            ax.fill_between(x, m - s, m + s, color=col, alpha=0.2, linewidth=0)
        ax.set_xlabel(g["x_label"].iloc[0] or default_xlabel)
        ax.set_ylabel(g["y_label"].iloc[0] or "accuracy")
        ax.set_title(f"{what}: {title}\nmean ± SEM over seeds", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        figs[f"{_file_name(test)}{suffix}"] = fig
    return figs


def _file_name(test: str) -> str:
    return {NOISE_TEST: "noise", FGSM_TEST: "fgsm"}.get(test, test)


def _bar_axes(ax, groups: list[str], series: list[tuple[str, str, list[float], list[float], str]], ylabel: str,
              xlabel: str):
    """Grouped bars: `series` = (legend label, colour, means per group, sems per group, hatch)."""
    k = max(len(series), 1)
    width = 0.8 / k
    x = np.arange(len(groups))
    for i, (lab, col, means, sems, hatch) in enumerate(series):
        ax.bar(x + (i - (k - 1) / 2) * width, means, width, yerr=np.nan_to_num(sems), color=col, hatch=hatch,
               edgecolor="white" if not hatch else "#444", capsize=3, label=lab)
    ax.set_xticks(x)
    ax.set_xticklabels(groups, rotation=30 if len(groups) > 3 else 0, ha="right" if len(groups) > 3 else "center",
                       fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_xlabel(xlabel)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7)


def _per_label_stats(tidy: pd.DataFrame, metric: str) -> pd.DataFrame:
    t = tidy[tidy["metric"] == metric]
    return t.groupby(["label", "regularizer"], sort=True)["value"].agg(
        mean="mean", sem=lambda v: sem(v), n="count").reset_index()


def _boundary_figures(tidy: pd.DataFrame, multi: bool) -> dict:
    figs = {}
    t = tidy[tidy["metric"].isin([f"{BOUNDARY_TEST}.median_sq_l2", f"{MIN_PERT_TEST}.median_sq_l2"])]
    if t.empty or not (t["metric"] == f"{BOUNDARY_TEST}.median_sq_l2").any():
        return figs
    for suffix, title, g in _blocks(t, multi):
        b = _per_label_stats(g, f"{BOUNDARY_TEST}.median_sq_l2")
        mp = _per_label_stats(g, f"{MIN_PERT_TEST}.median_sq_l2").set_index("label")
        fig, ax = plt.subplots(figsize=(6, 4))
        labels = list(b["label"])
        # one bar per regularizer (its colour); the converged white-box minimum as a hatched bar beside it
        k = 2 if not mp.empty else 1
        width = 0.8 / k
        x = np.arange(len(labels))
        for i, r in b.iterrows():
            col = color_for(r["regularizer"])
            ax.bar(x[i] - (width / 2 if k == 2 else 0), r["mean"], width, yerr=np.nan_to_num(r["sem"]), color=col,
                   capsize=3, label=f"{r['label']} boundary (n={int(r['n'])})")
            if k == 2 and r["label"] in mp.index:
                q = mp.loc[r["label"]]
                ax.bar(x[i] + width / 2, q["mean"], width, yerr=np.nan_to_num(q["sem"]), color=col, alpha=0.45,
                       hatch="//", edgecolor="#333", capsize=3, label=f"{r['label']} white-box minimum")
        ax.set_xticks(x)
        ax.set_xticklabels(labels, rotation=30 if len(labels) > 3 else 0, fontsize=8,
                           ha="right" if len(labels) > 3 else "center")
        ax.set_xlabel("regularizer")
        ax.set_ylabel("median squared L2 per pixel (log scale)")
        ax.set_title(f"Boundary attack distance: {title}\nmean ± SEM over seeds", fontsize=9)
        # the white-box minimum is 40-100x below the boundary figure: a log axis shows both
        if (b["mean"] > 0).any():
            ax.set_yscale("log")
        ax.grid(axis="y", alpha=0.3, which="both")
        # the legend goes below the axes, where it covers no bar
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.22 if len(labels) > 3 else -0.15),
                  ncol=2, frameon=False)
        fig.set_size_inches(6.5, 4.5 + 0.18 * len(labels))
        fig.tight_layout()
        figs[f"boundary{suffix}"] = fig
    return figs


def _corruption_type_figures(details: list[dict], multi: bool, severity: int = SEVERITY_DETAIL) -> dict:
    rows = []
    for d in details:
        ent = d["suite"].get(CORRUPTION_TEST) or {}
        det = ((ent.get("result") or {}).get("details") or {})
        per = det.get("per_corruption")
        sevs = list((ent.get("protocol") or {}).get("severities") or [1, 2, 3, 4, 5])
        if not isinstance(per, dict) or severity not in sevs:
            continue
        j = sevs.index(severity)
        for cname, accs in per.items():
            if isinstance(accs, (list, tuple)) and len(accs) > j and accs[j] is not None:
                rows.append({**d["meta"], "corruption": cname, "value": float(accs[j])})
    figs = {}
    if not rows:
        return figs
    df = pd.DataFrame(rows)
    for suffix, title, g in _blocks(df, multi):
        corrs = list(dict.fromkeys(g["corruption"]))
        styles = _style_index(g)
        series = []
        for lab, gl in g.groupby("label", sort=True):
            st = gl.groupby("corruption")["value"].agg(["mean", lambda v: sem(v)]).reindex(corrs)
            n = gl["run_dir"].nunique()
            series.append((f"{lab} (n={n})", color_for(gl["regularizer"].iloc[0]), st.iloc[:, 0].tolist(),
                           st.iloc[:, 1].tolist(), _HATCHES[styles.get(lab, 0) % len(_HATCHES)]))
        fig, ax = plt.subplots(figsize=(max(6, 0.55 * len(corrs) * max(1, len(series)) ** 0.5), 4))
        _bar_axes(ax, corrs, series, "accuracy", "corruption")
        ax.set_title(f"Accuracy per corruption at severity {severity}: {title}\nmean ± SEM over seeds", fontsize=9)
        fig.tight_layout()
        figs[f"corruption_types{suffix}"] = fig
    return figs


def _cost_figures(tidy: pd.DataFrame, multi: bool) -> dict:
    figs = {}
    t = tidy[tidy["metric"].isin(["train.wall_s", "train.images"]) & ~tidy["external"].astype(bool)]
    if t.empty:
        return figs
    for suffix, title, g in _blocks(t, multi):
        fig, axes = plt.subplots(1, 2, figsize=(9, 4))
        for ax, metric, ylabel in ((axes[0], "train.wall_s", "training wall-clock time (s)"),
                                   (axes[1], "train.images", "images processed (task + regularizer)")):
            st = _per_label_stats(g, metric)
            styles = _style_index(g)
            if st.empty:
                ax.set_visible(False)
                continue
            for i, r in st.iterrows():
                ax.bar(i, r["mean"], 0.7, yerr=np.nan_to_num(r["sem"]), color=color_for(r["regularizer"]),
                       hatch=_HATCHES[styles.get(r["label"], 0) % len(_HATCHES)], edgecolor="#444", capsize=3,
                       label=f"{r['label']} (n={int(r['n'])})")
            ax.set_xticks(range(len(st)))
            ax.set_xticklabels(st["label"], rotation=30 if len(st) > 3 else 0, fontsize=8,
                               ha="right" if len(st) > 3 else "center")
            ax.set_xlabel("regularizer")
            ax.set_ylabel(ylabel)
            ax.grid(axis="y", alpha=0.3)
            ax.legend(fontsize=7)
        fig.suptitle(f"Training cost per regularizer: {title} (same step budget; mean ± SEM)", fontsize=9)
        fig.tight_layout()
        figs[f"training_cost{suffix}"] = fig
    return figs


DIFF_METRICS = (("clean.accuracy", "clean accuracy"),
                ("gaussian_noise.relative_robustness", "noise rel. robustness"),
                ("transfer_fgsm.relative_robustness", "transfer FGSM rel. robustness"),
                ("corruptions.relative_robustness", "corruptions rel. robustness"),
                ("boundary.median_sq_l2", "boundary median sq. L2"),
                ("min_perturbation.median_sq_l2", "white-box min. sq. L2"))


def _diff_to_none_figures(tidy: pd.DataFrame, multi: bool) -> dict:
    """One row per metric, one point per regularizer and reference (`none`, each baseline present): the
    difference with its interval (leaderboard.differences: paired over seed blocks, else Welch), a zero line;
    distances relative to none's mean (in %)."""
    from .aggregate import aggregate
    figs = {}
    table = aggregate(tidy)
    if table.empty or not (table["regularizer"] == "none").any():
        return figs
    for key, g in table.groupby(["comparison_key", "protocol_id"], sort=False):
        regs = g[g["regularizer"] != "none"]
        base = g[g["regularizer"] == "none"]
        rows = [(m, lab) for m, lab in DIFF_METRICS if f"{m}|diff" in g and regs[f"{m}|diff"].notna().any()]
        if regs.empty or base.empty or not rows:
            continue
        fig, axes = plt.subplots(len(rows), 1, figsize=(8, 0.6 + 1.4 * len(rows)), sharex=False, squeeze=False)
        for ax, (m, lab) in zip(axes[:, 0], rows):
            ref = float(base.iloc[0][f"{m}|mean"])
            rel = m.endswith("median_sq_l2") and ref > 0  # distances: in % of none's value
            f = 100.0 / ref if rel else 1.0
            for j, (_, r) in enumerate(regs.iterrows()):
                refs = differences.row_references(r)
                for k, ref in enumerate(refs):  # `none` first, then each baseline present (its own marker)
                    sfx = "" if ref == "none" else f"@{ref}"
                    d, lo, hi = (float(r.get(f"{m}|{s}{sfx}", np.nan)) * f for s in ("diff", "ci_low", "ci_high"))
                    if not np.isfinite(d):
                        continue
                    err = None if not (np.isfinite(lo) and np.isfinite(hi)) else [[d - lo], [hi - d]]
                    ax.errorbar([d], [j - 0.25 * k], xerr=err, fmt=marker_for(ref.split("(")[0]), capsize=3, ms=5,
                                color=color_for(r["regularizer"]), label=f"{r['label']} vs {ref}")
            ax.axvline(0, color="k", lw=0.9, label="none (zero line)")
            ax.set_xlabel("Δ to none" + (" (% of none)" if rel else ""), fontsize=8)
            ax.set_ylabel("regularizer", fontsize=8)
            ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
            ax.set_yticks(range(len(regs)))
            ax.set_yticklabels(list(regs["label"]), fontsize=8)
            ax.set_ylim(-0.6, len(regs) - 0.4)
            ax.set_title(f"{lab}: Δ to none" + (" (% of none)" if rel else ""), fontsize=9, loc="left")
            ax.tick_params(axis="x", labelsize=8)
            ax.grid(axis="x", alpha=0.3)
        r0 = g.iloc[0]
        fig.suptitle(f"Difference to none and to each baseline present: {r0['dataset']} ({r0['color']})\npaired "
                     "over seed blocks, else Welch; intervals adjusted over each row's comparisons", fontsize=9)
        fig.tight_layout()
        suffix = f"_{g.iloc[0]['dataset']}_{key[0]}_{key[1]}" if multi else ""
        figs[f"diff_to_none{suffix}"] = fig
    return figs


FIGURES = ("noise", "fgsm", "boundary", "diff_to_none", "corruption_severity", "corruption_types", "training_cost",
           "pareto")


def make_figures(*roots, log=None) -> dict:
    """name -> matplotlib Figure for every figure the records have data for."""
    log = log or (lambda m: print(m, file=sys.stderr))
    tidy = load_records(*roots)
    curves = load_curves(*roots)
    details = load_details(*roots)
    made = {}
    multi = tidy.groupby(["comparison_key", "protocol_id"]).ngroups > 1
    parts = {
        "noise": lambda: _curve_figure(curves, NOISE_TEST, "noise std", "Accuracy vs Gaussian noise", multi),
        "fgsm": lambda: _curve_figure(curves, FGSM_TEST, "FGSM eps", "Accuracy vs transfer FGSM", multi),
        "boundary": lambda: _boundary_figures(tidy, multi),
        "diff_to_none": lambda: _diff_to_none_figures(tidy, multi),
        "corruption_severity": lambda: {k.replace("corruptions", "corruption_severity", 1): v for k, v in
                                        _curve_figure(curves[curves["curve"] == "accuracy_vs_severity"],
                                                      CORRUPTION_TEST, "severity",
                                                      "Corruption accuracy per severity", multi).items()},
        "corruption_types": lambda: _corruption_type_figures(details, multi),
        "training_cost": lambda: _cost_figures(tidy, multi),
        "pareto": lambda: pareto.pareto_figures(tidy, multi, color_for, marker_for),
    }
    why = {"noise": f"no `{NOISE_TEST}` curves", "fgsm": f"no `{FGSM_TEST}` curves",
           "boundary": f"no `{BOUNDARY_TEST}.median_sq_l2` results",
           "diff_to_none": "no `none` row with a regularized row beside it",
           "corruption_severity": f"no `{CORRUPTION_TEST}` severity curves",
           "corruption_types": f"no `{CORRUPTION_TEST}` per-corruption results at severity {SEVERITY_DETAIL}",
           "training_cost": "no training costs (only external models?)",
           "pareto": "no clean accuracy beside a robustness summary"}
    for name in FIGURES:
        figs = parts[name]()
        if not figs:
            log(f"[regbench] figure {name} skipped: {why[name]} in the records")
        made.update(figs)
    return made


def plot_all(roots, out_dir) -> list[Path]:
    """Write every figure as PNG and SVG into `out_dir`; returns the paths written."""
    if isinstance(roots, (str, Path)):
        roots = [roots]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, fig in make_figures(*roots).items():
        for ext in ("png", "svg"):
            p = out / f"{name}.{ext}"
            fig.savefig(p, dpi=150 if ext == "png" else None)
            paths.append(p)
        plt.close(fig)
    return paths
