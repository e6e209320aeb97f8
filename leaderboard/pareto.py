"""The Pareto view: clean accuracy against each robustness summary, so a gain that costs accuracy is seen as one.

`pareto_points(tidy)` gives the data: one point per (arm, seed) (`point` = "seed": that record's clean accuracy
and its summary) and one per arm (`point` = "mean": the means over the seeds that have both), per comparable
setup (comparison key + suite protocol), for each summary of `SUMMARIES` the records hold. `pareto_figures`
draws it with matplotlib (one figure per setup, one panel per summary; the mean as a larger marker, written by
`leaderboard.plots` next to the other figures); `pareto_html` draws it as inline SVG for the HTML board, every
text escaped. Censored values (beyond the tested range) are left out: none of these summaries is censored.
"""
from __future__ import annotations

import html

import numpy as np
import pandas as pd

X_METRIC, X_LABEL = "clean.accuracy", "clean accuracy"
SUMMARIES = (("gaussian_noise.relative_robustness", "noise relative robustness"),
             ("transfer_fgsm.relative_robustness", "transfer FGSM relative robustness"),
             ("minimal_l2.median_l2", "minimal L2, median (converged attacks)"))
KEYS = ["comparison_key", "protocol_id"]
COLUMNS = ["comparison_key", "protocol_id", "dataset", "color", "regularizer", "label", "seed", "summary",
           "summary_label", "clean", "value", "point", "n"]


def pareto_points(tidy: pd.DataFrame) -> pd.DataFrame:
    """One row per (setup, arm, seed, summary) with `point` = "seed", and per (setup, arm, summary) with
    `point` = "mean" (n = the seeds averaged)."""
    if tidy.empty or "metric" not in tidy:
        return pd.DataFrame(columns=COLUMNS)
    ok = ~tidy["censored"].fillna(False).astype(bool) if "censored" in tidy else True
    t = tidy[ok & np.isfinite(tidy["value"].astype(float))]
    ids = ["run_dir"] + KEYS + ["dataset", "color", "regularizer", "label", "seed"]
    x = t[t["metric"] == X_METRIC][ids + ["value"]].rename(columns={"value": "clean"})
    rows = []
    for metric, lab in SUMMARIES:
        y = t[t["metric"] == metric][["run_dir", "value"]]
        pts = x.merge(y, on="run_dir").drop(columns="run_dir")
        if pts.empty:
            continue
        pts = pts.assign(summary=metric, summary_label=lab, point="seed", n=1)
        means = pts.groupby(KEYS + ["dataset", "color", "regularizer", "label"], sort=True, dropna=False).agg(
            clean=("clean", "mean"), value=("value", "mean"), n=("seed", "size")).reset_index()
        means = means.assign(summary=metric, summary_label=lab, point="mean", seed=np.nan)
        rows += [pts.sort_values(KEYS + ["label", "seed"]), means]
    if not rows:
        return pd.DataFrame(columns=COLUMNS)
    return pd.concat(rows, ignore_index=True)[COLUMNS]


def _setups(points: pd.DataFrame):
    for key, g in points.groupby(KEYS, sort=True, dropna=False):
        yield key, g


