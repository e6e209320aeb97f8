"""Each epoch's plan: its seeded generator, data order and (drawing ahead) every random draw of its steps, and
the step's inputs sliced from it.

Kept apart from `bench.engine.trainer` because this is what makes a run reproducible and resumable: the same
numbers whether drawn ahead or step by step, and a resumed run redraws its epoch from the epoch's seed.
`EpochPlan` is a mixin of `Trainer` (it reads the trainer's cfg, data, regularizer and loop state).
"""
from __future__ import annotations

import math

import torch

from bench.core import data as bdata
from bench.core.config import RunConfig
from bench.core.device import to_device


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    return torch.Generator().manual_seed(1_000_003 * (seed + 1) + 7919 * epoch)


def steps_per_epoch(cfg: RunConfig, n_train: int) -> int:
    return cfg.steps_per_epoch or math.ceil(n_train / cfg.batch_size)


def augment(cfg: RunConfig, x_uint8: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    x = bdata.to_float(x_uint8)
    if cfg.resolved_augment() == "crop_flip":
        x = bdata.batch_crop_flip(x, pad=4, flip=True, generator=gen)
    return x



class EpochPlan:
    """The epoch plan of a `Trainer` (uses its `cfg`, `data`, `reg`, `device`, `spe`, `n_train`, `state`,
    `ahead`, `gen`, `perm` and `plan`)."""

    def _plan(self, epoch: int, perm: torch.Tensor, draws: dict | None = None, reg: dict | None = None) -> dict:
        """What the epoch's steps slice, on the device: the data order and (drawing ahead) the task batch's
        crop draws and the regularizer's draws, each stacked over the epoch's steps."""
        dev = self.device
        return {"epoch": epoch, "perm": to_device(perm, dev),
                "draws": {k: to_device(v, dev) for k, v in (draws or {}).items()},
                "reg": {k: to_device(v, dev) for k, v in (reg or {}).items()}}

    def _draw_epoch(self, epoch: int):
        """The epoch's generator, data order and plan. Drawing ahead, the plan holds every draw of its steps,
        made now in the order a step-by-step loop makes them (per step: crop offsets, flips, then the
        regularizer's draw) and copied to the device at once. A resumed run redraws its epoch from the epoch's
        seed, so it continues with the same numbers; drawing ahead or step by step gives the same numbers."""
        cfg = self.cfg
        gen = epoch_generator(cfg.seed, epoch)
        reps = math.ceil(self.spe * cfg.batch_size / self.n_train)
        perm = torch.cat([torch.randperm(self.n_train, generator=gen) for _ in range(reps)])
        if not self.ahead:
            return gen, perm, self._plan(epoch, perm)
        crop = cfg.resolved_augment() == "crop_flip"
        cols: dict[str, list] = {"oy": [], "ox": [], "f": []}
        regd: list[dict] = []
        for s in range(self.spe):
            if crop:
                for k, v in zip(("oy", "ox", "f"), bdata.draw_crop_flip(cfg.batch_size, pad=4, flip=True,
                                                                      generator=gen)):
                    cols[k].append(v)
            if self.reg.active:
                regd.append(self.reg.draw(epoch * self.spe + s, gen))
        reg = {k: torch.stack([d[k] for d in regd]) for k in regd[0]} if regd else None
        return gen, perm, self._plan(epoch, perm, {k: torch.stack(v) for k, v in cols.items() if v}, reg)

    def inputs(self):
        """This step's task images (augmented on the device), labels and the regularizer's batch (None when it
        adds no images), in the epoch's seeded order. Drawing ahead (the built-in regularizers, and none), the
        step only slices the epoch's draws already on the device; a plugin regularizer without `draw` gets the
        epoch's generator step by step, as before."""
        cfg, state, reg = self.cfg, self.state, self.reg
        epoch, in_epoch = divmod(state["step"], self.spe)
        if self.ahead:
            if self.plan is None or self.plan["epoch"] != epoch:
                self.gen, self.perm, self.plan = self._draw_epoch(epoch)
        elif in_epoch == 0 or self.perm is None:
            self.gen, self.perm, self.plan = self._draw_epoch(epoch)
        elif self.plan is None:  # resumed mid-epoch step by step: the checkpoint's order and generator go on
            self.plan = self._plan(epoch, self.perm)
        plan = self.plan
        idx = plan["perm"][in_epoch * cfg.batch_size:(in_epoch + 1) * cfg.batch_size]
        y = self.data.train_y[idx]
        if not self.ahead:
            x = augment(cfg, self.data.train_x[idx], self.gen)
            rb = reg.sample(state["step"], self.gen) if reg.active else None
        else:
            x = bdata.to_float(self.data.train_x[idx])
            d = plan["draws"]
            if d:
                x = bdata.apply_crop_flip(x, d["oy"][in_epoch], d["ox"][in_epoch], d["f"][in_epoch], pad=4)
            rb = reg.sample(state["step"], drawn={k: v[in_epoch] for k, v in plan["reg"].items()}) \
                if reg.active else None
        return x, y, (None if rb is None else rb.to(self.device))
