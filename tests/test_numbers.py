"""The numbers a study reports: per-dataset reference strengths, summaries that keep clean accuracy
out of robustness, relative corruption error, verdicts with intervals and power, the shuffled-target
control. Every value is checked against an independent computation."""
import math

import numpy as np
import pytest
import torch

import attacks
from attacks.summaries import curve_summary, strength_50
from leaderboard import stats
from leaderboard.derived import corruption_error_rows


# --------------------------------------------------------------------------- reference strengths
@pytest.mark.parametrize("test,key,dataset,top", [
    ("gaussian_noise", "stds", "fashion_mnist", 0.5), ("gaussian_noise", "stds", "mnist", 0.5),
    ("gaussian_noise", "stds", "cifar10", 0.1), ("gaussian_noise", "stds", "cifar100", 0.1),
    ("uniform_noise", "stds", "fashion_mnist", 0.5), ("uniform_noise", "stds", "cifar10", 0.1),
    ("salt_pepper_noise", "fractions", "fashion_mnist", 0.3), ("salt_pepper_noise", "fractions", "cifar10", 0.1),
    ("transfer_fgsm", "eps", "fashion_mnist", 0.5), ("transfer_fgsm", "eps", "mnist", 0.5),
    ("transfer_fgsm", "eps", "cifar10", 0.02), ("transfer_fgsm", "eps", "cifar100", 0.005),
    ("transfer_fgsm_reverse", "eps", "cifar100", 0.005)])
def test_default_strengths_follow_the_reference_table(test, key, dataset, top):
    proto = attacks.TESTS[test]().protocol(dataset)
    assert proto[key] == pytest.approx(np.linspace(0, top, 10).tolist(), abs=1e-6)
    assert int(proto["version"]) >= 2 or test in ("uniform_noise", "salt_pepper_noise")


def test_explicit_strengths_win_and_are_recorded():
    t = attacks.TESTS["gaussian_noise"](stds=[0.0, 0.3])
    assert t.protocol("cifar10")["stds"] == [0.0, 0.3] == t.protocol("fashion_mnist")["stds"]


def test_noise_tests_run_and_record_resolved_levels():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    x, y = torch.rand(12, 1, 4, 4), torch.randint(0, 3, (12,))
    from bench.core.config import RunConfig
    ctx = attacks.EvalContext(model=model, x=x, y=y, config=RunConfig(dataset="fashion_mnist"), num_classes=3,
                              progress=False)
    for name in ("gaussian_noise", "uniform_noise", "salt_pepper_noise"):
        out = attacks.TESTS[name]()(ctx)
        levels = out["result"]["curves"]["accuracy"]["x"]
        assert levels[-1] == pytest.approx(0.3 if name == "salt_pepper_noise" else 0.5)
        # level 0 is the clean accuracy of the same images
        clean = (model(x).argmax(1) == y).float().mean().item()
        assert out["result"]["curves"]["accuracy"]["y"][0] == pytest.approx(clean)
        assert out["protocol"][("fractions" if name == "salt_pepper_noise" else "stds")] == levels


def test_salt_and_pepper_sets_the_requested_fraction_to_image_extremes():
    from attacks.noise import salt_pepper
    g = torch.Generator().manual_seed(0)
    x = 0.2 + 0.6 * torch.rand(4, 1, 64, 64, generator=g)
    u = torch.rand(4, 1, 64, 64, generator=g)
    salt = torch.rand(4, 1, 64, 64, generator=g) < 0.5
    out = salt_pepper(x, u, salt, 0.25, "image")
    changed = (out != x)
    assert changed.float().mean().item() == pytest.approx(0.25, abs=0.02)
    lo = x.flatten(1).min(1).values.view(-1, 1, 1, 1)
    hi = x.flatten(1).max(1).values.view(-1, 1, 1, 1)
    assert torch.all((out == lo) | (out == hi) | ~changed)


