"""Evaluation that costs less than training (issue 16) and independent boundary repeats (issue 11):
early-stopping minimal-L2 attacks agree with a run without early stopping, boundary starting points stay
adversarial at any attack batch size, repeats start from different seeded points, the suite shares its
clean predictions, and `bench estimate`'s per-device calibration is measured once and then reused."""
import numpy as np
import pytest
import torch

import attacks
from attacks.base import CountingModel, EvalContext, clean_predictions, predict, select_images
from attacks.boundary import Boundary, boundary_run
from attacks.boundary_starts import starting_points
from attacks.whitebox import MinPerturbation, minimal_l2


@pytest.fixture(autouse=True)
def _one_thread():
    # small tensors on a shared 2-core machine: an oversubscribed pool is many times slower
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def ctx(small_trained_run):
    return attacks.context_for_run(small_trained_run, n_examples=160, seed=0, progress=False)


# --------------------------------------------------------------------------- early stopping
@pytest.mark.parametrize("method", ["fmn", "ddn"])
def test_early_stopping_gives_the_median_of_a_full_run_with_fewer_steps(ctx, method):
    idx = select_images(ctx, 16)
    x = ctx.x[idx]
    labels = predict(ctx.model, x)
    steps = 80
    full, used_full, fwd_full = minimal_l2(ctx.model, x, labels, method, steps, patience=None)
    early, used_early, fwd_early = minimal_l2(ctx.model, x, labels, method, steps, patience=25, tol=1e-3)
    assert bool((used_full == steps).all())  # no early stopping: every image runs every step
    assert float(used_early.double().mean()) < steps and fwd_early < fwd_full
    with torch.no_grad():  # both found adversarials for every image, checked at another batch size
        for adv in (full, early):
            assert bool((predict(ctx.model, adv, batch=7) != labels).all())
    d_full = ((full - x) ** 2).flatten(1).mean(1).numpy()
    d_early = ((early - x) ** 2).flatten(1).mean(1).numpy()
    assert np.median(d_early) == pytest.approx(np.median(d_full), rel=0.05)


def test_min_perturbation_records_steps_used_per_image(ctx):
    out = MinPerturbation(n=16, steps=80, patience=10)(ctx)
    res = out["result"]
    used = res["details"]["steps_used"]
    assert len(used) == 16 and all(1 <= u <= 80 for u in used)
    assert res["summary"]["steps_used_mean"] == pytest.approx(float(np.mean(used)))
    assert res["summary"]["steps_used_median"] == pytest.approx(float(np.median(used)))
    # every step of every image is one forward (with a backward) of the evaluated model, counted
    assert out["cost"]["forward_images"] >= sum(used)
    assert res["summary"]["success_rate"] == 1.0 and out["protocol"]["attack"] == "ddn"


# --------------------------------------------------------------------------- boundary starts and repeats
def test_boundary_starts_stay_adversarial_at_batch_1_and_64(ctx):
    import eagerpy as ep
    import foolbox as fb
    from foolbox.attacks.base import get_is_adversarial
    idx = select_images(ctx, 64)
    x = ctx.x[idx]
    labels = clean_predictions(ctx)[idx]
    starts, ok, info = starting_points(ctx, idx, labels, "nearest", check_batch=64)
    assert bool(ok.all()) and info["margin"] > 0
    fmodel = fb.PyTorchModel(ctx.model, bounds=(0, 1))
    batch64 = get_is_adversarial(fb.criteria.Misclassification(labels), fmodel)(ep.astensor(starts)).raw
    assert bool(batch64.all())
    for i in range(64):  # one image at a time, as the reference runs the attack
        one = get_is_adversarial(fb.criteria.Misclassification(labels[i:i + 1]), fmodel)
        assert bool(one(ep.astensor(starts[i:i + 1])).raw.all()), f"start {i} not adversarial at batch 1"
    # the attack itself runs at both batch sizes on the same starts without refusing one
    kw = dict(spherical_step=0.01, source_step=0.01, step_adaptation=1.5)
    for batch in (1, 64):
        sub = slice(0, 6) if batch == 1 else slice(None)
        info_run = {}
        adv, _ = boundary_run(ctx, x[sub], labels[sub], starts[sub], 2, [2], batch, kw, info=info_run)
        assert info_run["dropped"] == 0
        assert bool((predict(ctx.model, adv) != labels[sub]).all())


