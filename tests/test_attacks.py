"""The attack suite (noise, transfer FGSM, boundary, white-box, min-perturbation, suite resume, CLI)
on a narrow model trained once per session on real Fashion-MNIST (`tiny` preset)."""
import json
import statistics
import sys
import types

import numpy as np
import pytest
import torch
import torch.nn as nn
from scipy import stats

import attacks
from attacks.base import EvalContext, accuracy, select_images, sq_l2_per_pixel
from attacks.boundary import Boundary, curve_steps
from attacks.boundary_starts import starting_points
from attacks.noise import GaussianNoise, add_noise
from attacks.transfer import TransferFGSM, TransferFGSMReverse
from attacks.whitebox import PGD, HopSkipJump, MinPerturbation

N_IMG = 96  # test images per context: keep everything small


@pytest.fixture(scope="session")
def trained_run(small_trained_run):
    return small_trained_run


def make_ctx(run_dir, n=N_IMG, seed=0):
    return attacks.context_for_run(run_dir, n_examples=n, seed=seed, progress=False)


@pytest.fixture
def ctx(trained_run):
    return make_ctx(trained_run)


def non_increasing(ys, tol=0.0):
    return all(b <= a + tol for a, b in zip(ys, ys[1:]))


def test_model_is_not_trivial(ctx):
    # the assertions below mean something only for a model that learned something
    assert accuracy(ctx.model, ctx.x, ctx.y) > 0.4


# --------------------------------------------------------------------------- gaussian noise
def test_noise_curve_falls_from_clean_accuracy(ctx):
    out = GaussianNoise()(ctx)
    curve = out["result"]["curves"]["accuracy"]
    # Fashion-MNIST: the reference's std linspace(0, 0.5, 10) (CIFAR's 0.1 would barely leave clean accuracy)
    assert curve["x"][0] == 0.0 and curve["x"][-1] == pytest.approx(0.5) and len(curve["x"]) == 10
    assert curve["y"][0] == pytest.approx(accuracy(ctx.model, ctx.x, ctx.y), abs=1e-6)
    # every point against an independent computation on the same model: the suite seed's one normal draw
    # per image (common random numbers), x + std * z clamped to each image's own [min, max]; one image of
    # slack for a logit that another summation order tips over
    g = torch.Generator().manual_seed(int(ctx.seed))
    z = torch.randn(ctx.x.shape, generator=g)
    lo, hi = ctx.x.amin(dim=(1, 2, 3), keepdim=True), ctx.x.amax(dim=(1, 2, 3), keepdim=True)
    want = [accuracy(ctx.model, torch.clamp(ctx.x + s * z, lo, hi), ctx.y) for s in curve["x"]]
    assert curve["y"] == pytest.approx(want, abs=1.5 / len(ctx.x))
    # the curve leaves clean accuracy (a property of any model that learned the task, not of one CPU's
    # weights): the three strongest levels lie below the three weakest by at least 5 of the 96 images
    assert sum(curve["y"][-3:]) / 3 < sum(curve["y"][:3]) / 3 - 5.0 / len(ctx.x)
    assert out["result"]["summary"]["strength_50"] is None or 0 < out["result"]["summary"]["strength_50"] <= 0.5
    assert out["cost"]["forward_calls"] == 10 and out["cost"]["seconds"] > 0


def test_noise_clamp_and_std_applied():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(64, 3, 16, 16, generator=g) * 0.5 + 0.25  # each image within [0.25, 0.75]
    z = torch.randn(x.shape, generator=g)
    out = add_noise(x, z, 0.3, "image")
    lo, hi = x.flatten(1).min(1).values, x.flatten(1).max(1).values
    assert (out.flatten(1).min(1).values >= lo - 1e-7).all() and (out.flatten(1).max(1).values <= hi + 1e-7).all()
    assert torch.equal(add_noise(x, z, 0.0, "image"), x)
    # unclamped region: mid-grey images with a small std keep the exact noise std
    grey = torch.full((256, 1, 32, 32), 0.5)
    zz = torch.randn(grey.shape, generator=g)
    assert (add_noise(grey, zz, 0.05, "unit") - grey).std().item() == pytest.approx(0.05, rel=0.02)
    with pytest.raises(ValueError, match="clamp"):
        add_noise(x, z, 0.1, "bogus")


def test_noise_seeded(ctx):
    a = GaussianNoise(stds=[0.0, 0.3])(ctx)["result"]["curves"]["accuracy"]["y"]
    b = GaussianNoise(stds=[0.0, 0.3])(ctx)["result"]["curves"]["accuracy"]["y"]
    assert a == b


def test_unknown_parameter_lists_valid_ones():
    with pytest.raises(ValueError, match="valid: .*stds"):
        GaussianNoise(std=[0.1])


