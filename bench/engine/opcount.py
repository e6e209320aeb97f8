"""Counting the aten ops a training step dispatches (a launch-bound step on a GPU costs about one
kernel launch per op, so this count is what the host pays per step whatever the device)."""
from __future__ import annotations

from collections import Counter

import torch
from torch.utils._python_dispatch import TorchDispatchMode


class OpCounter(TorchDispatchMode):
    """Counts every aten op that reaches a kernel (after autograd and autocast), by name."""

    def __init__(self):
        super().__init__()
        self.ops: Counter = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops[str(func.overloadpacket.__name__)] += 1
        return func(*args, **(kwargs or {}))

    @property
    def total(self) -> int:
        return sum(self.ops.values())


def step_ops(trainer, steps: int = 1) -> OpCounter:
    """The aten ops of `steps` optimizer steps of a set-up Trainer (call after `setup_optimizer`
    and `start_loop`; the trainer advances by `steps`)."""
    c = OpCounter()
    with c:
        for _ in range(steps):
            trainer.step()
    return c


def ready_trainer(cfg, data=None):
    """A Trainer with its optimizer and loop state set up, without a record lock or header (for
    counting and benchmarking steps)."""
    from bench.engine.trainer import Trainer
    t = Trainer(cfg, data=data, log=lambda *a, **k: None)
    t.setup_optimizer()
    t.start_loop()
    return t
