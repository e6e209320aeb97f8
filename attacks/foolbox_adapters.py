"""The foolbox side of the decision-based attacks (`boundary`, and the white-box tests that reuse it): the
model the attacks query (batch norms folded into the convolutions, queries counted), foolbox's model wrapper,
and two context managers that patch foolbox/eagerpy for the duration of an attack (`record_norms` reads the
convergence curve from its TensorBoard logger, `host_draws` makes its random directions device-independent).

Kept apart from `attacks.boundary` (the protocol and its convergence loop) because these adapters depend on
foolbox's internals, not on the protocol, and `attacks.whitebox` uses them too.
"""
from __future__ import annotations

import contextlib
import copy

import torch
import torch.nn as nn

from bench.core.device import fold_tolerance

from .base import CountingModel, EvalContext, shared


def foolbox_model(ctx: EvalContext, model: nn.Module | None = None):
    import foolbox as fb
    return fb.PyTorchModel(model if model is not None else ctx.model, bounds=(0.0, 1.0), device=ctx.device)


# --------------------------------------------------------------------------- the model the attacks query
def fold_batchnorm(model: nn.Module) -> nn.Module:
    """An eval-mode copy of `model` with every BatchNorm2d that directly follows a Conv2d among a
    module's children folded into that convolution (BN replaced by Identity). Only used after a check
    that the copy computes the same logits (`attack_model`): a model whose child order does not match
    its forward order falls back to itself."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval
    folded = copy.deepcopy(model).eval()
    for mod in folded.modules():
        children = list(mod.named_children())
        for (n1, c1), (n2, c2) in zip(children, children[1:]):
            if (isinstance(c1, nn.Conv2d) and isinstance(c2, nn.BatchNorm2d) and c2.num_features == c1.out_channels
                    and c2.track_running_stats and c2.running_mean is not None):
                setattr(mod, n1, fuse_conv_bn_eval(c1, c2))
                setattr(mod, n2, nn.Identity())
    return folded


class CountsInto(nn.Module):
    """Runs `model` and adds its calls and images to `counter` (the test's CountingModel), so a faster
    copy of the evaluated model still shows in the test's recorded forward count."""

    def __init__(self, model: nn.Module, counter: CountingModel | None):
        super().__init__()
        self.model = model
        self.counter = counter

    def forward(self, x):
        if self.counter is not None:
            self.counter.calls += 1
            self.counter.images += int(x.shape[0])
        return self.model(x)


def attack_model(ctx: EvalContext, fold: bool = True, channels_last: bool | None = None) -> nn.Module:
    """The model decision-based attacks query: the evaluated model with batch norms folded into its
    convolutions (fewer memory passes per forward) and, on CUDA, channels-last; computed once per
    evaluation, kept only when its logits match the model's on the test images (else the model itself).
    Forwards are counted into the test's counter."""
    base = ctx.model.model if isinstance(ctx.model, CountingModel) else ctx.model
    counter = ctx.model if isinstance(ctx.model, CountingModel) else None
    if channels_last is None:
        channels_last = ctx.device.type == "cuda"

    def build():
        if not fold:
            return base, "evaluated model"
        try:
            fast = fold_batchnorm(base)
            if channels_last:
                fast = fast.to(memory_format=torch.channels_last)
            probe = ctx.x[:64]
            with torch.inference_mode():
                a, b = base(probe), fast(probe)
            tol = fold_tolerance(probe.device) * (1.0 + float(a.abs().max()))  # TF32 on CUDA rounds more
            if a.shape == b.shape and float((a - b).abs().max()) <= tol:
                return fast, "batch norm folded into convolutions" + (", channels-last" if channels_last else "")
        except Exception:  # noqa: BLE001  (an exotic model: attack the model itself)
            pass
        return base, "evaluated model (folding changed its logits)"

    fast, how = shared(ctx, f"attack_model:{fold}:{channels_last}", build)
    ctx.extras["_attack_model_kind"] = how
    return CountsInto(fast, counter).eval()


@contextlib.contextmanager
def record_norms(checkpoints, on_step=None):
    """Swap foolbox's BoundaryAttack TensorBoard logger for one that records the per-image L2
    distance of the current best adversarials after each checkpoint's number of steps."""
    import foolbox.attacks.boundary_attack as ba
    original = ba.TensorBoard
    want = set(int(c) for c in checkpoints)
    seen: dict[int, torch.Tensor] = {}

    class Recorder(original):
        def __init__(self, logdir):
            super().__init__(False)

        def histogram(self, tag, x, step, *, first=True):
            if tag != "norms":
                return
            if on_step is not None:
                on_step()
            if step - 1 in want:  # at step s the logger sees the distances after s - 1 steps
                seen[step - 1] = x.raw.detach().float().cpu().clone()

    ba.TensorBoard = Recorder
    try:
        yield seen
    finally:
        ba.TensorBoard = original


@contextlib.contextmanager
def host_draws():
    """foolbox draws its random directions through eagerpy (`ep.normal`, `ep.uniform`), which samples on the
    tensor's device: CUDA's generator on a GPU, so a decision-based distance would depend on where the suite
    ran. Inside this context those draws come from torch's global CPU generator (seeded by the test, as
    before) and are then moved to the device, so the attack sees the same directions on every device. On the
    CPU the numbers are exactly those of eagerpy's own methods (same generator, same call order). Patched here
    because neither foolbox nor eagerpy takes a generator."""
    from eagerpy.tensor.pytorch import PyTorchTensor
    orig = PyTorchTensor.uniform, PyTorchTensor.normal

    def uniform(self, shape, low=0.0, high=1.0):
        r = torch.rand(shape, dtype=self.raw.dtype, device="cpu").to(self.raw.device)
        return type(self)(r * (high - low) + low)

    def normal(self, shape, mean=0.0, stddev=1.0):
        r = torch.randn(shape, dtype=self.raw.dtype, device="cpu").to(self.raw.device)
        return type(self)(r * stddev + mean)

    PyTorchTensor.uniform, PyTorchTensor.normal = uniform, normal
    try:
        yield
    finally:
        PyTorchTensor.uniform, PyTorchTensor.normal = orig