def pareto_figures(tidy: pd.DataFrame, multi: bool, color_for, marker_for) -> dict:
    """name -> Figure: per setup, one panel per summary; small markers per seed, a large one per arm mean."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    pts = pareto_points(tidy)
    figs = {}
    for (ck, pid), g in _setups(pts):
        sums = list(dict.fromkeys(g["summary"]))
        fig, axes = plt.subplots(1, len(sums), figsize=(4.4 * len(sums), 4.0), squeeze=False)
        for ax, s in zip(axes[0], sums):
            gs = g[g["summary"] == s]
            for lab, gl in gs.groupby("label", sort=True):
                reg = gl["regularizer"].iloc[0]
                seeds, mean = gl[gl["point"] == "seed"], gl[gl["point"] == "mean"]
                c, mk = color_for(reg), marker_for(reg)
                ax.scatter(seeds["clean"], seeds["value"], s=18, color=c, marker=mk, alpha=0.55)
                ax.scatter(mean["clean"], mean["value"], s=110, color=c, marker=mk, edgecolors="k",
                           label=f"{lab} (n={int(mean['n'].iloc[0])})")
            ax.set_xlabel(X_LABEL)
            ax.set_ylabel(gs["summary_label"].iloc[0])
            ax.set_title(gs["summary_label"].iloc[0], fontsize=9)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
        r0 = g.iloc[0]
        fig.suptitle(f"Clean accuracy against robustness: {r0['dataset']} ({r0['color']}); small: one seed, "
                     "large: the arm's mean", fontsize=9)
        fig.tight_layout()
        figs["pareto" + (f"_{r0['dataset']}_{ck}_{pid}" if multi else "")] = fig
    return figs


# ------------------------------------------------------------------------------------- HTML (inline SVG)
_PALETTE = ["#555555", "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
            "#17becf", "#bcbd22"]
W, H, PAD = 300, 230, 42


def _scale(v, lo, hi, a, b):
    return a if hi <= lo else a + (v - lo) / (hi - lo) * (b - a)


def _svg_panel(gs: pd.DataFrame, colors: dict) -> str:
    e = html.escape
    xs, ys = gs["clean"].astype(float), gs["value"].astype(float)
    x0, x1, y0, y1 = xs.min(), xs.max(), ys.min(), ys.max()
    dx, dy = (x1 - x0) * 0.08 or 0.01, (y1 - y0) * 0.08 or 0.01
    x0, x1, y0, y1 = x0 - dx, x1 + dx, y0 - dy, y1 + dy
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" role="img">',
           f'<rect x="{PAD}" y="8" width="{W - PAD - 8}" height="{H - PAD - 8}" fill="none" stroke="#999"/>']
    for v, anchor in ((x0, "start"), (x1, "end")):
        out.append(f'<text x="{_scale(v, x0, x1, PAD, W - 8):.1f}" y="{H - PAD + 14}" font-size="9" '
                   f'text-anchor="{anchor}">{v:.3g}</text>')
    for v in (y0, y1):
        out.append(f'<text x="{PAD - 3}" y="{_scale(v, y0, y1, H - PAD, 8):.1f}" font-size="9" '
                   f'text-anchor="end">{v:.3g}</text>')
    out.append(f'<text x="{(PAD + W) / 2:.0f}" y="{H - 6}" font-size="10" text-anchor="middle">{e(X_LABEL)}</text>')
    for _, p in gs.iterrows():
        big = p["point"] == "mean"
        cx, cy = _scale(p["clean"], x0, x1, PAD, W - 8), _scale(p["value"], y0, y1, H - PAD, 8)
        tip = (f"{p['label']}: mean of {int(p['n'])} seeds" if big else f"{p['label']} seed {int(p['seed'])}") + \
            f": clean {p['clean']:.4g}, {p['summary_label']} {p['value']:.4g}"
        out.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="{7 if big else 3}" fill="{colors[p["label"]]}" '
                   f'fill-opacity="{1 if big else 0.5}" stroke="{"#000" if big else "none"}">'
                   f'<title>{e(tip)}</title></circle>')
    out.append("</svg>")
    return "".join(out)


def pareto_html(points) -> str:
    """The Pareto view as HTML: per setup a row of inline SVG panels (x: clean accuracy, y: the summary) and a
    legend; every text escaped. '' when there are no points."""
    pts = pd.DataFrame(points or [], columns=COLUMNS) if not isinstance(points, pd.DataFrame) else points
    if pts.empty:
        return ""
    e = html.escape
    parts = ["<h2>Clean accuracy against robustness (Pareto view)</h2>",
             "<p>One small point per (arm, seed), a large one for the arm's mean; a gain that costs clean "
             "accuracy shows as a point to the left. Hover a point for its values.</p>"]
    for _, g in _setups(pts):
        labels = list(dict.fromkeys(g.sort_values("label")["label"]))
        colors = {lab: _PALETTE[i % len(_PALETTE)] for i, lab in enumerate(labels)}
        r0 = g.iloc[0]
        parts.append(f"<h3>{e(str(r0['dataset']))} ({e(str(r0['color']))}), comparison key "
                     f"<code>{e(str(r0['comparison_key']))}</code></h3><div class=\"pareto\">")
        for s in dict.fromkeys(g["summary"]):
            gs = g[g["summary"] == s]
            parts.append(f"<figure style=\"display:inline-block;margin:0 1em 1em 0\">{_svg_panel(gs, colors)}"
                         f"<figcaption>{e(str(gs['summary_label'].iloc[0]))}</figcaption></figure>")
        parts.append("</div><p>" + " ".join(f'<span style="color:{colors[lab]}">&#9679;</span> {e(str(lab))}'
                                            for lab in labels) + "</p>")
    return "\n".join(parts)


def inject_html(page: str, points) -> str:
    """The board page with the Pareto view before `</body>` (unchanged when there are no points)."""
    block = pareto_html(points)
    if not block or "</body>" not in page:
        return page
    i = page.rindex("<script>") if "<script>" in page else page.rindex("</body>")
    return page[:i] + block + "\n" + page[i:]