# --------------------------------------------------------------------------- transfer FGSM
def test_provide_surrogate_finds_the_record_and_fgsm_falls(trained_run):
    from bench.app.pipeline import provide_surrogate
    c = make_ctx(trained_run)
    before = sorted(p.name for p in trained_run.parent.iterdir())
    c.surrogate = provide_surrogate(c.config, c.device, out=trained_run.parent)
    assert sorted(p.name for p in trained_run.parent.iterdir() if not p.name.startswith(".")) == \
        [b for b in before if not b.startswith(".")]  # found, not retrained
    assert isinstance(c.surrogate, attacks.Surrogate)
    assert c.surrogate.run_dir == str(trained_run) and c.surrogate.seed == 1000
    out = TransferFGSM(n=64)(c)
    res = out["result"]
    eps, y = res["curves"]["accuracy"]["x"], res["curves"]["accuracy"]["y"]
    assert eps[-1] == pytest.approx(0.5)  # Fashion-MNIST's reference eps
    xs, ys = c.x[:64], c.y[:64]
    assert y[0] == pytest.approx(accuracy(c.model, xs, ys), abs=1e-6) and y[0] > 0.4  # a model that learned
    # Here the surrogate is the evaluated model, so each point is a white-box FGSM: it must equal
    # torchattacks' own FGSM on the same model and images (one image of slack for a logit that a different
    # summation order tips over), whatever the CPU's kernels made of the weights.
    import torchattacks
    for e, acc in zip(eps[1:], y[1:]):
        adv = torchattacks.FGSM(c.model, eps=e)(xs, ys)
        assert acc == pytest.approx(accuracy(c.model, adv, ys), abs=1.5 / len(xs)), e
    # and it bites: the smallest eps already costs accuracy, and the curve's minimum is at most half of clean
    # (not monotone in eps: FGSM at large eps can leak the label)
    assert y[1] < y[0] and min(y) <= 0.5 * y[0]
    assert res["details"]["surrogate"]["run_dir"] == "."  # relative to the evaluated record: itself here
    assert res["details"]["surrogate"]["forward_calls"] > 0
    assert "warning" in res["details"]  # surrogate == evaluated model is reported, not hidden
    rev = TransferFGSMReverse(n=64)(c)["result"]
    assert rev["details"]["direction"] == "reverse" and rev["curves"]["accuracy"]["y"][0] == y[0]


def test_transfer_without_surrogate_is_skipped(ctx):
    out = TransferFGSM()(ctx)
    assert out["result"]["summary"] == {} and "surrogate" in out["result"]["details"]["skipped"]


def test_surrogate_only_for_suites_with_a_transfer_test():
    from bench.app.pipeline import suite_needs_surrogate
    assert suite_needs_surrogate("quick") and suite_needs_surrogate("paper")
    assert not suite_needs_surrogate("quick", only=["clean", "gaussian_noise"])
    with pytest.raises(ValueError, match="valid suites"):
        suite_needs_surrogate("no_such_suite")


# --------------------------------------------------------------------------- boundary
def test_boundary_success_and_statistic_matches_independent_computation(ctx):
    import foolbox as fb
    n, reps, steps = 12, 2, 15
    out = Boundary(n=n, repeats=reps, steps=steps, curve_points=3, fold_bn=False)(ctx)
    res = out["result"]
    assert res["summary"]["success_rate"] == 1.0 and res["summary"]["median_sq_l2"] > 0
    # independent: the same images, per-repeat seeded starts and attack seed, straight through foolbox
    # (all repeats in one batched run, as the test does) + numpy/scipy
    idx = select_images(ctx, n)
    x = ctx.x[idx]
    labels = ctx.model(x).argmax(1)
    starts = []
    for r in range(reps):
        s, ok, _ = starting_points(ctx, idx, labels, "random", repeat=r)
        assert ok.all()
        starts.append(s)
    fmodel = fb.PyTorchModel(ctx.model, bounds=(0, 1))
    xs, ls = x.repeat(reps, 1, 1, 1), labels.repeat(reps)
    torch.manual_seed(ctx.seed * 1000)
    adv = fb.attacks.BoundaryAttack(steps=steps).run(fmodel, xs, fb.criteria.Misclassification(ls),
                                                     starting_points=torch.cat(starts))
    assert (ctx.model(adv).argmax(1) != ls).all()
    d = ((adv - xs).detach().numpy().reshape(reps, n, -1) ** 2).mean(2)
    medians = [float(np.median(d[r])) for r in range(reps)]
    assert res["per_repeat"]["median_sq_l2"] == pytest.approx(medians, rel=1e-5)
    assert res["summary"]["median_sq_l2"] == pytest.approx(statistics.mean(medians), rel=1e-5)
    assert res["summary"]["median_sq_l2_sem"] == pytest.approx(stats.sem(medians), rel=1e-4)
    # convergence curve: starts at the blended start, never rises, ends at the reported figure
    conv = res["curves"]["convergence"]
    assert conv["x"] == curve_steps(steps, 3) and conv["x"][-1] == steps
    assert non_increasing(conv["y"], tol=1e-6 * conv["y"][0])  # float32 round-off in foolbox
    assert conv["y"][-1] == pytest.approx(res["summary"]["median_sq_l2"], rel=1e-5)
    assert isinstance(res["details"]["flags"]["still_falling"], bool)


