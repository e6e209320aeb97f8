"""`python -m bench reproduce`: does the harness reproduce the papers' claims?

One command runs the comparison sweeps (none, pixel_sim, pixel_th, neural_pred and the shuffled-target
control pixel_shuffle; 5 seeds at the main step budget, 3 at a longer one; the paper's suite plus the
white-box extras and honesty checks), the `bench similarity` analysis, and writes the leaderboard, the
plots and a report (`docs/reproduction.md` by default) in which every number is read from the records:
only the prose is fixed text. Each claim gets a verdict from the rules of `leaderboard.stats` (95% Welch
intervals, Holm within a claim, the detectable effect; `bench.app.claims` states the claims), and the
differences to `none` are shown against the step budget, so "does the effect change with training
length" is answered from the records too.

Scales:
  cpu  Fashion-MNIST (grayscale), a narrow ResNet18 (width 0.25), a budget at which every model is
       well trained on this kind of 2-core machine, the `repro_cpu` suite (the paper's tests at
       reduced image counts, plus the white-box extras).
  gpu  the paper's protocol on grayscale and colour CIFAR-10 with CIFAR-10 and CIFAR-100
       regularization sets (needs the CIFAR files and a GPU).
Re-running reuses every finished record (the sweep skips complete jobs) and re-renders the report.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import shlex
import sys
import time
from pathlib import Path

from bench.app import claims, report_extras
from bench.core import names
from bench.core.records import Record

REGULARIZERS = names.REPRODUCTION  # the study's pinned arms: the four built-ins and the shuffled-target control

SCALES = {
    "cpu": {
        "preset": "repro_cpu",
        "seeds": "0-4",
        # Two step budgets: the main one (5 seed blocks: each seed also draws the training subset, the
        # test images and its own transfer surrogate) and a longer one on 20000 images (3 seeds) that
        # keeps the earlier fixed design (one training subset and one surrogate for every seed), so the
        # report can say whether the effects change with training length.
        "sweeps": [{"name": "fashion_mnist-gray", "datasets": "fashion_mnist", "sets": [], "seeds": "0-4"},
                   {"name": "fashion_mnist-gray-long", "datasets": "fashion_mnist",
                    "sets": ["n_train=20000", "epochs=3", "data_seed=0", "surrogate_seed=1000"], "seeds": "0-2",
                    "regularizers": names.COMPARISON, "fixed_design": True}],
        "similarity": [("fashion_mnist", 1000), ("skimage_crops", None)],
    },
    "gpu": {
        "preset": "paper",
        "seeds": "0-4",
        "sweeps": [
            {"name": f"cifar10-{color}-reg_{reg}", "datasets": "cifar10",
             "sets": [f"color={color}", "suite=\"full\"", f"reg_params.reg_dataset={reg}"]}
            for color in ("gray", "rgb") for reg in ("cifar10", "cifar100")
        ],
        "similarity": [("cifar10", 1000), ("cifar100", 1000), ("skimage_crops", None)],
    },
}



# ----------------------------------------------------------------------------- similarity inputs
def skimage_crops(folder: Path, size: int = 32) -> Path:
    """32x32 crops (non-overlapping grid) of scikit-image's bundled natural photos, as PNG files:
    a natural-image regularization set that ships with a dependency and works offline."""
    import numpy as np
    from PIL import Image
    from skimage import data as skd
    folder.mkdir(parents=True, exist_ok=True)
    if any(folder.glob("*.png")):
        return folder
    names = ["astronaut", "camera", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry",
             "motorcycle_left", "retina", "brick", "grass", "gravel", "moon", "page", "text", "horse", "cat"]
    k = 0
    for name in names:
        try:
            img = np.asarray(getattr(skd, name)())
        except Exception:  # a photo missing from this scikit-image version (or needing pooch)
            continue
        if img.dtype != np.uint8:  # float or boolean photos: stretch to 0..255
            img = img.astype(np.float64)
            img = (255 * (img - img.min()) / max(float(img.max() - img.min()), 1e-9)).astype(np.uint8)
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=2)
        img = img[..., :3]
        # downsample the photo so a 32x32 crop holds an object part, not a flat patch
        pil = Image.fromarray(img)
        scale = 128 / min(pil.size)
        pil = pil.resize((max(size, int(pil.size[0] * scale)), max(size, int(pil.size[1] * scale))), Image.BILINEAR)
        arr = np.asarray(pil)
        for y in range(0, arr.shape[0] - size + 1, size):
            for x in range(0, arr.shape[1] - size + 1, size):
                Image.fromarray(arr[y:y + size, x:x + size]).save(folder / f"{k:05d}-{name}.png")
                k += 1
    return folder


def run_similarity(scale: str, out_dir: Path, crops_dir: Path, log=print) -> list[dict]:
    from regularizers.analysis import similarity_figure, similarity_report
    from bench.core import store
    results = []
    for ds, n in SCALES[scale]["similarity"]:
        label = ds
        if ds == "skimage_crops":
            ds = "folder:" + str(skimage_crops(crops_dir))
            n = len(list(Path(ds.split(":", 1)[1]).glob("*.png")))
        js = out_dir / f"similarity-{label}.json"
        cached = store.read_json(js)
        if cached and cached.get("n_requested") == n:
            results.append(cached)
            continue
        log(f"[reproduce] similarity analysis on {label} ({n} images)")
        summary, s_pix, s_neu = similarity_report(ds, n, color="gray", reg_augment="none")
        figs = similarity_figure(s_pix, s_neu, summary, out_dir / f"similarity-{label}")
        summary.update(label=label, n_requested=n, figures=[str(p) for p in figs])
        store.atomic_write_json(js, summary)
        results.append(summary)
    return results


# ----------------------------------------------------------------------------- tables and claims
TABLE_METRICS = [
    ("clean.accuracy", "clean accuracy"),
    ("gaussian_noise.relative_robustness", "noise: rel. robustness"),
    ("gaussian_noise.strength_50", "noise: std at half clean"),
    ("transfer_fgsm.relative_robustness", "transfer FGSM: rel. robustness"),
    ("transfer_fgsm.strength_50", "transfer FGSM: eps at half clean"),
    ("transfer_fgsm_reverse.relative_robustness", "reverse FGSM: surrogate rel. robustness"),
    ("boundary.median_sq_l2", "boundary (paper protocol, 50 steps) median sq. L2"),
    ("boundary_converged.median_sq_l2", "boundary converged median sq. L2"),
    ("minimal_l2.median_l2", "minimal L2 (min over converged attacks)"),
    ("corruptions.error_increase", "corruptions: error increase over clean (lower better)"),
    ("corruptions.relative_mce_vs_none", "corruptions: relative mCE vs none (lower better)"),
    ("train.wall_s", "train wall s"),
]
# the differences to `none` plotted against the step budget
BUDGET_METRICS = ["clean.accuracy", "gaussian_noise.relative_robustness", "transfer_fgsm.relative_robustness",
                  "boundary_converged.median_sq_l2", "minimal_l2.median_l2", "min_perturbation.median_sq_l2",
                  "corruptions.error_increase"]
LOWER_BETTER = ("corruptions.error_increase", "corruptions.relative_mce_vs_none", "corruptions.mean_error",
                "train.wall_s")


def budgets(tidy) -> list[int]:
    """Step budgets present, the main one (most `none` seeds, then fewest steps) first."""
    seeds = tidy[tidy["regularizer"] == "none"].groupby("budget_steps")["seed"].nunique()
    return sorted(seeds.index, key=lambda b: (-int(seeds[b]), int(b)))


def _cell(tidy, reg: str, m: str) -> str:
    import numpy as np
    from leaderboard import sem
    v = claims.values(tidy, reg, m)
    if not v:
        return "n/a"
    k = sum(claims.censored(tidy, reg, m))
    if k:  # censored seeds enter at the top of the tested range: the mean is a lower bound
        return f"≥ {np.mean(v):.4g} (n={len(v)}, {k} censored at the top level)"
    return f"{np.mean(v):.4g} ± {sem(v):.2g} (n={len(v)})"


def _delta(tidy, reg: str, m: str, details=None) -> tuple[str, float]:
    """The difference to none under the cell: (text, p for the row's Holm correction)."""
    from leaderboard import derived, stats
    if m == "corruptions.relative_mce_vs_none":
        key = _key_of(tidy, reg)
        r = derived.relative_mce_comparison([(d["meta"], d["suite"]) for d in details or []], reg, key)
        if not r or "diff" not in r:
            return "", float("nan")
        return (f"<br>Δ {r['diff']:+.3g} [{r['ci_low']:+.3g}, {r['ci_high']:+.3g}] paired n={r['n']}, ratio "
                f"linearised; {r['corruptions_used']} corruptions with none's increase ≥ {r['threshold']:.2g}"
                + (f" ({len(r['excluded'])} excluded)" if r["excluded"] else "")), float("nan")
    if sum(claims.censored(tidy, reg, m)) or sum(claims.censored(tidy, "none", m)):
        a, b = dict(claims.seeded(tidy, reg, m)), dict(claims.seeded(tidy, "none", m))
        ca = dict(zip([s for s, _ in claims.seeded(tidy, reg, m)], claims.censored(tidy, reg, m)))
        cb = dict(zip([s for s, _ in claims.seeded(tidy, "none", m)], claims.censored(tidy, "none", m)))
        common = sorted(a.keys() & b.keys())
        if not common:
            return "", float("nan")
        st = stats.sign_test([a[s] for s in common], [b[s] for s in common], [ca[s] for s in common],
                             [cb[s] for s in common])
        return (f"<br>sign test over {len(common)} blocks (censored values): {st['positive']} above none, "
                f"{st['negative']} below, {st['ties']} tied, p {st['p']:.2g}"), st["p"]
    c = claims.compare_in(tidy, reg, "none", m, alpha=report_extras.reference_alpha(tidy, reg))
    if c is None:
        return "", float("nan")
    how = f"paired n={c.n_pairs}" if c.analysis == "paired" else "Welch"
    return f"<br>Δ {c.diff:+.3g} [{c.ci_low:+.3g}, {c.ci_high:+.3g}] {how}", c.p


def _key_of(tidy, reg):
    rows = tidy[tidy["regularizer"] == reg]
    return rows["comparison_key"].iloc[0] if len(rows) else None


def key_table(tidy, regs, details=None) -> str:
    """Regularizers x key metrics: mean ± SEM (n), and under it the difference to none with its 95%
    interval (paired over the seed blocks both have; a sign test where seeds are censored; the relative
    mCE with its linearised ratio interval) and the p-value Holm-corrected across the row's metrics."""
    from leaderboard import stats
    present = [(m, t) for m, t in TABLE_METRICS if (tidy["metric"] == m).any()]
    lines = ["| regularizer | " + " | ".join(t for _, t in present) + " |", "|" + "---|" * (len(present) + 1)]
    for reg in regs:
        cells = [_cell(tidy, reg, m) for m, _ in present]
        if reg != "none":
            deltas = [_delta(tidy, reg, m, details) if not m.startswith("train.") else ("", float("nan"))
                      for m, _ in present]
            adj = stats.holm([p for _, p in deltas])
            for i, ((txt, p), ph) in enumerate(zip(deltas, adj)):
                cells[i] += txt + (f", p_Holm {ph:.2g}" if txt and ph == ph else "") + report_extras.baseline_deltas(
                    tidy, reg, present[i][0], present[i][0] not in LOWER_BETTER)
        lines.append(f"| {reg} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def claims_section(tidy) -> tuple[str, list[dict]]:
    from leaderboard import stats
    res = claims.evaluate_claims(tidy)
    lines = []
    for cl in res:
        v = cl["verdict"] + (f" ({cl['note']})" if cl.get("note") else "")
        fam = "; ".join(f"{f}: **{w}**" for f, w in (cl.get("per_family") or {}).items())
        lines += [f"### {cl['title']}", "", f"*Claim:* {cl['text']}.", "",
                  f"*Quantifier:* `{cl['quantifier']}` ({stats.QUANTIFIER_TEXT[cl['quantifier']]}).", "",
                  f"*Verdict:* **{v}**." + (f" Per family: {fam}." if fam else ""), ""]
        lines += [f"- {claims.fmt_comparison(c)}" for c in cl["comparisons"]]
        lines.append("")
    rule = ("Rule (generated from `leaderboard.stats`, the code that applies it): " + stats.rule_text() + " "
            "Each comparison is paired over the seed blocks both arms have (a block shares the training subset, "
            "the test images, the surrogate and every attack's randomness across regularizers); each line names "
            "its analysis and shows the unpaired Welch interval on the same values for reference. Attias et al. "
            "give no effect sizes, so their claims are direction only and are judged against a smallest effect "
            "of interest: " + ", ".join(f"`{m}` {'+' + format(x, '.0%') + ' of the baseline' if k == 'rel' else f'+{x:g}'}"
                                        for m, (k, x) in claims.SESOI.items()) + ". Li et al.'s sizes come from "
            "CIFAR-10 at their strengths and are applied here as stated: the distance claim in plain L2 (1.44x, "
            "+44% of none; 2.07x in squared L2) on the per-image minimum over the converged attacks. The detectable "
            "effect is the smallest true difference the analysis used finds with power 0.8 (unadjusted alpha) at "
            "the observed spread.")
    return rule + "\n\n" + "\n".join(lines), res


def budget_section(tidy, fig_dir: Path, regs) -> tuple[str, str | None]:
    """Differences to `none` (95% interval) at each step budget, as a table and a figure."""
    bs = sorted(budgets(tidy))
    if len(bs) < 2:
        return "Only one step budget in the records.", None
    rows = _budget_differences(tidy, regs, bs)
    text = _budget_table(tidy, rows, regs, bs) + "\n\nRead from the table (point estimates; the intervals say how " \
        "firm each is):\n\n" + "\n".join(f"- {s}" for s in _budget_trends(rows, regs, bs))
    return text, _budget_figure(rows, regs, bs, fig_dir)


def _budget_differences(tidy, regs, bs) -> dict:
    """{(metric, regularizer, budget): (difference, low, high)}: 95% intervals against `none`, paired over
    the seed blocks both have."""
    rows = {}
    for m in BUDGET_METRICS:
        for reg in regs:
            if reg == "none":
                continue
            for b in bs:
                c = claims.compare_in(tidy[tidy["budget_steps"] == b], reg, "none", m)
                if c is not None:
                    rows[(m, reg, b)] = (c.diff, c.ci_low, c.ci_high, c.p)
    return rows


def _budget_table(tidy, rows, regs, bs) -> str:
    seeds = {b: int(tidy[(tidy["budget_steps"] == b) & (tidy["regularizer"] == "none")]["seed"].nunique()) for b in bs}
    lines = ["| metric | regularizer | " + " | ".join(f"{b} steps (none n={seeds[b]})" for b in bs) + " |",
             "|---|---|" + "---|" * len(bs)]
    for m in BUDGET_METRICS:
        for reg in regs:
            cells = [rows.get((m, reg, b)) for b in bs]
            if not any(cells):
                continue
            lines.append(f"| `{m}` | {reg} | " + " | ".join(
                f"{c[0]:+.3g} [{c[1]:+.3g}, {c[2]:+.3g}]" if c else "n/a" for c in cells) + " |")
    return "\n".join(lines)


def _budget_trends(rows, regs, bs) -> list[str]:
    """The sentences the issue asks for, from the numbers: does the clean cost shrink, do gains grow?"""
    lo_b, hi_b = bs[0], bs[-1]
    said = []
    for reg in regs:
        c0, c1 = rows.get(("clean.accuracy", reg, lo_b)), rows.get(("clean.accuracy", reg, hi_b))
        if c0 and c1:
            trend = "shrinks" if abs(c1[0]) < abs(c0[0]) else "does not shrink"
            said.append(f"`{reg}`: clean-accuracy difference {c0[0]:+.3f} at {lo_b} steps, {c1[0]:+.3f} at "
                        f"{hi_b} steps (the cost {trend}{_firm(c0, c1)})")
        for m in ("gaussian_noise.relative_robustness", "transfer_fgsm.relative_robustness",
                  "boundary_converged.median_sq_l2", "minimal_l2.median_l2"):
            r0, r1 = rows.get((m, reg, lo_b)), rows.get((m, reg, hi_b))
            if r0 and r1:
                grow = "grows" if r1[0] > r0[0] else "does not grow"
                said.append(f"`{reg}` `{m}`: {r0[0]:+.3g} → {r1[0]:+.3g} (the difference {grow}{_firm(r0, r1)}; "
                            f"longer-budget interval [{r1[1]:+.3g}, {r1[2]:+.3g}])")
    return said


def _firm(a, b) -> str:
    """Whether a change between two budgets' differences is firm: their 95% intervals do not overlap."""
    return ", beyond both intervals" if (a[2] < b[1] or b[2] < a[1]) else ", within overlapping intervals: not firm"


def _budget_figure(rows, regs, bs, fig_dir: Path) -> str | None:
    """One panel per metric: the difference to `none` with its interval against the step budget."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import numpy as np
    except ImportError:
        return None
    ms = [m for m in BUDGET_METRICS if any((m, r, b) in rows for r in regs for b in bs)]
    ncol = 3
    nrow = (len(ms) + ncol - 1) // ncol
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 3.3 * nrow), squeeze=False)
    others = [r for r in regs if r != "none"]
    for ax, m in zip(axes.flat, ms):
        for k, reg in enumerate(others):
            pts = [(b, rows[(m, reg, b)]) for b in bs if (m, reg, b) in rows]
            if not pts:
                continue
            x = np.array([p[0] for p in pts], float) * (1 + 0.03 * (k - (len(others) - 1) / 2))
            y = np.array([p[1][0] for p in pts])
            err = np.array([[p[1][0] - p[1][1] for p in pts], [p[1][2] - p[1][0] for p in pts]])
            ax.errorbar(x, y, yerr=err, marker="o", capsize=3, label=reg)
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xscale("log")
        ax.minorticks_off()  # only the budgets as ticks (log-axis minor labels would overlap them)
        ax.set_xticks(bs)
        ax.set_xticklabels([str(b) for b in bs])
        ax.set_title(m, fontsize=9)
        ax.set_xlabel("step budget")
        ax.set_ylabel("difference to none (95% CI)", fontsize=8)
    for ax in list(axes.flat)[len(ms):]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), frameon=False)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig_dir.mkdir(parents=True, exist_ok=True)
    png = str(fig_dir / "budget_differences.png")
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return png


def honesty_section(tidy, regs) -> str:
    import numpy as np
    lines = ["Converged reference for every boundary figure (same images, same unit): the paper protocol's 50-step "
             "boundary median against the converged boundary attack and the converged white-box minimal "
             "perturbation (DDN). A ratio far above 1 means the short attack stalled and its distance says little "
             "about the true distance to the boundary. foolbox's BoundaryAttack adapts its step sizes only after "
             "100 spherical trials (1000 steps), so at 50 steps it has not started adapting.", "",
             "| regularizer | boundary, 50 steps | boundary, converged | white-box minimum | 50 steps / white-box | "
             "converged / white-box | converged images | 50-step figure converged? |", "|---|---|---|---|---|---|---|---|"]
    for reg in regs:
        b = claims.values(tidy, reg, "boundary.median_sq_l2")
        bc = claims.values(tidy, reg, "boundary_converged.median_sq_l2")
        m = claims.values(tidy, reg, "min_perturbation.median_sq_l2")
        cf = claims.values(tidy, reg, "boundary_converged.converged_fraction")
        if b and m:
            mm = max(np.mean(m), 1e-12)
            conv = f"{np.mean(cf):.0%}" if cf else "n/a"
            bcs = f"{np.mean(bc):.4g}" if bc else "n/a"
            rat = f"{np.mean(bc) / mm:.1f}" if bc else "n/a"
            flag = "no (stalled)" if np.mean(b) / mm > 4 else "near the white-box minimum"
            lines.append(f"| {reg} | {np.mean(b):.4g} | {bcs} | {np.mean(m):.4g} | {np.mean(b) / mm:.1f} | {rat} | "
                         f"{conv} | {flag} |")

    def diffs(metric: str, what: str) -> list[str]:
        out = []
        for reg in regs:
            c = claims.compare_in(tidy, reg, "none", metric) if reg != "none" else None
            if c:
                how = f"paired over {c.n_pairs} blocks" if c.analysis == "paired" else "Welch"
                out.append(f"- `{reg}`: {what} difference to none's {c.diff:+.3g} [95% CI {c.ci_low:+.3g}, "
                           f"{c.ci_high:+.3g}], p = {c.p:.2g} ({how})")
        return out
    lines += ["", "The converged white-box minimum against `none` (the distance the boundary figure should measure):", ""]
    lines += diffs("min_perturbation.median_sq_l2", "white-box minimal sq. L2:")
    lines += ["", "Reverse transfer (attacker: the evaluated model; target: the block's unregularized surrogate). If a "
              "regularized model looks robust to transfer only because it differs from the surrogate, its own "
              "FGSM examples also transfer poorly to the surrogate:", ""]
    lines += diffs("transfer_fgsm_reverse.relative_robustness", "the surrogate's relative robustness under its FGSM:")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- the report
def render_report(scale: str, out: Path, report: Path, sims: list[dict], meta: dict, log=print) -> Path:
    """The report and its figures, every number read from the finished records under `out`."""
    import leaderboard
    from bench.core import store
    from bench.core.config import PRESETS
    fig_dir = report.parent / (report.stem + "_figures")
    preset = PRESETS[SCALES[scale]["preset"]]
    tidy = _finished(leaderboard.load_records(out), preset.get("suite"))
    order = budgets(tidy)
    main_b = order[0] if order else None
    main = tidy[tidy["budget_steps"] == main_b] if main_b is not None else tidy
    regs = [r for r in REGULARIZERS if (tidy["regularizer"] == r).any()] + report_extras.baselines_present(tidy)
    rel = lambda p: os.path.relpath(p, report.parent)  # noqa: E731
    plots = leaderboard.plot_all([str(out)], str(fig_dir))
    if isinstance(plots, dict):
        plots = [p for v in plots.values() for p in (v if isinstance(v, (list, tuple)) else [v])]
    fig_dir.mkdir(parents=True, exist_ok=True)
    table = leaderboard.build_table(tidy)
    for fmt in ("md", "csv", "html"):
        store.atomic_write_bytes(fig_dir / f"leaderboard.{fmt}", leaderboard.render(table, fmt).encode())
    claims_md, claim_results = claims_section(main)
    md = _header_md(scale, tidy, meta)
    md += _protocol_md(scale, out, tidy, order, main_b, preset)
    finished = set(tidy["run_dir"])
    details = [d for d in leaderboard.load_details(out) if d["meta"]["run_dir"] in finished]
    md += _leaderboard_md(tidy, order, main_b, regs, fig_dir, rel, details)
    md += ["## Claims (main budget)", "", claims_md]
    md += _budget_md(tidy, order, regs, fig_dir, rel)
    md += ["## Honesty checks (main budget)", "", honesty_section(main, regs), "",
           "## S^pixel vs S^neural-pred", ""]
    md += _similarity_md(sims, rel) + [""] + report_extras.matched_md(tidy, out) + report_extras.pareto_md(plots, rel)
    md += ["## Figures", ""] + [f"![{Path(p).stem}]({rel(p)})" for p in sorted(str(x) for x in plots or [])
                                if p.endswith(".png") and not Path(p).stem.startswith("pareto")] + [""]
    store.atomic_write_bytes(report, "\n".join(md).encode())
    store.atomic_write_json(report.with_suffix(".json"), {"meta": meta, "main_budget": main_b, "budgets": order,
                                                          "claims": claim_results, "similarity": sims})
    log(f"[reproduce] wrote {report}")
    return report


def _finished(tidy, suite: str | None):
    """Only records whose whole suite is in (a record still being evaluated would enter with some tests)."""
    suite_tests = {t for t, _ in _suite_tests(suite)}
    if len(tidy):
        per_run = tidy.groupby("run_dir")["test"].agg(set)
        tidy = tidy[tidy["run_dir"].isin([d for d, tests in per_run.items() if suite_tests <= tests])]
    return tidy


def _header_md(scale: str, tidy, meta: dict) -> list[str]:
    finished = int(tidy["run_dir"].nunique()) if len(tidy) else 0
    planned = planned_records(scale)
    md = [f"# Reproduction study ({scale} scale)", ""]
    if finished < planned:
        md += [f"> **Partial study: {finished} of the {planned} planned records are finished.** Every table, "
               "verdict and figure below uses only those; the verdicts are provisional. Re-running the command "
               "reuses every finished record and runs only what is missing.", ""]
    md += ["Generated by `" + meta["command"] + "`; nothing below is typed by hand except the prose.",
           f"Rendered {meta['finished']} on {meta['device']}. Invocations of the command on these records "
           "(each reuses every finished record and runs only what is missing):", ""]
    md += [f"- {h['finished']}: `{h['command']}`: {h['duration_min']:.1f} min, {h.get('jobs_run', '?')} jobs run"
           for h in meta.get("history", [meta])]
    return md + ["",
                 f"Total recorded compute of the records: {meta['train_s'] / 60:.1f} min training, "
                 f"{meta['eval_s'] / 60:.1f} min evaluation (evaluation / training = "
                 f"{meta['eval_s'] / max(meta['train_s'], 1e-9):.2f}).", "",
                 "## Protocol", ""]


def _protocol_md(scale: str, out: Path, tidy, order, main_b, preset: dict) -> list[str]:
    n_seeds = {b: tidy[tidy["budget_steps"] == b].groupby("regularizer")["seed"].nunique().to_dict() for b in order}
    md = [f"- Step budget {b}{' (main)' if b == main_b else ''}: seeds per regularizer "
          + ", ".join(f"{k} {v}" for k, v in sorted(n_seeds[b].items())) + "; training (from the records' "
          "config.json): " + _record_setup(out, b) + "." for b in order]
    md += ["- Suite `" + preset.get("suite", "?") + "`: " + "; ".join(
               f"{t} {json.dumps(p)}" if p else t for t, p in _suite_tests(preset.get("suite"))) + ".",
           "- Regularizer hyper-parameters: the defaults of each entry (alpha 10 for pixel_sim/pixel_th, 20 for "
           "neural_pred; Th 0.8; 5000 regularization images = the first 5000 of the task's training subset; 16 pairs "
           "per step; g = 2 arctanh with eps 1e-5; running-mean beta 0.9).",
           "", "### Differences from the papers' protocols", ""]
    md += [f"- {d}" for d in DIFFERENCES[scale]]
    suite_p = dict(_suite_tests(preset.get("suite")))
    if "boundary" in suite_p:
        import attacks
        b = suite_p["boundary"]
        mp = attacks.TESTS["min_perturbation"](**suite_p.get("min_perturbation", {})).params
        md.append(f"- Boundary attack: {b.get('n')} test images x {b.get('repeats')} repeats (paper: 1000 x 5), "
                  f"{b.get('steps')} steps as in the reference code, each repeat from its own seeded random "
                  f"other-class starting image (so the repeats are independent); `min_perturbation` "
                  f"({getattr(mp, 'attack', 'ddn')}, at most {getattr(mp, 'steps', '?')} steps with early stopping) on the "
                  "same images is its converged reference.")
    extras = [f"{t} ({', '.join(f'{k}={v:.4g}' if isinstance(v, float) else f'{k}={v}' for k, v in suite_p[t].items())})"
              for t in ("pgd", "autoattack", "hop_skip_jump") if t in suite_p]
    if extras:
        md.append("- Extras the papers did not run: " + "; ".join(extras) + ".")
    return md


def _leaderboard_md(tidy, order, main_b, regs, fig_dir: Path, rel, details=None) -> list[str]:
    md = ["", "## Leaderboard (key metrics)", "",
          "The key columns keep clean accuracy apart from robustness: *relative robustness* is the mean over the "
          "perturbed levels of accuracy / the model's own clean accuracy on the same images; *at half clean* is "
          "the strength at which accuracy falls to half of clean (interpolated; a seed whose accuracy never falls "
          "that far is censored at the top level, counted, and compared by a sign test); *error increase* is the "
          "corruption error minus clean error (absolute); *relative mCE* is that increase relative to `none`'s "
          "(Hendrycks & Dietterich), over the corruptions where none's increase is large enough to divide by "
          "(`leaderboard.derived`); *minimal L2* is the median over images of the smallest plain L2 any converged "
          "attack found. Each cell: mean ± SEM over seeds (n); under it Δ = difference to `none` [95% interval, "
          "paired over the seed blocks both have unless marked Welch] and the p-value Holm-corrected across the "
          "row's metrics. Every metric of every test: "
          f"[leaderboard.md]({rel(fig_dir / 'leaderboard.md')}), [leaderboard.csv]({rel(fig_dir / 'leaderboard.csv')}), "
          f"[leaderboard.html]({rel(fig_dir / 'leaderboard.html')}).", ""]
    for b in order:
        sub = tidy[tidy["budget_steps"] == b]
        here = [r for r in regs if (sub["regularizer"] == r).any()]
        md += [f"### Step budget {b}{' (main)' if b == main_b else ''}", ""] + report_extras.baselines_note(sub) + [
            key_table(sub, here, details), ""]
    return md


def _budget_md(tidy, order, regs, fig_dir: Path, rel) -> list[str]:
    budget_md, budget_png = budget_section(tidy, fig_dir, regs)
    md = ["## Effect versus training length", "", budget_md, ""]
    if budget_png:
        md += [f"![differences to none against the step budget]({rel(budget_png)})", ""]
    if len(order) > 1:
        md += ["Verdicts of the same claims at the other budgets (fewer seeds, so wider intervals):", ""]
        for b in order[1:]:
            res = claims.evaluate_claims(tidy[tidy["budget_steps"] == b])
            md += [f"- {b} steps: " + "; ".join(f"{c['id']}: **{c['verdict']}**" for c in res)]
        md.append("")
    return md


def _similarity_md(sims: list[dict], rel) -> list[str]:
    md = []
    for s in sims:
        md.append(f"- **{s['label']}** ({s['n_images']} images, {s['pairs']} pairs, response model "
                  f"`{s['response_model'].get('name', s['response_model'])}`): Pearson r = {s['pearson']:.3f}, "
                  f"Spearman rho = {s['spearman']:.3f}; pairs with |S^pixel| > {s['th']}: {100 * s['pixel']['pass']:.2f}%, "
                  f"|S^neural-pred| > {s['th']}: {100 * s['neural_pred']['pass']:.2f}%.")
        png = [f for f in s.get("figures", []) if f.endswith(".png")]
        if png:
            md.append(f"\n  ![similarity {s['label']}]({rel(png[0])})\n")
    return md


def planned_records(scale: str) -> int:
    """Records the scale's sweeps plan (regularizers x seeds per sweep; surrogates not counted)."""
    from bench.app.sweep import parse_seeds
    sc = SCALES[scale]
    return sum(len(sw.get("regularizers", REGULARIZERS)) * len(parse_seeds(sw.get("seeds") or sc["seeds"]))
               for sw in sc["sweeps"])


def _record_setup(out: Path, steps: int | None = None) -> str:
    for record in Record.find(out):
        rec = record.header() or {}
        c, b = rec.get("config", {}), rec.get("budget", {})
        if c.get("regularizer") != "none" or (steps is not None and b.get("steps") != steps):
            continue
        keys = ("preset", "dataset", "color", "arch", "width", "n_train", "n_test", "epochs", "batch_size", "lr",
                "momentum", "weight_decay", "lr_schedule", "lr_step_epochs", "lr_gamma", "lr_cycle_epochs", "select",
                "reg_forward", "input_scaling", "suite")
        return (", ".join(f"{k}={c.get(k)}" for k in keys) + f"; step budget {b.get('steps')} "
                f"({b.get('epochs')} epochs x {b.get('steps_per_epoch')} steps), identical for every regularizer")
    return "no record found"


def _suite_tests(name):
    import attacks
    return attacks.SUITES.get(name, [])


DIFFERENCES = {
    "cpu": [
        "Task: Fashion-MNIST (grayscale, 28x28 zero-padded to 32x32) instead of grayscale CIFAR-10; the "
        "regularization set is the task's own training images, as in the paper's Fashion-MNIST setting.",
        "Model: the reference ResNet18 at width 0.25 (16-32-64-128 channels) instead of 64-128-256-512.",
        "Budget: two step budgets (see above: a 6000-image subset for a few epochs, and 20000 images for "
        "~900 steps) instead of 40 epochs on the full set; the identical step budget holds across "
        "regularizers within each.",
        "Noise and transfer-FGSM strengths: the reference code's for Fashion-MNIST (std and eps up to 0.5), "
        "so the curves run from clean accuracy towards chance; the papers' CIFAR figures use 0.1 / 0.02.",
        "neural_pred: the target comes from our seeded V1 Gabor energy model (`v1gabor`), not from a CNN "
        "fitted to mouse V1 recordings (neither the recordings nor that model are available).",
        "Corruptions: generated with the CIFAR-10-C parameters on the Fashion-MNIST test images "
        "(a 'Fashion-MNIST-C'); frost uses procedural textures.",
        "AutoAttack is not run at this scale (its Square stage costs minutes per model on this CPU; it is in "
        "the `full` suite).",
        "Boundary attack: foolbox 3's BoundaryAttack, started from a random other-class test image moved "
        "towards the original by binary search (the reference used an older foolbox); see the honesty checks.",
        "HopSkipJump is not run at this scale either (the `full` suite has it).",
        "Converged decision-based distance: `boundary_converged` (foolbox's BoundaryAttack in 2000-step segments "
        "with per-image early stopping) is in the `paper` and `full` suites, not in this one: on this CPU, 6000 "
        "steps on 20 images of one model took minutes and had not converged (median still falling 19% per 2000 "
        "steps, 15x the white-box minimum). Distance claims are therefore judged on the per-image minimum over "
        "the converged attacks this suite runs (white-box DDN), in plain L2.",
        "Design (main budget): a seed is a block. For every regularizer, seed s fixes the initialisation, the "
        "6000-image training subset and the 1000 test images (`data_seed` follows the seed), the data order, "
        "the pair draws, every attack's randomness and the transfer surrogate (an unregularized model with seed "
        "1000 + s trained on the block's subset), so comparisons are paired over blocks and the spread covers "
        "the sampling of training subsets, test images and surrogates. The longer budget keeps the earlier "
        "fixed design (one subset, one test set and one surrogate for every seed; its records carry no "
        "per-image distances), so its intervals cover training variability on those images only.",
    ],
    "gpu": [
        "neural_pred: the target comes from our seeded V1 Gabor energy model, not from recordings.",
        "Corruptions: the released CIFAR-10-C files when present, else generated with the CIFAR-10-C parameters.",
    ],
}


# ----------------------------------------------------------------------------- command
# The cpu study's records live in the repository (configs, metrics, training logs; no weights), so
# every number of the report can be recomputed and a later invocation re-renders or extends the
# study without retraining (bench.app.jobs.is_complete accepts a finished record without its weights).
RECORDS_DIR = {"cpu": "docs/reproduction_records"}
RECORDS_GITIGNORE = "# weights, caches and transient job files stay out of git\n*.pt\n*.pt.tmp*\n.sweeps/\n.cache/\n" \
                    "skimage_crops/\njob_status.json\njob.log\n*.lock\n.*.lock\n"


def keep_records_light(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    gi = out / ".gitignore"
    if not gi.exists():
        gi.write_text(RECORDS_GITIGNORE)


def reproduce(scale: str = "cpu", *, seeds: str | None = None, launcher: str = "local", workers: int | None = None,
              device: str | None = None, out=None, report=None, sets=(), render_only: bool = False,
              train_only: bool = False, log=print) -> int:
    """Run the study of `scale` (every sweep; finished records are reused), then the similarity analysis,
    and render the report from the records. Returns 0, or 1 when a job failed."""
    t0 = time.time()
    sc = SCALES[scale]
    out = Path(out or RECORDS_DIR.get(scale, f"results/reproduce-{scale}")).resolve()
    keep_records_light(out)
    report = Path(report or ("docs/reproduction.md" if scale == "cpu" else "docs/reproduction-gpu.md")).resolve()
    code, jobs_run = 0, 0
    if not render_only:
        code, jobs_run = _run_sweeps(sc, out, seeds=seeds, launcher=launcher, workers=workers, device=device,
                                     sets=list(sets), train_only=train_only, log=log)
        if train_only:
            log("[reproduce] trained; evaluate and report with the same command without --train-only")
            return code
    sims = run_similarity(scale, report.parent / (report.stem + "_figures"), out / "skimage_crops")
    meta = _invocation(out, t0, jobs_run)
    render_report(scale, out, report, sims, meta)
    log(f"[reproduce] records: {out}\n[reproduce] report: {report}")
    return code


def _run_sweeps(sc: dict, out: Path, *, seeds, launcher, workers, device, sets, train_only, log) -> tuple[int, int]:
    """Every sweep of the scale through `bench.app.sweep` (one `SweepSpec` each)."""
    from bench.app.sweep import SweepSpec, run_sweep, summarize
    code, jobs_run = 0, 0
    for sw in sc["sweeps"]:
        spec = SweepSpec(regularizers=list(sw.get("regularizers", REGULARIZERS)),
                         seeds=seeds or sw.get("seeds") or sc["seeds"], preset=sc["preset"], datasets=sw["datasets"],
                         overrides={"out": str(out), **({"device": device} if device else {})},
                         sets=list(sw["sets"]) + list(sets), launcher=launcher, workers=workers,
                         train_only=train_only)
        log(f"[reproduce] sweep {sw['name']}: regularizers {','.join(spec.regularizers)}, seeds {spec.seeds}, "
            f"preset {spec.preset}" + (f", --set {' --set '.join(spec.sets)}" if spec.sets else ""))
        plan, results = run_sweep(spec, log=log)
        code |= summarize(plan, results, log=log)
        jobs_run += sum(1 for r in results.values() if r.get("state") == "done" and not r.get("skipped"))
    return code, jobs_run


def _invocation(out: Path, t0: float, jobs_run: int) -> dict:
    """This invocation's facts (appended to the records' `reproduce_invocations.json`) and the history."""
    import leaderboard
    from bench.core import store
    tidy = leaderboard.load_records(out)
    dev = "unknown device"
    for record in Record.find(out)[:1]:
        dev = (record.header() or {}).get("device", {}).get("name", dev)
    cmdline = "python -m bench reproduce " + shlex.join(sys.argv[2:] if sys.argv[1:2] == ["reproduce"] else sys.argv[1:])
    meta = {"command": cmdline.strip(), "finished": _dt.datetime.now().isoformat(timespec="seconds"),
            "duration_min": (time.time() - t0) / 60, "device": dev,
            "train_s": float(tidy[tidy["metric"] == "train.wall_s"]["value"].sum()),
            "eval_s": float(tidy[tidy["metric"] == "eval.seconds"]["value"].sum()),
            "jobs_run": jobs_run}  # no results path: the history lives in the results folder, machine paths stay out
    hist_path = out / "reproduce_invocations.json"
    history = (store.read_json(hist_path, []) or []) + [dict(meta)]
    store.atomic_write_json(hist_path, history)
    return {**meta, "history": history}