# --------------------------------------------------------------------------- curve summaries
def test_curve_summaries_against_hand_computation():
    levels = [0.0, 0.1, 0.2, 0.3, 0.4]
    acc = [0.8, 0.7, 0.5, 0.3, 0.2]
    s = curve_summary(levels, acc)
    assert s["mean_accuracy"] == pytest.approx(np.mean(acc))
    assert s["accuracy_max_level"] == 0.2
    assert s["mean_accuracy_perturbed"] == pytest.approx((0.7 + 0.5 + 0.3 + 0.2) / 4)
    assert s["relative_robustness"] == pytest.approx(np.mean(np.array([0.7, 0.5, 0.3, 0.2]) / 0.8))
    # half of clean = 0.4, crossed between 0.2 (0.5) and 0.3 (0.3): np.interp on the falling segment
    assert s["strength_50"] == pytest.approx(np.interp(0.4, [0.3, 0.5], [0.3, 0.2]))


def test_strength_50_unsorted_input_not_reached_and_exact_hit():
    assert strength_50([0.2, 0.0, 0.1], [0.45, 0.9, 0.7]) == pytest.approx(0.2)  # reaches 0.45 exactly at 0.2
    assert strength_50([0.0, 0.1, 0.2], [0.9, 0.8, 0.6]) is None  # stays above half
    assert strength_50([0.1, 0.2], [0.9, 0.1]) is None  # no clean level


def test_relative_robustness_separates_clean_cost_from_degradation():
    # model B is 10 points worse on clean images but loses the same fraction: equal relative robustness,
    # while its plain mean (which includes level 0) is lower
    levels = [0.0, 0.1, 0.2]
    a = curve_summary(levels, [0.9, 0.6, 0.3])
    b = curve_summary(levels, [0.8, 0.8 * 0.6 / 0.9, 0.8 * 0.3 / 0.9])
    assert a["relative_robustness"] == pytest.approx(b["relative_robustness"])
    assert b["mean_accuracy"] < a["mean_accuracy"]


# --------------------------------------------------------------------------- relative mCE
def _rec(run_dir, reg, per, clean, key="k"):
    meta = {"run_dir": run_dir, "regularizer": reg, "comparison_key": key}
    suite = {"corruptions": {"protocol": {"test": "corruptions", "version": "2"}, "n_examples": 100,
                             "result": {"details": {"per_corruption": per, "clean_accuracy": clean}}}}
    return meta, suite


def test_relative_mce_against_hand_computation():
    none1 = _rec("n1", "none", {"fog": [0.8, 0.6], "snow": [0.7, 0.5]}, 0.9)
    none2 = _rec("n2", "none", {"fog": [0.7, 0.5], "snow": [0.6, 0.4]}, 0.9)
    reg = _rec("r", "pixel_sim", {"fog": [0.75, 0.7], "snow": [0.6, 0.55]}, 0.8)
    other = _rec("o", "pixel_sim", {"fog": [0.1, 0.1], "snow": [0.1, 0.1]}, 0.2, key="other")  # no baseline
    rows = corruption_error_rows([none1, none2, reg, other])
    assert "o" not in rows
    got = {r["metric"]: r["value"] for r in rows["r"]}
    # baseline errors per corruption/severity: mean of the two none records
    b = {"fog": np.array([0.25, 0.45]), "snow": np.array([0.35, 0.55])}
    e = {"fog": np.array([0.25, 0.3]), "snow": np.array([0.4, 0.45])}
    ce = np.mean([e[c].sum() / b[c].sum() for c in b])
    rce = np.mean([(e[c] - 0.2).sum() / (b[c] - 0.1).sum() for c in b])
    assert got["corruptions.mce_vs_none"] == pytest.approx(ce)
    assert got["corruptions.relative_mce_vs_none"] == pytest.approx(rce)
    assert all(r["lower_is_better"] for r in rows["r"] if r["kind"] == "summary")
    # the none records average to 1 on mCE by construction
    n_vals = [dict((r["metric"], r["value"]) for r in rows[k])["corruptions.mce_vs_none"] for k in ("n1", "n2")]
    assert np.mean(n_vals) == pytest.approx(1.0, abs=0.05)