def test_boundary_seeded(ctx):
    a = Boundary(n=8, repeats=1, steps=10)(ctx)["result"]["per_repeat"]
    b = Boundary(n=8, repeats=1, steps=10)(ctx)["result"]["per_repeat"]
    assert a == b
    assert not torch.equal(select_images(ctx, 8), select_images(EvalContext(ctx.model, ctx.x, ctx.y, seed=1), 8))


class OneClass(nn.Module):
    def forward(self, x):
        out = torch.zeros(len(x), 10, device=x.device) + 0 * x.flatten(1)[:, :1]
        out[:, 3] = 1.0
        return out


def test_boundary_never_fails_to_start_on_a_one_class_model(ctx):
    one = EvalContext(model=OneClass(), x=ctx.x[:16], y=ctx.y[:16], progress=False)
    res = Boundary(n=8, repeats=1, steps=5)(one)["result"]
    assert res["summary"]["success_rate"] == 0.0 and res["details"]["starting_points"]["no_start"] == 8


def test_three_channel_model_and_channel0_unit(tmp_path):
    from bench.core.config import build_config
    from bench.core.models import model_from_config
    torch.manual_seed(0)
    cfg = build_config("tiny", dict(color="rgb", out=str(tmp_path)))
    model = model_from_config(cfg, 3, 10).eval()
    g = torch.Generator().manual_seed(1)
    x = torch.rand(24, 3, 32, 32, generator=g)
    c = EvalContext(model=model, x=x, y=torch.randint(0, 10, (24,), generator=g), progress=False)
    assert len(GaussianNoise(stds=[0.0, 0.05])(c)["result"]["curves"]["accuracy"]["y"]) == 2
    res = Boundary(n=6, repeats=1, steps=5, channel="0")(c)["result"]
    assert "channel 0" in res["details"]["unit"]
    a, b = torch.rand(2, 3, 4, 4, generator=g), torch.rand(2, 3, 4, 4, generator=g)
    assert sq_l2_per_pixel(a, b).tolist() == pytest.approx(((a - b) ** 2).flatten(1).mean(1).tolist())
    assert sq_l2_per_pixel(a, b, "0").tolist() == pytest.approx(((a - b)[:, 0] ** 2).flatten(1).mean(1).tolist())


# --------------------------------------------------------------------------- white-box and honesty checks
def test_pgd_8_255_below_clean(ctx):
    res = PGD(n=48, steps=3)(ctx)["result"]
    clean = res["details"]["clean_accuracy"]
    assert res["summary"]["accuracy_eps_8_255"] < clean
    assert set(res["summary"]) == {"accuracy_eps_1_255", "accuracy_eps_2_255", "accuracy_eps_4_255",
                                   "accuracy_eps_8_255"}


def test_min_perturbation_same_images_and_unit(ctx):
    out = MinPerturbation(n=12, steps=30)(ctx)
    res = out["result"]
    assert res["summary"]["success_rate"] == 1.0 and res["summary"]["median_sq_l2"] > 0
    assert res["details"]["unit"].startswith("squared L2 / number of values")


def test_hop_skip_jump_same_images_and_unit(ctx):
    res = HopSkipJump(n=6, steps=2, initial_gradient_eval_steps=10, max_gradient_eval_steps=20)(ctx)["result"]
    assert res["summary"]["success_rate"] == 1.0 and res["summary"]["median_sq_l2"] > 0
    # far below the other-class test images it starts from (foolbox's HopSkipJump returns its last iterate, not
    # the best one, so "never above the blended start" is not a property it has: 2 steps here ended 3% above it)
    idx = select_images(ctx, 6)
    x = ctx.x[idx]
    from attacks.foolbox_adapters import attack_model
    _, _, info = starting_points(ctx, idx, ctx.model(x).argmax(1), "nearest", model=attack_model(ctx))
    assert res["summary"]["median_sq_l2"] < float(np.median(sq_l2_per_pixel(info["anchors"], x).numpy()))


