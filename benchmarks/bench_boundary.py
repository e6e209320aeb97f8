"""Boundary attack: the suite's `boundary` test (foolbox BoundaryAttack, attacks/boundary.py) batched
over 64 images vs one image at a time as the reference code runs it, same images, steps, starting
points and model (reference ResNet18 at width 0.25, i.e. 16 base channels). The starting points
(found once, batched, as the suite does) are shared, so the ratio is that of the attack loop. Goal: >= 4x on
CPU; on a GPU the same benchmark reports the GPU figure."""
from __future__ import annotations

import torch
from conftest import record

N_IMAGES = 64
STEPS = 20  # the reference uses 50; the ratio is per step, 20 keeps the per-image side under a minute
GOAL = 4.0


def test_boundary_batched_vs_per_image(paired, benchmark, small_trained):
    from attacks.base import EvalContext, predict, select_images
    from attacks.boundary import boundary_run, starting_points
    model, x, y = small_trained
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    ctx = EvalContext(model=model.to(dev).eval(), x=x.to(dev), y=y.to(dev), device=dev, seed=0, progress=False)
    idx = select_images(ctx, N_IMAGES)
    xs = ctx.x[idx]
    labels = predict(ctx.model, xs)
    starts, ok, _ = starting_points(ctx, idx, labels)  # shared by both sides, as in the suite
    assert bool(ok.all())
    kw = dict(spherical_step=0.01, source_step=0.01, step_adaptation=1.5)  # the suite's defaults
    out = {}

    def run(batch):
        def go():
            torch.manual_seed(0)
            out[batch] = boundary_run(ctx, xs, labels, starts, STEPS, [STEPS], batch, kw)
        return go

    ratio, f, r = paired(run(N_IMAGES), run(1), rounds=2, warmup=0)
    with torch.no_grad():
        succ = {b: float((predict(ctx.model, out[b][0]) != labels).float().mean()) for b in out}
        dist = {b: float(out[b][1][STEPS].pow(2).median()) for b in out}
    # the same attack ran on both sides: adversarials for (nearly) every image, similar distances
    assert succ[N_IMAGES] > 0.9 and succ[1] > 0.9
    assert 0.5 < dist[N_IMAGES] / dist[1] < 2.0
    record(benchmark, "boundary_batched_speedup", ratio, goal=f">= {GOAL:g}x on CPU", met=ratio >= GOAL,
           fast_s=round(f, 3), reference_s=round(r, 3), images=N_IMAGES, steps=STEPS, width=0.25,
           success_batched=succ[N_IMAGES], success_per_image=succ[1],
           median_sq_l2_batched=dist[N_IMAGES], median_sq_l2_per_image=dist[1],
           implementation="attacks.boundary.boundary_run (foolbox BoundaryAttack), starts shared")