# --------------------------------------------------------------------------- verdicts
def test_welch_interval_matches_scipy():
    from scipy import stats as ss
    a, b = [0.81, 0.84, 0.80, 0.86, 0.83], [0.78, 0.80, 0.79, 0.74]
    diff, lo, hi, p = stats.welch_interval(a, b)
    res = ss.ttest_ind(a, b, equal_var=False)
    ci = res.confidence_interval(0.95)
    assert diff == pytest.approx(np.mean(a) - np.mean(b))
    assert (lo, hi) == pytest.approx((ci.low, ci.high))
    assert p == pytest.approx(res.pvalue)


def test_holm_against_hand_computation():
    assert stats.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert stats.holm([0.5, 0.001]) == pytest.approx([0.5, 0.002])
    out = stats.holm([float("nan"), 0.02])
    assert math.isnan(out[0]) and out[1] == pytest.approx(0.02)


def test_detectable_effect_has_the_stated_power_by_simulation():
    from scipy import stats as ss
    n, sd = 5, 1.0
    d = stats.detectable_effect(sd, n, sd, n)
    rng = np.random.default_rng(0)
    a = rng.normal(d, sd, (4000, n))
    b = rng.normal(0.0, sd, (4000, n))
    rate = (ss.ttest_ind(a, b, axis=1, equal_var=False).pvalue < 0.05).mean()
    assert rate == pytest.approx(0.8, abs=0.03)
    assert stats.power_welch(d, sd, n, sd, n) == pytest.approx(0.8, abs=1e-4)
    # more seeds: smaller detectable effect; seeds_needed inverts it
    assert stats.detectable_effect(sd, 20, sd, 20) < d
    k = stats.seeds_needed(d, sd, sd)
    assert k == n


def _judged(a, b, effect, **kw):
    c = stats.compare(a, b, **kw)
    c.effect = effect
    return stats.judge_claim([c])[0], c


def test_verdict_words_on_constructed_inputs():
    rng = np.random.default_rng(1)
    base = 0.80 + 0.005 * rng.standard_normal(5)
    # a clear effect of the claimed size
    w, _ = _judged(0.85 + 0.005 * rng.standard_normal(5), base, 0.05)
    assert w == "reproduced"
    # clearly above zero but far smaller than claimed
    w, _ = _judged(0.81 + 0.001 * rng.standard_normal(5), 0.80 + 0.001 * rng.standard_normal(5), 0.05)
    assert w == "partly"
    # a null with high power: the interval excludes the claimed effect
    w, c = _judged(0.80 + 0.002 * rng.standard_normal(5), 0.80 + 0.002 * rng.standard_normal(5), 0.05)
    assert w == "contradicted" and c.ci_high < 0.05
    # a null with low power: the interval holds both 0 and the claimed effect; says how many seeds decide
    w, c = _judged(0.80 + 0.1 * rng.standard_normal(3), 0.80 + 0.1 * rng.standard_normal(3), 0.05)
    assert w == "inconclusive" and c.ci_low < 0 < 0.05 < c.ci_high
    assert c.seeds_to_decide is not None and c.seeds_to_decide > 3
    # the wrong direction, significantly
    w, _ = _judged(0.70 + 0.005 * rng.standard_normal(5), base, 0.05)
    assert w == "contradicted"
    # lower-is-better metrics flip the direction
    w, _ = _judged([0.5, 0.52, 0.49, 0.51], [1.0, 1.02, 0.99, 1.01], 0.2, higher_is_better=False)
    assert w == "reproduced"


