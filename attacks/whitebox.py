"""Beyond the paper: white-box and second decision-based attacks, and the converged reference.

- `pgd`: torchattacks L-inf PGD at eps 1/255, 2/255, 4/255, 8/255 (accuracy vs true labels).
- `autoattack`: torchattacks' AutoAttack (standard: APGD-CE, APGD-T, FAB-T, Square) at 1/255.
- `hop_skip_jump`: foolbox HopSkipJump (L2), same images, starts and unit as `boundary`.
- `min_perturbation`: a converged white-box minimal-L2 attack (foolbox DDN, or FMN) on the same
  images as `boundary`, in the same unit (median over successes of squared L2 per pixel), so a
  boundary figure can be compared with what a gradient attack finds: a boundary median far above
  it means the decision-based attack stalled, not that the boundary is far.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from .base import (EvalContext, SuiteTest, first_n, predict, progress_bar, register_test, select_images,
                   sq_l2_per_pixel)
from .boundary import foolbox_model, starting_points


def _eps_default():
    return [1 / 255, 2 / 255, 4 / 255, 8 / 255]


def _label(eps: float) -> str:
    return f"{eps * 255:g}_255"


@register_test("pgd")
class PGD(SuiteTest):
    version = "1"

    @dataclass
    class Params:
        eps: list = field(default_factory=_eps_default)
        steps: int = 10
        alpha_factor: float = 2.5  # step size = alpha_factor * eps / steps (Madry et al.)
        random_start: bool = True
        n: int | None = 1000
        batch: int = 250

    def run(self, ctx: EvalContext) -> dict:
        import torchattacks
        p = self.params
        x, y = first_n(ctx, p.n)
        correct = torch.zeros(len(p.eps), dtype=torch.long)
        nb = (len(x) + p.batch - 1) // p.batch
        with progress_bar(ctx, nb * len(p.eps), "pgd") as bar:
            for i in range(0, len(x), p.batch):
                xb, yb = x[i:i + p.batch], y[i:i + p.batch]
                for k, eps in enumerate(p.eps):
                    atk = torchattacks.PGD(ctx.model, eps=float(eps), alpha=p.alpha_factor * float(eps) / p.steps,
                                           steps=p.steps, random_start=p.random_start)
                    adv = atk(xb, yb)
                    with torch.no_grad():
                        correct[k] += int((ctx.model(adv).argmax(1) == yb).sum())
                    bar.update(1)
        acc = (correct.double() / max(len(x), 1)).tolist()
        summary = {f"accuracy_eps_{_label(e)}": a for e, a in zip(p.eps, acc)}
        return {"summary": summary,
                "curves": {"accuracy": {"x": [float(e) for e in p.eps], "y": acc,
                                        "x_label": "PGD eps (L-inf, [0,1] scale)", "y_label": "accuracy"}},
                "details": {"n_images": len(x), "clean_accuracy": float((predict(ctx.model, x) == y).float().mean())}}


@register_test("autoattack")
class AutoAttack(SuiteTest):
    version = "1"

    @dataclass
    class Params:
        eps: float = 1 / 255
        version: str = "standard"
        norm: str = "Linf"
        n: int | None = 1000
        batch: int = 250

    def run(self, ctx: EvalContext) -> dict:
        import torchattacks
        p = self.params
        if p.version not in ("standard", "plus", "rand"):
            raise ValueError(f"autoattack: version must be standard, plus or rand, got {p.version!r}")
        x, y = first_n(ctx, p.n)
        correct = 0
        atk = torchattacks.AutoAttack(ctx.model, norm=p.norm, eps=float(p.eps), version=p.version,
                                      n_classes=ctx.num_classes, seed=int(ctx.seed))
        with progress_bar(ctx, (len(x) + p.batch - 1) // p.batch, "autoattack") as bar:
            for i in range(0, len(x), p.batch):
                xb, yb = x[i:i + p.batch], y[i:i + p.batch]
                adv = atk(xb, yb)
                with torch.no_grad():
                    correct += int((ctx.model(adv).argmax(1) == yb).sum())
                bar.update(1)
        return {"summary": {f"accuracy_eps_{_label(p.eps)}": correct / max(len(x), 1)},
                "details": {"n_images": len(x), "attacks": "APGD-CE, APGD-T, FAB-T, Square (torchattacks)"
                            if p.version == "standard" else p.version}}


def _distance_result(ctx, x, labels, adv, ok, channel, extra: dict) -> dict:
    with torch.no_grad():
        success = (predict(ctx.model, adv) != labels) & ok
    d = sq_l2_per_pixel(adv, x, channel)[success].cpu().numpy()
    med = float(np.median(d)) if len(d) else float("nan")
    return {"summary": {"median_sq_l2": med, "success_rate": float(success.float().mean())},
            "details": {"n_images": len(x), "image_selection_seed": int(ctx.seed),
                        "unit": "squared L2 / number of values" + (" (channel 0)" if channel == "0" else
                                                                     " (all channels)"), **extra}}


@register_test("hop_skip_jump")
class HopSkipJump(SuiteTest):
    version = "1"

    @dataclass
    class Params:
        n: int = 1000
        steps: int = 64
        initial_gradient_eval_steps: int = 100
        max_gradient_eval_steps: int = 10000
        channel: str = "all"
        start: str = "nearest"
        batch: int = 1000

    def run(self, ctx: EvalContext) -> dict:
        import foolbox as fb
        p = self.params
        idx = select_images(ctx, p.n)
        x = ctx.x[idx]
        labels = predict(ctx.model, x)
        starts, ok, info = starting_points(ctx, idx, labels, p.start)
        adv = x.clone()
        attack = fb.attacks.HopSkipJumpAttack(steps=p.steps, initial_gradient_eval_steps=p.initial_gradient_eval_steps,
                                              max_gradient_eval_steps=p.max_gradient_eval_steps)
        fmodel = foolbox_model(ctx)
        sel = torch.nonzero(ok).flatten()
        with progress_bar(ctx, (len(sel) + p.batch - 1) // p.batch, "hop_skip_jump") as bar:
            for i in range(0, len(sel), p.batch):
                s = sel[i:i + p.batch]
                adv[s] = attack.run(fmodel, x[s], fb.criteria.Misclassification(labels[s]),
                                    starting_points=starts[s]).detach()
                bar.update(1)
        return _distance_result(ctx, x, labels, adv, ok, p.channel, {"steps": p.steps, "starting_points": info})


@register_test("min_perturbation")
class MinPerturbation(SuiteTest):
    version = "1"

    @dataclass
    class Params:
        n: int = 1000  # must equal boundary's n to attack the same images
        attack: str = "ddn"  # ddn | fmn (foolbox)
        steps: int = 1000
        channel: str = "all"
        batch: int = 500

    def run(self, ctx: EvalContext) -> dict:
        import foolbox as fb
        p = self.params
        if p.attack == "ddn":
            attack = fb.attacks.DDNAttack(steps=p.steps)
        elif p.attack == "fmn":
            attack = fb.attacks.L2FMNAttack(steps=p.steps)
        else:
            raise ValueError(f"min_perturbation: attack must be 'ddn' or 'fmn', got {p.attack!r}")
        idx = select_images(ctx, p.n)
        x = ctx.x[idx]
        labels = predict(ctx.model, x)
        fmodel = foolbox_model(ctx)
        adv = torch.empty_like(x)
        with progress_bar(ctx, (len(x) + p.batch - 1) // p.batch, "min_perturbation") as bar:
            for i in range(0, len(x), p.batch):
                xb, lb = x[i:i + p.batch], labels[i:i + p.batch]
                adv[i:i + p.batch] = attack.run(fmodel, xb, fb.criteria.Misclassification(lb)).detach()
                bar.update(1)
        ok = torch.ones(len(x), dtype=torch.bool, device=x.device)
        return _distance_result(ctx, x, labels, adv, ok, p.channel, {"attack": p.attack, "steps": p.steps})
