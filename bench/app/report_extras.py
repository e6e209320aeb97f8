"""Report pieces beside `none`: the differences to each baseline arm, the accuracy-matched `none`, and the
Pareto view.

Baselines (`leaderboard.differences.BASELINES`: input-noise augmentation and fast adversarial training) are
read from the records by name. Each regularizer's comparisons on one metric, with `none` and with every
baseline present, form a family of m: each interval is at the Bonferroni level 1 - 0.05/m (95% when `none` is
the only reference), paired over the seed blocks both arms have (else Welch), the rule of the leaderboard's
`leaderboard.differences`. Every baseline present is shown: none is picked after seeing the data.
"""
from __future__ import annotations

from pathlib import Path

from bench.app import claims


def baselines_present(tidy, reg: str | None = None) -> list[str]:
    from leaderboard.differences import BASELINES
    return [b for b in BASELINES if b != reg and (tidy["regularizer"] == b).any()]


def reference_alpha(tidy, reg: str) -> float:
    """The level of each of `reg`'s intervals: 0.05 over its comparisons (`none` and each baseline present)."""
    from leaderboard.stats import ALPHA
    return ALPHA / (1 + len(baselines_present(tidy, reg)))


def baseline_deltas(tidy, reg: str, metric: str, higher_is_better: bool = True) -> str:
    """`<br>Δ vs noise_aug +x [lo, hi] paired n=5` for each baseline present (adjusted level), or ''."""
    if reg == "none":
        return ""
    alpha = reference_alpha(tidy, reg)
    out = []
    for b in baselines_present(tidy, reg):
        if sum(claims.censored(tidy, reg, metric)) or sum(claims.censored(tidy, b, metric)):
            out.append(f"<br>Δ vs {b}: censored seeds, no mean difference")
            continue
        c = claims.compare_in(tidy, reg, b, metric, higher_is_better, alpha=alpha)
        if c is not None:
            how = f"paired n={c.n_pairs}" if c.analysis == "paired" else "Welch"
            out.append(f"<br>Δ vs {b} {c.diff:+.3g} [{c.ci_low:+.3g}, {c.ci_high:+.3g}] {how}")
    return "".join(out)


def baselines_note(tidy) -> list[str]:
    """The sentence that says how the baseline differences are adjusted, where the records hold baselines."""
    present = baselines_present(tidy)
    if not present:
        return []
    m = 1 + len(present)
    return [f"Baselines present: {', '.join(f'`{b}`' for b in present)}. Each regularizer's cell shows its "
            f"difference to `none` and to each baseline; the {m} intervals of a cell are Bonferroni-adjusted "
            f"together ({1 - 0.05 / m:.2%} each; a baseline's own row has one comparison fewer), and every "
            "baseline present is shown (none is picked after seeing the data).", ""]


def pareto_md(plots, rel) -> list[str]:
    """The Pareto section: the figures `leaderboard.plots` wrote (`pareto*.png`)."""
    pngs = sorted(str(p) for p in plots or [] if Path(p).stem.startswith("pareto") and str(p).endswith(".png"))
    if not pngs:
        return []
    from leaderboard.pareto import SUMMARIES, X_LABEL
    md = ["## Clean accuracy against robustness (Pareto view)", "",
          f"{X_LABEL.capitalize()} (x) against each robustness summary (y: "
          + ", ".join(f"`{m}`" for m, _ in SUMMARIES) + " where the records hold it): a small point per (arm, "
          "seed), a large one for the arm's mean, so a gain that costs clean accuracy is seen as one. One "
          "figure per comparable setup (comparison key and suite protocol); the data behind it: "
          "`leaderboard.pareto.pareto_points`.", ""]
    return md + [f"![{Path(p).stem}]({rel(p)})" for p in pngs] + [""]


def matched_md(tidy, *roots) -> list[str]:
    """The accuracy-matched control section (issue 31.4; `leaderboard.matched`): each regularized arm beside
    `none` at the end of training and `none` at the epoch of the same validation accuracy, where the records of
    `roots` hold `none`'s epoch evaluations (`epoch_evals`); nothing otherwise."""
    from leaderboard.matched import matched_markdown, matched_rows
    table = matched_markdown(matched_rows(tidy, *roots))
    if not table:
        return []
    return ["## Accuracy-matched control", "",
            "A regularizer that costs clean accuracy can look robust for that reason alone. Per seed block, `none` "
            "was evaluated at every epoch (`epoch_evals`); each regularized run is set beside `none` of its block at "
            "the epoch whose validation accuracy is closest to that of the run's selected epoch. The validation "
            "split's size and an accuracy's standard error on it, sqrt(p(1-p)/n), say how closely accuracies can "
            "be matched; the last column counts the blocks matched within two standard errors. The interval is a "
            "paired 95% t interval over the blocks (not adjusted with the comparisons above).", "", table, ""]
