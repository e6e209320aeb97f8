"""Issues 29.4/29.5 and 31.5/31.6: the board uses the report's paired analysis over seed blocks (Welch only
where the records do not form blocks, and says which), one assumption for the seeds that would decide a
line (named in the rule text the report prints), the differences to each baseline arm beside `none`
(Bonferroni over a row's comparisons), and the Pareto view (figure + data) in the report and the HTML board.
Records are written as files (config.json + metrics.json), so every expected number is known; the baselines
are plain names in the records (`noise_aug`, `fgsm_at`): the board never needs them registered."""
import html
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as ss

from leaderboard import build_table, load_records, render
from leaderboard import differences, pareto, stats

ARMS = {  # regularizer -> per-seed (clean, noise rel. robustness, transfer rel. robustness, minimal L2)
    "none": [(0.90, 0.50, 0.20, 0.40), (0.88, 0.56, 0.25, 0.45), (0.91, 0.47, 0.22, 0.41), (0.89, 0.53, 0.21, 0.44)],
    "pixel_sim": [(0.86, 0.60, 0.30, 0.47), (0.85, 0.67, 0.33, 0.50), (0.87, 0.58, 0.29, 0.46),
                  (0.84, 0.64, 0.31, 0.49)],
    "noise_aug": [(0.87, 0.70, 0.24, 0.43), (0.86, 0.74, 0.27, 0.44), (0.88, 0.69, 0.26, 0.42),
                  (0.85, 0.72, 0.25, 0.45)],
    "fgsm_at": [(0.80, 0.62, 0.45, 0.60), (0.79, 0.66, 0.49, 0.66), (0.81, 0.60, 0.44, 0.58),
                (0.78, 0.64, 0.47, 0.63)],
}
NOISE = "gaussian_noise.relative_robustness"


def _write(root: Path, reg: str, seed: int, vals, data_seed=None, tag=""):
    clean, noise, transfer, l2 = vals
    rd = root / f"{reg}-s{seed}{tag}"
    rd.mkdir(parents=True)
    cfg = {"regularizer": reg, "reg_params": {}, "seed": seed, "dataset": "cifar10", "color": "gray", "suite": "t",
           "data_seed": data_seed}
    rec = {"config": cfg, "hash": f"{reg}{seed}{tag}", "comparison_key": "ck", "regularizer": {"name": reg, "params": {}},
           "model": {"arch": "resnet18", "width": 0.25, "params": 1000}, "data": {"dataset": "cifar10", "color": "gray"},
           "budget": {"steps": 100, "epochs": 1}}

    def ent(test, summary):
        return {"protocol": {"test": test, "version": "1"}, "seed": seed, "n_examples": 100,
                "result": {"summary": summary}, "cost": {"seconds": 1.0}}
    suite = {"clean": ent("clean", {"accuracy": clean}), "gaussian_noise": ent("gaussian_noise", {"relative_robustness": noise}),
             "transfer_fgsm": ent("transfer_fgsm", {"relative_robustness": transfer}),
             "minimal_l2": ent("minimal_l2", {"median_l2": l2})}
    (rd / "config.json").write_text(json.dumps(rec))
    (rd / "metrics.json").write_text(json.dumps({"train": {"done": True, "wall_s": 5.0}, "suite": suite}))


def _records(root: Path, arms=ARMS, seeds_of=None, data_seed=None) -> Path:
    for reg, rows in arms.items():
        for s, v in zip((seeds_of or {}).get(reg, range(len(rows))), rows):
            _write(root, reg, s, v, data_seed=data_seed)
    return root


def _row(table, reg):
    return table[table["regularizer"] == reg].iloc[0]


def _col(reg, k):
    return np.array([v[k] for v in ARMS[reg]])


# --------------------------------------------------------------------------- 29.4: board = report
def test_board_interval_on_seed_blocks_is_the_paired_one(tmp_path):
    """Both arms have seeds 0-3 (the seeds follow the block): the board's difference and 95% interval are the
    mean of the per-block differences ± t(0.975, n-1) x SD / sqrt(n), recomputed here with numpy/scipy, and the
    line says `paired n=4`; and they equal the report's comparison on the same records."""
    only = {k: ARMS[k] for k in ("none", "pixel_sim")}
    table = build_table(_records(tmp_path / "r", only))
    r = _row(table, "pixel_sim")
    d = _col("pixel_sim", 1) - _col("none", 1)
    half = ss.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d))
    assert r[f"{NOISE}|diff"] == pytest.approx(d.mean(), abs=1e-12)
    assert (r[f"{NOISE}|ci_low"], r[f"{NOISE}|ci_high"]) == pytest.approx((d.mean() - half, d.mean() + half), abs=1e-12)
    assert r[f"{NOISE}|p"] == pytest.approx(ss.ttest_rel(_col("pixel_sim", 1), _col("none", 1)).pvalue, abs=1e-12)
    assert r[f"{NOISE}|analysis"] == "paired n=4"
    # the paired interval is not the Welch one on the same values
    w = ss.ttest_ind(_col("pixel_sim", 1), _col("none", 1), equal_var=False).confidence_interval(0.95)
    assert abs(r[f"{NOISE}|ci_low"] - w.low) > 1e-3
    # the report's line (bench.app.claims.compare_in, what the report's key table and verdicts use)
    from bench.app import claims
    c = claims.compare_in(load_records(tmp_path / "r"), "pixel_sim", "none", NOISE)
    assert c.analysis == "paired" and (c.diff, c.ci_low, c.ci_high) == pytest.approx(
        (r[f"{NOISE}|diff"], r[f"{NOISE}|ci_low"], r[f"{NOISE}|ci_high"]), abs=1e-12)
    # and the board says which analysis it used
    text = render(table, "term")
    assert f"[{d.mean() - half:+.3g}, {d.mean() + half:+.3g}] paired n=4" in text


