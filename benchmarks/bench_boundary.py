"""Boundary attack: the suite's `boundary` test (foolbox BoundaryAttack, attacks/boundary.py) batched
over 64 images vs one image at a time as the reference code runs it, same images, steps, starting
points and model (reference ResNet18 at width 0.25, i.e. 16 base channels). Both timings include
the (shared, batched) starting-point search, so the ratio is the suite-level one. Goal: >= 4x on
CPU; on a GPU the same benchmark reports the GPU figure."""
from __future__ import annotations

import torch
from conftest import record

N_IMAGES = 64
STEPS = 20  # the reference uses 50; the ratio is per step, 20 keeps the per-image side under a minute
GOAL = 4.0


def test_boundary_batched_vs_per_image(paired, benchmark, small_trained):
    from attacks.base import TESTS, EvalContext
    model, x, y = small_trained
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    ctx = EvalContext(model=model.to(dev), x=x.to(dev), y=y.to(dev), device=dev, seed=0, progress=False)
    out = {}

    def run(batch):
        def go():
            out[batch] = TESTS["boundary"](n=N_IMAGES, repeats=1, steps=STEPS, batch=batch, curve_points=2)(ctx)
        return go

    ratio, f, r = paired(run(N_IMAGES), run(1), rounds=2, warmup=0)
    batched, single = out[N_IMAGES], out[1]
    # the same attack ran: every image attacked, and both found adversarials for most of them
    assert batched["result"]["details"]["n_images"] == single["result"]["details"]["n_images"] == N_IMAGES
    assert batched["result"]["summary"]["success_rate"] > 0.5 and single["result"]["summary"]["success_rate"] > 0.5
    assert single["cost"]["forward_calls"] > 10 * batched["cost"]["forward_calls"]
    record(benchmark, "boundary_batched_speedup", ratio, goal=f">= {GOAL:g}x on CPU", met=ratio >= GOAL,
           fast_s=round(f, 3), reference_s=round(r, 3), images=N_IMAGES, steps=STEPS, width=0.25,
           batched_forward_calls=batched["cost"]["forward_calls"],
           per_image_forward_calls=single["cost"]["forward_calls"],
           median_sq_l2_batched=batched["result"]["summary"]["median_sq_l2"],
           median_sq_l2_per_image=single["result"]["summary"]["median_sq_l2"],
           implementation="attacks.boundary (suite test `boundary`, foolbox BoundaryAttack)")
