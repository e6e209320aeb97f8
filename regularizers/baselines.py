"""The baselines a robustness regularizer must beat under the same step budget (issue 31, DESIGN.md §2):

- `noise_aug`: training on Gaussian-noised images (Safarani et al., NeurIPS 2021, compare their V1
  co-training with exactly this model). The cheapest thing a practitioner tries first: a similarity
  target that does no more than any input noise would is not worth its cost.
- `fgsm_at`: fast adversarial training (Wong, Rice & Kolter, ICLR 2020, "Fast is better than free"):
  FGSM from a uniform random start in the L-inf ball, step 1.25 eps. A real (if weak) specialised
  defence at the cost of about one extra forward and backward per step, so the leaderboard can say
  how far a regularizer is from one.

Both change the step, not the loss: they implement `transform_batch` (regularizers.base), add no
penalty, and train on the same data order, crops and step budget as `none` (their randomness comes from
the step's own generator, seeded by (run seed, step)).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import torch
import torch.nn as nn

from bench.core.data import to_float

from .base import Regularizer, Step
from .registry import register


def dataset_family(dataset: str) -> str:
    """"cifar" (CIFAR-10/100 and image folders: natural colour images) or "mnist" (MNIST, Fashion-MNIST)."""
    return "mnist" if "mnist" in str(dataset).lower() else "cifar"


def _positive(owner: str, name: str, value, upper: float | None = None) -> None:
    if value is not None and not (value > 0 and (upper is None or value <= upper)):
        bound = f" and <= {upper:g}" if upper is not None else ""
        raise ValueError(f"regularizer {owner}: {name} must be > 0{bound}, got {value:g}")


@register("noise_aug")
class NoiseAug(Regularizer):
    """Gaussian noise added to every task image of every step, clamped to [0, 1] (the valid image range).

    Default std per dataset: half the top of the suite's Gaussian-noise range for that dataset
    (attacks/noise.py and DESIGN.md §4, from the reference code: hi 0.1 for CIFAR-10/100, 0.5 for MNIST
    and Fashion-MNIST), i.e. 0.05 for CIFAR (and image folders) and 0.25 for the MNIST family. Why half:
    the model then trains at the middle of the tested range, so the noise test measures levels below and
    above the training noise (robustness at the trained level alone would be trivially high), and clean
    accuracy does not pay for the strongest tested noise; a study that wants the baseline at another
    level sets `std` (recorded in the run's config)."""

    @dataclass
    class Params:
        std: float | None = None  # None: the dataset's default (see the class docstring)

    DEFAULT_STD = {"cifar": 0.05, "mnist": 0.25}

    def __init__(self, **hp):
        super().__init__(**hp)
        _positive(self.name, "std", self.hp.std, 1.0)
        self.std = self.hp.std

    def setup(self, ctx) -> None:
        if self.std is None:
            self.std = self.DEFAULT_STD[dataset_family(ctx.config.dataset)]

    def transform_batch(self, x, y, step: Step):
        std = self.DEFAULT_STD["cifar"] if self.std is None else self.std
        noise = torch.randn(x.shape, generator=step.generator, device=x.device, dtype=x.dtype)
        return (x + std * noise).clamp_(0.0, 1.0)

    def describe(self) -> dict:
        d = super().describe()
        d["setup"] = {"std": self.std, "clamp": "[0, 1]"}
        return d


def fgsm_from_random_start(step: Step, x: torch.Tensor, y: torch.Tensor, eps: float, step_size: float):
    """Wong et al.'s perturbation: delta ~ U[-eps, eps] (from `step.generator`), x + delta clamped to [0, 1],
    one signed-gradient step of `step_size` on the cross-entropy (one forward + backward of `step.model`),
    then delta clamped to the eps ball and x + delta to [0, 1]. Returns the adversarial images (detached)."""
    delta = (torch.rand(x.shape, generator=step.generator, device=x.device, dtype=x.dtype) * 2 - 1) * eps
    delta = (x + delta).clamp(0.0, 1.0) - x
    g = step.model.input_grad(x + delta, y)
    delta = (delta + step_size * g.sign()).clamp(-eps, eps)
    return (x + delta).clamp(0.0, 1.0).detach()


@register("fgsm_at")
class FGSMAT(Regularizer):
    """Fast adversarial training (Wong, Rice & Kolter 2020): each step trains on FGSM images from a uniform
    random start, step `step_factor` x eps (1.25, their value), L-inf ball of radius `eps`, in [0, 1]. The
    attack's forward runs in train mode on the step path, as in their code (the batch statistics are the
    ones the training forward uses); its forward and backward are counted as training compute.

    Default eps per dataset (L-inf, [0, 1] scale): 8/255 for CIFAR and image folders (Wong et al.'s
    CIFAR-10 setting, the standard L-inf threat model of RobustBench); 0.1 for the MNIST family (the usual
    Fashion-MNIST radius: Wong et al.'s MNIST 0.3 erases the garments' texture and is where FGSM training
    is known to overfit catastrophically; for MNIST proper a study sets eps=0.3).

    Catastrophic overfitting (FGSM training's known failure: PGD accuracy collapses to ~0 within an epoch
    while FGSM accuracy stays high) is checked after every epoch on the first `check_n` validation images:
    FGSM and `check_pgd_steps`-step PGD accuracy at eps (torchattacks, float32, eval mode, a fixed seed).
    An epoch is flagged when FGSM accuracy is at least `co_fgsm_min` (the model resists FGSM) and PGD
    accuracy is below `co_ratio` x FGSM accuracy; every epoch's numbers and the flag go in the record's
    training summary."""

    @dataclass
    class Params:
        eps: float | None = None  # None: the dataset's default (see the class docstring)
        step_factor: float = 1.25
        check_n: int = 256
        check_pgd_steps: int = 10
        co_ratio: float = 0.2
        co_fgsm_min: float = 0.3

    DEFAULT_EPS = {"cifar": 8 / 255, "mnist": 0.1}

    def __init__(self, **hp):
        super().__init__(**hp)
        h = self.hp
        _positive(self.name, "eps", h.eps, 1.0)
        _positive(self.name, "step_factor", h.step_factor)
        _positive(self.name, "co_ratio", h.co_ratio, 1.0)
        if h.check_n < 0 or h.check_pgd_steps < 1 or not 0 <= h.co_fgsm_min <= 1:
            raise ValueError(f"regularizer {self.name}: check_n must be >= 0 (0: no check), check_pgd_steps >= 1, "
                             f"co_fgsm_min in [0, 1]; got {h.check_n}, {h.check_pgd_steps}, {h.co_fgsm_min:g}")
        self.eps = h.eps if h.eps is not None else self.DEFAULT_EPS["cifar"]
        # one row per epoch (epoch, clean, fgsm, pgd; NaN until checked): a buffer, so a resumed run keeps them
        self.register_buffer("check_history", torch.zeros(0, 4))

    def setup(self, ctx) -> None:
        if self.hp.eps is None:
            self.eps = self.DEFAULT_EPS[dataset_family(ctx.config.dataset)]
        n = min(int(self.hp.check_n), len(ctx.data.val_x))
        self.check_x, self.check_y = ctx.data.val_x[:n], ctx.data.val_y[:n]
        self.check_seed = int(ctx.seed)
        self.check_history = torch.full((int(ctx.config.epochs), 4), float("nan"))

    def transform_batch(self, x, y, step: Step):
        return fgsm_from_random_start(step, x, y, self.eps, self.hp.step_factor * self.eps)

    # ------------------------------------------------------------------ catastrophic overfitting
    def robustness_check(self, model: nn.Module) -> dict:
        """Clean, FGSM and PGD accuracy at eps on the fixed validation subset: float32, eval mode (train mode
        restored), the global RNG untouched (PGD's random start drawn under a forked, seeded RNG)."""
        import torchattacks
        was = model.training
        model.eval()
        x, y = to_float(self.check_x), self.check_y
        devices = [x.device.index or 0] if x.device.type == "cuda" else []
        try:
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(self.check_seed)
                steps = int(self.hp.check_pgd_steps)
                fgsm = torchattacks.FGSM(model, eps=self.eps)(x, y)
                pgd = torchattacks.PGD(model, eps=self.eps, alpha=2.5 * self.eps / steps, steps=steps,
                                       random_start=True)(x, y)
                with torch.no_grad():
                    acc = [float((model(v).argmax(1) == y).float().mean()) for v in (x, fgsm, pgd)]
        finally:
            model.train(was)
        return {"clean": acc[0], "fgsm": acc[1], "pgd": acc[2]}

    def on_epoch_end(self, model: nn.Module, epoch: int) -> dict | None:
        if len(self.check_x) == 0:
            return None
        t0 = time.perf_counter()
        r = self.robustness_check(model)
        if 1 <= epoch <= len(self.check_history):
            self.check_history[epoch - 1] = torch.tensor([float(epoch), r["clean"], r["fgsm"], r["pgd"]])
        return {"co_check_clean_acc": r["clean"], "co_check_fgsm_acc": r["fgsm"], "co_check_pgd_acc": r["pgd"],
                "co_check_flag": self.overfit(r["fgsm"], r["pgd"]), "co_check_s": time.perf_counter() - t0}

    def overfit(self, fgsm: float, pgd: float) -> bool:
        """The catastrophic-overfitting rule (see the class docstring)."""
        return fgsm >= self.hp.co_fgsm_min and pgd < self.hp.co_ratio * fgsm

    def describe(self) -> dict:
        d = super().describe()
        d["setup"] = {"eps": self.eps, "step_size": self.hp.step_factor * self.eps,
                      "start": "uniform in the eps ball", "check_images": int(len(getattr(self, "check_x", [])))}
        return d

    def describe_training(self) -> dict:
        """Every epoch's check and the verdict: `catastrophic_overfitting` true when any epoch was flagged."""
        rows = [{"epoch": int(e), "clean_acc": c, "fgsm_acc": f, "pgd_acc": p}
                for e, c, f, p in self.check_history.cpu().tolist() if e == e]  # NaN rows: epochs not run
        flagged = [r["epoch"] for r in rows if self.overfit(r["fgsm_acc"], r["pgd_acc"])]
        return {"fgsm_at": {"eps": self.eps, "checks": rows, "check_images": int(len(self.check_x)),
                            "check_pgd_steps": int(self.hp.check_pgd_steps),
                            "catastrophic_overfitting": bool(flagged), "overfit_epochs": flagged,
                            "rule": f"FGSM acc >= {self.hp.co_fgsm_min:g} and "
                                    f"PGD acc < {self.hp.co_ratio:g} x FGSM acc"}}
