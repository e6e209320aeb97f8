"""What the step loop watches without slowing it: the device seconds of the train steps (`DeviceTimer`) and the
first non-finite loss term (`FiniteGuard`, raising `NonFiniteLoss`).

Kept apart from `bench.engine.trainer`: both avoid a host sync inside the step on CUDA, and that bookkeeping
is independent of what the step computes.
"""
from __future__ import annotations

import time

import torch


class NonFiniteLoss(ValueError):
    """The loss (cross-entropy or the regularizer's penalty) became NaN or infinite: the run stops
    and its record is marked failed."""

    def __init__(self, message: str, step: int, term: str):
        super().__init__(message)
        self.step, self.term = step, term



class DeviceTimer:
    """Device seconds of the train steps. CUDA: a pair of events per step, summed only when
    `seconds()` is read (at log points), so timing adds no host sync inside the step. CPU: the
    host clock around each step (the step is synchronous there)."""

    def __init__(self, device: torch.device, start_s: float = 0.0):
        self.cuda = device.type == "cuda"
        self.total = float(start_s)
        self.pending: list = []
        self._t0 = 0.0

    def start(self):
        if self.cuda:
            ev = torch.cuda.Event(enable_timing=True)
            ev.record()
            self.pending.append([ev, None])
        else:
            self._t0 = time.perf_counter()

    def stop(self):
        if self.cuda:
            ev = torch.cuda.Event(enable_timing=True)
            ev.record()
            self.pending[-1][1] = ev
        else:
            self.total += time.perf_counter() - self._t0

    def seconds(self) -> float:
        if self.pending:
            self.pending[-1][1].synchronize()
            self.total += sum(a.elapsed_time(b) for a, b in self.pending) / 1000.0
            self.pending = []
        return self.total


class FiniteGuard:
    """Stops training at the first non-finite loss term. CPU: checked every step before the
    backward pass (the weights stay finite). CUDA: flags kept on the device and read at log points
    and before every checkpoint (no host sync in the step); the step is still named exactly."""

    def __init__(self, device: torch.device, run_name: str):
        self.eager = device.type != "cuda"
        self.run_name = run_name
        self.code = torch.zeros((), dtype=torch.int64, device=device)  # 0 ok, 1 CE, 2 penalty
        self.step = torch.zeros((), dtype=torch.int64, device=device)

    def _raise(self, code: int, step: int, value=None):
        term = "cross-entropy (CE)" if code == 1 else "regularizer penalty"
        v = f" ({value})" if value is not None else ""
        raise NonFiniteLoss(f"training stopped: non-finite {term}{v} at step {step} of {self.run_name}; the record "
                            "is marked failed (lower lr or alpha, or check the regularizer's targets)",
                            step, "ce" if code == 1 else "penalty")

    def update(self, step: int, ce: torch.Tensor, pen: torch.Tensor | None):
        if self.eager:
            if not bool(torch.isfinite(ce)):
                self._raise(1, step, float(ce))
            if pen is not None and not bool(torch.isfinite(pen)):
                self._raise(2, step, float(pen))
            return
        bad = torch.where(~torch.isfinite(ce.detach()), 1, 0)
        if pen is not None:
            bad = torch.where((bad == 0) & ~torch.isfinite(pen.detach()), 2, bad)
        first = (self.code == 0) & (bad > 0)
        self.step = torch.where(first, step, self.step)
        self.code = torch.where(first, bad, self.code)

    def check(self):
        if not self.eager and int(self.code) != 0:
            self._raise(int(self.code), int(self.step))