def test_board_uses_welch_where_the_records_form_no_blocks(tmp_path):
    """`none` at seeds 0-3, `pixel_sim` at seeds 10-13: no common block, so Welch (scipy's interval), said."""
    only = {k: ARMS[k] for k in ("none", "pixel_sim")}
    table = build_table(_records(tmp_path / "r", only, seeds_of={"pixel_sim": range(10, 14)}))
    r = _row(table, "pixel_sim")
    a, b = _col("pixel_sim", 1), _col("none", 1)
    res = ss.ttest_ind(a, b, equal_var=False)
    ci = res.confidence_interval(0.95)
    assert (r[f"{NOISE}|ci_low"], r[f"{NOISE}|ci_high"]) == pytest.approx((ci.low, ci.high), abs=1e-12)
    assert r[f"{NOISE}|p"] == pytest.approx(res.pvalue, abs=1e-12)
    assert r[f"{NOISE}|analysis"] == "Welch"
    assert f"[{ci.low:+.3g}, {ci.high:+.3g}] Welch" in render(table, "term")


def test_a_fixed_data_design_is_paired_and_says_so(tmp_path):
    """A design that fixes the data for every seed (data_seed set) still pairs by seed, as the report does, and
    the line says the pairs share a fixed data set."""
    only = {k: ARMS[k] for k in ("none", "pixel_sim")}
    r = _row(build_table(_records(tmp_path / "r", only, data_seed=0)), "pixel_sim")
    assert r[f"{NOISE}|analysis"] == "paired n=4, fixed data"


# --------------------------------------------------------------------------- 29.5: one assumption
def test_seeds_to_decide_one_formula_on_every_line_and_the_rule_names_it():
    """A superiority line and a non-inferiority line, both inconclusive: each one's seeds are those of the
    paired t-test at the adjusted level that detects the effect the line is judged against (claimed effect /
    margin) at the observed SD of the per-block differences; and the printed rule text names that assumption."""
    rng = np.random.default_rng(0)
    base = 0.5 + 0.05 * rng.standard_normal(4)
    sup = stats.compare(base + 0.02 + 0.08 * rng.standard_normal(4), base, seeds_a=range(4), seeds_b=range(4))
    sup.effect = 0.1
    ni = stats.compare(base - 0.01 + 0.06 * rng.standard_normal(4), base, seeds_a=range(4), seeds_b=range(4))
    ni.effect, ni.kind = 0.03, "noninferiority"
    stats.judge_claim([sup, ni])
    assert sup.verdict == ni.verdict == "inconclusive"
    for c in (sup, ni):
        want = None
        for n in range(2, 1001):  # independent: noncentral t power of the paired test at alpha / m
            t = ss.t.ppf(1 - 0.05 / 2 / 2, n - 1)
            nc = c.effect / (c.sd_diff / math.sqrt(n))
            if ss.nct.sf(t, n - 1, nc) + ss.nct.cdf(-t, n - 1, nc) >= 0.8 - 1e-6:
                want = n
                break
        assert c.seeds_to_decide == want
    text = stats.rule_text()
    assert stats.SEEDS_RULE in text
    assert "the true difference assumed to be the effect the line is judged against" in text
    assert "SD of the per-block differences" in text
    from bench.app import claims
    line = claims.fmt_comparison(sup.to_dict())
    assert f"about {sup.seeds_to_decide} seeds per arm would decide it if the true difference is the effect " \
           "judged against" in line