def test_claim_intervals_are_bonferroni_adjusted_over_the_claim():
    rng = np.random.default_rng(2)
    base = 0.5 + 0.01 * rng.standard_normal(5)
    strong = stats.compare(0.6 + 0.01 * rng.standard_normal(5), base)
    weak = stats.compare(0.5 + 0.05 * rng.standard_normal(5), base)
    for c in (strong, weak):
        c.effect = 0.05
    word, _ = stats.judge_claim([strong, weak], "all")
    assert strong.verdict == "reproduced" and weak.verdict == "inconclusive" and word == "inconclusive"
    assert stats.judge_claim([strong, weak], "any")[0] == "reproduced"
    # the adjusted interval is the Welch interval at level 1 - 0.05 / 2
    _, lo, hi, _ = stats.welch_interval(strong.values, base, alpha=0.025)
    assert (strong.adj_low, strong.adj_high) == pytest.approx((lo, hi))
    assert strong.adj_level == pytest.approx(0.975)


def test_noninferiority_margin():
    c = stats.compare([0.80, 0.81, 0.79, 0.80], [0.805, 0.80, 0.81, 0.80])
    c.effect, c.kind = 0.02, "noninferiority"
    assert stats.judge_claim([c])[0] == "reproduced"
    c = stats.compare([0.70, 0.71, 0.69, 0.70], [0.805, 0.80, 0.81, 0.80])
    c.effect, c.kind = 0.02, "noninferiority"
    assert stats.judge_claim([c])[0] == "contradicted"


def test_study_claims_on_constructed_records():
    import pandas as pd
    from bench.app import claims
    rng = np.random.default_rng(3)
    rows = []
    for reg, clean, rob in (("none", 0.85, 0.5), ("pixel_sim", 0.845, 0.6), ("pixel_th", 0.845, 0.5),
                            ("neural_pred", 0.845, 0.5), ("pixel_shuffle", 0.845, 0.5)):
        for s in range(5):
            for m, v in (("clean.accuracy", clean), ("gaussian_noise.relative_robustness", rob),
                         ("transfer_fgsm.relative_robustness", rob), ("minimal_l2.median_l2", rob),
                         ("gaussian_noise.accuracy_max_level", 0.2),
                         ("gaussian_noise.relative_accuracy_max_level", 0.25)):
                rows.append({"regularizer": reg, "seed": s, "metric": m, "value": v + 0.001 * rng.standard_normal()})
    from bench.app import studyfile
    res = {c["id"]: c for c in claims.evaluate_claims(pd.DataFrame(rows), studyfile.load("cpu").groups[0]["claims"])}
    assert res["attias-pixel_sim"]["verdict"] == "reproduced"
    assert res["attias-pixel_th"]["verdict"] == "contradicted"
    assert res["shuffle-control"]["verdict"] == "reproduced"
    assert res["clean-cost"]["verdict"] == "reproduced"
    assert res["li-neural"]["verdict"] == "contradicted"
    assert res["attias-pixel-vs-neural"]["note"].startswith("not informative")
    assert all(c["analysis"] == "paired" and c["n_pairs"] == 5 for r in res.values() for c in r["comparisons"])


# --------------------------------------------------------------------------- shuffled-target control
def test_shuffled_targets_keep_values_lose_structure():
    from regularizers import targets
    g = torch.Generator().manual_seed(0)
    imgs = torch.randint(0, 256, (40, 1, 8, 8), generator=g, dtype=torch.uint8)
    emb = targets.pixel_embeddings(imgs)
    S = emb @ emb.T
    se, _, info = targets.shuffled(emb, None, seed=3)
    Ss = se @ se.T
    iu = torch.triu_indices(40, 40, 1)
    assert torch.allclose(torch.sort(S[iu[0], iu[1]]).values, torch.sort(Ss[iu[0], iu[1]]).values)
    assert not torch.allclose(S, Ss)
    perm = torch.randperm(40, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(Ss, S[perm][:, perm])  # the documented definition
    _, sm, _ = targets.shuffled(None, S, seed=3)
    assert torch.allclose(sm, Ss)
    assert info["n"] == 40


def test_pixel_shuffle_is_registered_and_shuffles():
    import regularizers
    assert "pixel_shuffle" in regularizers.available()
    cls = regularizers.get_class("pixel_shuffle")
    assert cls.Params().shuffle is True
    assert regularizers.get_class("pixel_sim").Params().shuffle is False
