"""Minimal-perturbation honesty check: the suite's default (`min_perturbation`: DDN with per-image early
stopping, at most 250 steps) vs the 1000-step DDN it replaces (foolbox `DDNAttack(steps=1000)`, every image
every step), same images and model (reference ResNet18 at width 0.25, briefly trained on Fashion-MNIST).
Figures: forward images of the evaluated model (each with a backward) fast / reference (goal <= 0.25) and
the relative difference of the medians of squared L2 per pixel (goal <= 2%); seconds side by side."""
from __future__ import annotations

import torch
from conftest import record

N_IMAGES = 48  # 1000-step DDN on these is the slow side (~minutes on one CPU thread)
GOAL_FORWARDS, GOAL_MEDIAN = 0.25, 0.02


def test_min_perturbation_forwards_vs_ddn_1000(paired, benchmark, small_trained):
    from attacks.base import EvalContext
    from attacks.whitebox import MinPerturbation
    model, x, y = small_trained
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    ctx = EvalContext(model=model.to(dev).eval(), x=x.to(dev), y=y.to(dev), device=dev, seed=0, progress=False)
    out = {}

    def fast():
        out["fast"] = MinPerturbation(n=N_IMAGES)(ctx)  # the suite's defaults

    def reference():
        out["ref"] = MinPerturbation(n=N_IMAGES, attack="ddn_foolbox", steps=1000)(ctx)

    ratio_s, f, r = paired(fast, reference, rounds=1, warmup=0)
    fw = out["fast"]["cost"]["forward_images"] / out["ref"]["cost"]["forward_images"]
    mf = out["fast"]["result"]["summary"]["median_sq_l2"]
    mr = out["ref"]["result"]["summary"]["median_sq_l2"]
    diff = (mf - mr) / mr
    assert out["fast"]["result"]["summary"]["success_rate"] == 1.0
    assert out["ref"]["result"]["summary"]["success_rate"] == 1.0
    record(benchmark, "min_perturbation_forward_ratio", fw, goal=f"<= {GOAL_FORWARDS:g}x of 1000-step DDN",
           met=fw <= GOAL_FORWARDS, unit="x", images=N_IMAGES, width=0.25,
           forward_images_fast=out["fast"]["cost"]["forward_images"],
           forward_images_ddn1000=out["ref"]["cost"]["forward_images"],
           steps_used_mean=out["fast"]["result"]["summary"]["steps_used_mean"],
           steps_used_median=out["fast"]["result"]["summary"]["steps_used_median"],
           speedup_seconds=round(ratio_s, 3), fast_s=round(f, 3), reference_s=round(r, 3),
           fast=repr(MinPerturbation(n=N_IMAGES)), reference="foolbox DDNAttack(steps=1000)")
    record(None, "min_perturbation_median_difference", diff, goal=f"|diff| <= {GOAL_MEDIAN:.0%}",
           met=abs(diff) <= GOAL_MEDIAN, unit="relative", median_sq_l2_fast=mf, median_sq_l2_ddn1000=mr,
           images=N_IMAGES)