# --------------------------------------------------------------------------- 31.5: baselines beside none
def test_differences_to_each_baseline_with_bonferroni_intervals(tmp_path):
    """pixel_sim is compared with `none`, `noise_aug` and `fgsm_at` (records only: the names are not
    registered): three paired intervals, each at 1 - 0.05/3, against numpy/scipy; no baseline is chosen."""
    table = build_table(_records(tmp_path / "r"))
    r = _row(table, "pixel_sim")
    assert json.loads(r["refs"]) == ["none", "noise_aug", "fgsm_at"] and r["ref_level"] == pytest.approx(1 - 0.05 / 3)
    for ref, sfx in (("none", ""), ("noise_aug", "@noise_aug"), ("fgsm_at", "@fgsm_at")):
        d = _col("pixel_sim", 2) - _col(ref, 2)
        half = ss.t.ppf(1 - 0.05 / 3 / 2, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d))
        m = "transfer_fgsm.relative_robustness"
        assert r[f"{m}|diff{sfx}"] == pytest.approx(d.mean(), abs=1e-12)
        assert (r[f"{m}|ci_low{sfx}"], r[f"{m}|ci_high{sfx}"]) == pytest.approx((d.mean() - half, d.mean() + half),
                                                                               abs=1e-12)
        assert r[f"{m}|analysis{sfx}"] == "paired n=4"
    # a baseline's own row: compared with none and the other baseline (two comparisons)
    b = _row(table, "noise_aug")
    assert json.loads(b["refs"]) == ["none", "fgsm_at"] and b["ref_level"] == pytest.approx(0.975)
    # the board shows them beside none, in every format
    text = render(table, "term")
    assert "Δ vs noise_aug" in text and "Δ vs fgsm_at" in text and "intervals each" in text
    page = html.unescape(render(table, "html"))
    assert "Δ vs fgsm_at" in page
    # without baselines in the records, the intervals are the plain 95% ones
    only = {k: ARMS[k] for k in ("none", "pixel_sim")}
    assert _row(build_table(_records(tmp_path / "o", only)), "pixel_sim")["ref_level"] == pytest.approx(0.95)


def test_report_key_table_shows_the_baselines(tmp_path):
    from bench.app import report_extras, report_tables
    tidy = load_records(_records(tmp_path / "r"))
    table = report_tables.key_table(tidy, ["none", "pixel_sim", "noise_aug", "fgsm_at"])
    line = next(ln for ln in table.splitlines() if ln.startswith("| pixel_sim |"))
    d = _col("pixel_sim", 1) - _col("fgsm_at", 1)
    half = ss.t.ppf(1 - 0.05 / 3 / 2, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d))
    assert f"Δ vs fgsm_at {d.mean():+.3g} [{d.mean() - half:+.3g}, {d.mean() + half:+.3g}] paired n=4" in line
    assert "Δ vs noise_aug" in line
    assert "Bonferroni" in " ".join(report_extras.baselines_note(tidy))


def test_baseline_arms_have_their_own_style_in_the_plots():
    from leaderboard import plots
    cols = {plots.color_for(r) for r in ("none", "pixel_sim", "pixel_th", "neural_pred", "noise_aug", "fgsm_at")}
    assert len(cols) == 6 and not cols & {plots.color_for("noise_aug"), plots.color_for("fgsm_at")} - cols
    assert plots.color_for("noise_aug") not in plots._PALETTE and plots.color_for("fgsm_at") not in plots._PALETTE
    assert len({plots.marker_for(r) for r in ("pixel_sim", "noise_aug", "fgsm_at")}) == 3


# --------------------------------------------------------------------------- 31.6: the Pareto view
def test_pareto_points_are_the_records(tmp_path):
    tidy = load_records(_records(tmp_path / "r"))
    pts = pareto.pareto_points(tidy)
    assert set(pts["summary"]) == {m for m, _ in pareto.SUMMARIES}
    for k, (metric, _) in enumerate(pareto.SUMMARIES, start=1):
        for reg in ARMS:
            g = pts[(pts["summary"] == metric) & (pts["regularizer"] == reg)]
            seeds = g[g["point"] == "seed"].sort_values("seed")
            assert list(seeds["seed"]) == [0, 1, 2, 3]
            assert np.allclose(seeds["clean"], _col(reg, 0)) and np.allclose(seeds["value"], _col(reg, k))
            mean = g[g["point"] == "mean"].iloc[0]
            assert mean["clean"] == pytest.approx(_col(reg, 0).mean()) and mean["value"] == pytest.approx(
                _col(reg, k).mean()) and mean["n"] == 4
    assert isinstance(pts, pd.DataFrame) and len(pts) == 3 * 4 * 5


def test_pareto_figure_is_written_and_the_board_embeds_it_escaped(tmp_path):
    from leaderboard.plots import make_figures, plot_all
    root = _records(tmp_path / "r")
    _write(root, "<script>alert(1)</script>", 0, ARMS["pixel_sim"][0])
    _write(root, "<script>alert(1)</script>", 1, ARMS["pixel_sim"][1])
    paths = plot_all([root], tmp_path / "figs")
    png = [p for p in paths if p.name == "pareto.png"]
    assert png and png[0].stat().st_size > 5000
    fig = make_figures(root, log=lambda m: None)["pareto"]
    assert len(fig.axes) == 3 and fig.axes[0].get_xlabel() == "clean accuracy"
    page = render(build_table(root), "html")
    assert "Pareto view" in page and page.count("<svg") == 3
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert page.count("<script>") == 1
    # one circle per (arm, seed) and per arm mean, in each of the three panels
    assert page.count("<circle") == 3 * (4 * 4 + 2 + 4 + 1)


def test_report_has_the_pareto_section(tmp_path):
    from bench.app import report_extras
    figs = [tmp_path / "f" / "pareto.png", tmp_path / "f" / "noise.png"]
    md = report_extras.pareto_md(figs, lambda p: Path(p).name)
    assert md[0].startswith("## Clean accuracy against robustness") and "![pareto](pareto.png)" in md
    assert not any("noise.png" in x for x in md)
