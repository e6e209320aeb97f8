"""transfer_fgsm: accuracy under L-inf FGSM perturbations computed on a *surrogate* model.

Forward direction (the paper's protocol): the surrogate is an unregularized model of the same
architecture, dataset and colour trained with a different seed (`RunConfig.surrogate_seed`); the
application provides it (`bench.app.pipeline.provide_surrogate` finds or trains it; the suite
never trains) as `EvalContext.surrogate`, and this test records which one it used.
`transfer_fgsm_reverse` swaps the roles (gradients from the evaluated model, accuracy of the
unregularized one): if a regularizer's gain in the forward direction is only dissimilarity to the
surrogate, the reverse direction shows a similar "gain", which is a warning sign.

The attack is torchattacks' FGSM; eps = linspace(0, hi, 10) on [0, 1] with the reference code's hi per
task: CIFAR-10 0.02, CIFAR-100 0.005, MNIST / Fashion-MNIST 0.5 (resolved into the record's protocol).
Labels are the true labels. Without a surrogate the test reports 'skipped' (and is recomputed
the next time the suite runs with one).
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from .base import CountingModel, EvalContext, SuiteTest, dataset_of, first_n, progress_bar, register_test, skipped
from .summaries import curve_summary


def fgsm_sign(source, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """sign of the gradient of the cross-entropy of `source` at `x` (what torchattacks' FGSM steps along)."""
    xg = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        loss = torch.nn.functional.cross_entropy(source(xg), y)
        grad, = torch.autograd.grad(loss, xg)
    return grad.sign()


def default_eps(dataset: str | None) -> list:
    """The reference's FGSM strengths for a dataset (CIFAR-10's for unknown datasets)."""
    from .noise import MNIST_FAMILY
    ds = (dataset or "").lower()
    top = 0.005 if ds.startswith("cifar100") else 0.5 if ds in MNIST_FAMILY else 0.02
    return [round(float(e), 6) for e in torch.linspace(0, top, 10)]


@register_test("transfer_fgsm")
class TransferFGSM(SuiteTest):
    version = "2"  # 2: per-dataset reference strengths; clean-separating summaries

    @dataclass
    class Params:
        eps: list | None = None  # None: linspace(0, hi, 10), hi: CIFAR-10 0.02, CIFAR-100 0.005, MNIST family 0.5
        direction: str = "forward"  # forward: surrogate -> evaluated model | reverse: evaluated -> surrogate
        n: int | None = None  # first n test images (None: all)
        batch: int = 250

    def resolve_params(self, dataset):
        if self.params.eps is not None:
            return self.params
        return dataclasses.replace(self.params, eps=default_eps(dataset))

    def run(self, ctx: EvalContext) -> dict:
        import torchattacks
        p = self.resolve_params(dataset_of(ctx))
        if p.direction not in ("forward", "reverse"):
            raise ValueError(f"{self.name}: direction must be 'forward' or 'reverse', got {p.direction!r}")
        if ctx.surrogate is None:
            return skipped("no surrogate model: evaluate a trained record (bench eval RUN_DIR) so the harness "
                           "can train or find the unregularized surrogate")
        surrogate = CountingModel(ctx.surrogate.model).to(ctx.device).eval()
        if p.direction == "forward":
            source, target = surrogate, ctx.model
        else:
            source, target = ctx.model, surrogate
        eps_list = [float(e) for e in p.eps]
        x, y = first_n(ctx, p.n)
        correct = torch.zeros(len(eps_list), dtype=torch.long)
        nb = (len(x) + p.batch - 1) // p.batch
        with progress_bar(ctx, nb * len(eps_list), self.name) as bar:
            for i in range(0, len(x), p.batch):
                xb, yb = x[i:i + p.batch], y[i:i + p.batch]
                # FGSM's gradient sign does not depend on eps: one gradient of the source serves every eps
                # (torchattacks.FGSM(source, eps)(xb, yb) == clamp(xb + eps * sign, 0, 1) for each eps)
                sign = fgsm_sign(source, xb, yb)
                for k, eps in enumerate(eps_list):
                    adv = (xb + float(eps) * sign).clamp(0.0, 1.0).detach()
                    with torch.no_grad():
                        correct[k] += int((target(adv).argmax(1) == yb).sum())
                    bar.update(1)
        acc = (correct.double() / max(len(x), 1)).tolist()
        sdir = ctx.surrogate.run_dir
        # the surrogate's folder relative to the evaluated record's (no machine path in a record)
        rel = (os.path.relpath(Path(sdir).resolve(), Path(ctx.run_dir).resolve()) if sdir and ctx.run_dir
               else (Path(sdir).name if sdir else None))
        info = {"run_dir": rel, "run_dir_relative_to": "the evaluated record's folder", "seed": ctx.surrogate.seed,
                "hash": Path(sdir).name.rsplit("-", 1)[-1] if sdir else None,
                "forward_calls": surrogate.calls, "forward_images": surrogate.images}
        details = {"n_images": len(x), "direction": p.direction, "eps": [float(e) for e in eps_list],
                   "surrogate": info,
                   "attacker": "surrogate" if p.direction == "forward" else "evaluated model",
                   "target": "evaluated model" if p.direction == "forward" else "surrogate"}
        if sdir and ctx.run_dir and Path(sdir).resolve() == Path(ctx.run_dir).resolve():
            details["warning"] = "the surrogate is the evaluated model itself (a white-box FGSM, not a transfer)"
        return {"summary": curve_summary(eps_list, acc),
                "curves": {"accuracy": {"x": [float(e) for e in eps_list], "y": acc,
                                        "x_label": "FGSM eps (L-inf, [0,1] scale)", "y_label": "accuracy"}},
                "details": details}


@register_test("transfer_fgsm_reverse")
class TransferFGSMReverse(TransferFGSM):
    """The reverse direction: FGSM from the evaluated model, accuracy of the unregularized surrogate."""
    version = "2"

    @dataclass
    class Params:
        eps: list | None = None
        direction: str = "reverse"
        n: int | None = None
        batch: int = 250


def _extended(cls, name: str):
    """`cls` over a range a study fixes from its pilot (`eps` required): the papers' CIFAR eps (<= 0.02) leaves a
    CPU-scale model at 61-71% of clean, so no "at half clean" is measured; see attacks.noise's extended test."""

    class Extended(cls):
        version = "1"
        __doc__ = f"`{cls.__name__}` over a study's extended eps range (`eps` required). " + (cls.__doc__ or "")

        def resolve_params(self, dataset):
            if not self.params.eps:
                raise ValueError(f"{name} needs its eps (the study's extended range), e.g. [0.0, 0.02, 0.05]")
            return self.params
    Extended.__name__ = Extended.__qualname__ = cls.__name__ + "Extended"
    return register_test(name)(Extended)


TransferFGSMExtended = _extended(TransferFGSM, "transfer_fgsm_extended")
TransferFGSMReverseExtended = _extended(TransferFGSMReverse, "transfer_fgsm_reverse_extended")
