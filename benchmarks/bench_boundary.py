"""Boundary attack: the suite's `boundary` path (foolbox BoundaryAttack via attacks/boundary.py: batched
over 64 images in inference mode, against the evaluated model with batch norm folded into its convolutions,
starts re-checked on each chunk) vs one image at a time against the plain model as the reference code runs
it; same images, steps, starting points and model (reference ResNet18 at width 0.25, i.e. 16 base
channels, briefly trained). A third side, batched against the plain model, separates batching from folding.
The starting points (found once, as the suite does) are shared, so the ratio is that of the attack loop.
Goal: >= 4x on CPU; on a GPU the same benchmark reports the GPU figure."""
from __future__ import annotations

import time

import torch
from conftest import record

N_IMAGES = 64
STEPS = 20  # the reference uses 50; the ratio is per step, 20 keeps the per-image side under a minute
GOAL = 4.0


def test_boundary_batched_vs_per_image(paired, benchmark, small_trained):
    from attacks.base import EvalContext, predict, select_images
    from attacks.boundary import boundary_run
    from attacks.boundary_starts import starting_points
    from attacks.foolbox_adapters import attack_model
    model, x, y = small_trained
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    ctx = EvalContext(model=model.to(dev).eval(), x=x.to(dev), y=y.to(dev), device=dev, seed=0, progress=False)
    idx = select_images(ctx, N_IMAGES)
    xs = ctx.x[idx]
    labels = predict(ctx.model, xs)
    fast_model = attack_model(ctx)
    starts, ok, _ = starting_points(ctx, idx, labels, "nearest", model=fast_model)  # shared by every side
    assert bool(ok.all())
    kw = dict(spherical_step=0.01, source_step=0.01, step_adaptation=1.5)  # the suite's defaults
    out, info = {}, {}

    def run(batch, m, tag):
        def go():
            torch.manual_seed(0)
            info[tag] = {}
            out[tag] = boundary_run(ctx, xs, labels, starts, STEPS, [STEPS], batch, kw, model=m, info=info[tag])
        return go

    ratio, f, r = paired(run(N_IMAGES, fast_model, "suite"), run(1, None, "per_image"), rounds=2, warmup=0)
    t0 = time.perf_counter()
    run(N_IMAGES, None, "batched_plain")()
    plain_s = time.perf_counter() - t0
    with torch.no_grad():
        succ = {b: float((predict(ctx.model, out[b][0]) != labels).float().mean()) for b in out}
        dist = {b: float(out[b][1][STEPS].pow(2).median()) for b in out}
    # the same attack ran on every side: adversarials for (nearly) every image, similar distances, and no
    # start refused at batch 1 (the re-check keeps them adversarial at any batch size)
    assert succ["suite"] > 0.9 and succ["per_image"] > 0.9
    assert 0.5 < dist["suite"] / dist["per_image"] < 2.0
    assert info["per_image"]["dropped"] == 0 and info["suite"]["dropped"] == 0
    record(benchmark, "boundary_batched_speedup", ratio, goal=f">= {GOAL:g}x on CPU", met=ratio >= GOAL,
           fast_s=round(f, 3), reference_s=round(r, 3), batched_plain_model_s=round(plain_s, 3),
           batching_only_speedup=round(r / plain_s, 3), images=N_IMAGES, steps=STEPS, width=0.25,
           success_batched=succ["suite"], success_per_image=succ["per_image"],
           median_sq_l2_batched=dist["suite"], median_sq_l2_per_image=dist["per_image"],
           starts_stepped_back_per_image=info["per_image"].get("stepped_back", 0),
           implementation="attacks.boundary.boundary_run (foolbox BoundaryAttack) batched, inference mode, "
                          "BN-folded model vs per image on the plain model, starts shared")
