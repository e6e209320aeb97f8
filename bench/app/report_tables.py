"""The report's tables: each arm's key metrics beside its difference to `none`, the differences at each step
budget (table, sentences and figure), and the honesty checks of the distance figures.

Kept apart from the report's assembly (`bench.app.study_report`) because these are the numbers a reader checks:
every cell is read from the records through `bench.app.claims` (the same paired comparisons the verdicts use),
so a table and a verdict never disagree on the same records.
"""
from __future__ import annotations

from pathlib import Path

from bench.app import claims, report_extras

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
             "converged / white-box | converged images | 50-step figure converged? |",
             "|---|---|---|---|---|---|---|---|"]
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
    lines += ["", "The converged white-box minimum against `none` (the distance the boundary figure should measure):",
              ""]
    lines += diffs("min_perturbation.median_sq_l2", "white-box minimal sq. L2:")
    lines += ["", "Reverse transfer (attacker: the evaluated model; target: the block's unregularized surrogate). If a "
              "regularized model looks robust to transfer only because it differs from the surrogate, its own "
              "FGSM examples also transfer poorly to the surrogate:", ""]
    lines += diffs("transfer_fgsm_reverse.relative_robustness", "the surrogate's relative robustness under its FGSM:")
    return "\n".join(lines)