def test_cross_checks_flag_stall_and_still_falling():
    def rec(test, n, med, flags=None):
        return {"protocol": {"test": test, "n": n, "channel": "all"}, "seed": 0, "n_examples": 100,
                "result": {"summary": {"median_sq_l2": med}, "details": {"flags": flags or {}}}}
    falling = {"still_falling": True, "relative_drop_last": 0.2, "last_stretch": [25, 50]}
    flags = attacks.suite.cross_checks({"boundary": rec("boundary", 10, 0.05, falling),
                                        "min_perturbation": rec("min_perturbation", 10, 0.001)})
    assert {f["flag"] for f in flags} == {"stalled", "still_falling"}
    assert attacks.suite.cross_checks({"boundary": rec("boundary", 10, 0.002),
                                       "min_perturbation": rec("min_perturbation", 10, 0.001)}) == []
    # different images: no comparison
    assert attacks.suite.cross_checks({"boundary": rec("boundary", 10, 0.05),
                                       "min_perturbation": rec("min_perturbation", 20, 0.001)}) == []


# --------------------------------------------------------------------------- suite resume / --force, CLI
def test_suites_build_and_name_every_test():
    for name in ("quick", "paper", "full"):
        tests = attacks.build_suite(name)
        assert tests[0].name == "clean"
    assert {"boundary", "min_perturbation", "transfer_fgsm", "gaussian_noise", "pgd", "autoattack",
            "hop_skip_jump", "transfer_fgsm_reverse"} <= {t for t, _ in attacks.SUITES["full"]}
    with pytest.raises(ValueError, match="valid suites"):
        attacks.build_suite("nope")


def test_suite_resumes_and_force_recomputes(trained_run, tmp_path):
    import shutil
    run = tmp_path / trained_run.name
    shutil.copytree(trained_run, run)
    c = make_ctx(run, n=48)
    logs = []
    only = ["clean", "gaussian_noise"]
    first = attacks.evaluate(c, suite="quick", run_dir=run, only=only, log=logs.append)
    m = json.loads((run / "metrics.json").read_text())
    assert m["suite"]["gaussian_noise"]["protocol"]["test"] == "gaussian_noise"
    assert m["suite"]["gaussian_noise"]["cost"]["forward_calls"] == 10
    assert "train" in m  # merged, not overwritten
    logs.clear()
    again = attacks.evaluate(c, suite="quick", run_dir=run, only=only, log=logs.append)
    assert sum("already in the record" in s for s in logs) == 2
    assert again["gaussian_noise"]["cost"] == first["gaussian_noise"]["cost"]
    logs.clear()
    attacks.evaluate(c, suite="quick", run_dir=run, only=["gaussian_noise"], force=True, log=logs.append)
    assert any("gaussian_noise: running" in s for s in logs)
    # a skipped result (no surrogate) is recomputed next time, not kept
    attacks.evaluate(c, suite="quick", run_dir=run, only=["transfer_fgsm"], log=logs.append)
    logs.clear()
    from bench.app.pipeline import provide_surrogate
    c.surrogate = provide_surrogate(c.config, c.device, out=run.parent)
    res = attacks.evaluate(c, suite="quick", run_dir=run, only=["transfer_fgsm"], log=logs.append)
    assert any("transfer_fgsm: running" in s for s in logs) and res["transfer_fgsm"]["result"]["summary"]


def test_cli_eval(trained_run, tmp_path, capsys):
    import shutil
    from bench.cli import main
    run = tmp_path / trained_run.name
    shutil.copytree(trained_run, run)
    assert main(["eval", str(run), "--only", "clean,gaussian_noise", "--n-examples", "32", "--no-progress"]) == 0
    m = json.loads((run / "metrics.json").read_text())
    assert m["suite"]["clean"]["n_examples"] == 32 and "gaussian_noise" in m["suite"]
    assert "gaussian_noise" in capsys.readouterr().out
    assert main(["eval", str(run), "--only", "bogus"]) == 2
    assert "valid:" in capsys.readouterr().err
    assert main(["eval", str(tmp_path / "nothing")]) == 2
    assert "not a RegBench record" in capsys.readouterr().err


def test_cli_robustbench_calls_leaderboard(monkeypatch, tmp_path):
    from bench.cli import main
    calls = {}
    fake = types.ModuleType("bench.app.robustbench")
    fake.eval_robustbench = lambda **kw: calls.update(kw) or tmp_path
    monkeypatch.setitem(sys.modules, "bench.app.robustbench", fake)
    assert main(["eval", "--robustbench", "Standard", "--threat-model", "Linf", "--model-dir", str(tmp_path),
                 "--suite", "quick", "--n-examples", "10", "--device", "cpu", "--out", str(tmp_path)]) == 0
    assert calls["name"] == "Standard" and calls["threat_model"] == "Linf" and calls["n_examples"] == 10
    assert calls["suite"] == "quick" and str(calls["device"]) == "cpu" and calls["model_dir"] == str(tmp_path)
    assert main(["eval", "--robustbench", "Standard"]) == 2