def test_boundary_repeats_start_from_different_points_and_differ(ctx):
    idx = select_images(ctx, 8)
    labels = clean_predictions(ctx)[idx]
    s0, _, _ = starting_points(ctx, idx, labels, "random", repeat=0)
    s1, _, _ = starting_points(ctx, idx, labels, "random", repeat=1)
    s0b, _, _ = starting_points(ctx, idx, labels, "random", repeat=0)
    assert torch.equal(s0, s0b) and not torch.equal(s0, s1)  # seeded by (seed, repeat)
    res = Boundary(n=8, repeats=3, steps=10, curve_points=2)(ctx)["result"]
    med = res["per_repeat"]["median_sq_l2"]
    assert len(med) == 3 and len(set(med)) == 3  # independent repeats: the SEM over them is not 0
    assert res["summary"]["median_sq_l2_sem"] > 0
    assert res["details"]["starting_points"]["seeded_by"] == "(suite seed, repeat)"


# --------------------------------------------------------------------------- shared work
def test_suite_computes_clean_predictions_once(ctx):
    x, y = ctx.x[:64], ctx.y[:64]
    alone = EvalContext(model=ctx.model, x=x, y=y, progress=False)
    b_alone = Boundary(n=4, repeats=1, steps=2)(alone)
    shared_ctx = EvalContext(model=ctx.model, x=x, y=y, progress=False)
    clean = attacks.TESTS["clean"]()(shared_ctx)
    assert clean["cost"]["forward_images"] == 64
    b_after = Boundary(n=4, repeats=1, steps=2)(shared_ctx)
    # the boundary test's pool of other-class images needs the clean predictions of all 64 images:
    # after `clean` they are reused, so it spends exactly those 64 forward images less, same result
    assert b_alone["cost"]["forward_images"] - b_after["cost"]["forward_images"] == 64
    assert b_alone["result"]["per_repeat"] == b_after["result"]["per_repeat"]
    # another model, or other images, is not served from the cache
    counted = CountingModel(ctx.model)
    other = EvalContext(model=torch.nn.Sequential(counted), x=x, y=y, progress=False, extras=shared_ctx.extras)
    assert torch.equal(clean_predictions(other), clean_predictions(shared_ctx)) and counted.images == 64
    fewer = EvalContext(model=ctx.model, x=x[:32], y=y[:32], progress=False, extras=shared_ctx.extras)
    assert len(clean_predictions(fewer)) == 32


# --------------------------------------------------------------------------- estimate calibration
def test_estimate_calibration_is_measured_once_and_reused(tmp_path, monkeypatch):
    from bench.app import estimate as est
    from bench.core.config import build_config
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    attacks.register_suite("eval_cost_test", [("clean", {}), ("gaussian_noise", {"n": 16, "stds": [0.0, 0.1]})])
    try:
        calls = []
        real = est.measure_step_seconds

        def counting(*a, **k):
            calls.append(1)
            return real(*a, **k)

        monkeypatch.setattr(est, "measure_step_seconds", counting)
        cfg = build_config("tiny", {"out": str(tmp_path / "runs"), "progress": False, "suite": "eval_cost_test",
                                    "n_train": 256})
        logs = []
        first_cal = est.Calibration(log=logs.append)
        first = est.estimate_run_seconds(cfg, calibration=first_cal, measure_steps=2, warmup_steps=1, suite_images=8)
        assert first > 0 and len(calls) == 1 and first_cal.measured
        assert first_cal.path == tmp_path / "cache" / "regbench" / "calibration.json" and first_cal.path.is_file()
        assert any("calibrating" in m for m in logs)  # progress while it measures
        second_cal = est.Calibration(log=logs.append)
        second = est.estimate_run_seconds(cfg, calibration=second_cal, measure_steps=2, warmup_steps=1,
                                          suite_images=8)
        assert second == first and len(calls) == 1 and second_cal.measured == []  # nothing measured again
        fresh = est.Calibration(refresh=True, log=logs.append)
        est.estimate_run_seconds(cfg, calibration=fresh, measure_steps=2, warmup_steps=1, suite_images=8)
        assert len(calls) == 2 and fresh.measured  # --recalibrate measures again
    finally:
        attacks.SUITES.unregister("eval_cost_test")
