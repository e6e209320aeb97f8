"""The train step's path: plain float32 NCHW, or the fast path (channels_last + bf16 autocast), optionally
compiled.

Kept apart from `bench.engine.trainer` because the same path decides every forward of a step, the
trainer's and the packed trainer's (`bench.engine.packed`) alike, and tests and benchmarks build paths by hand
(`StepPath`, `path_forward`) without a Trainer.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from bench.core.config import RunConfig
from bench.core.device import resolve_step_path


@dataclass(frozen=True)
class StepPath:
    """How the train step runs. The fast path (automatic on CUDA) keeps the model and inputs in
    channels_last and runs the forward under bf16 autocast; the loss and the regularizer see
    float32 logits/features. `compiled` (opt-in, any device) compiles the step's forwards, cross-entropy
    and penalty as one torch.compile graph, with CUDA graphs on CUDA (static shapes: one launch per step
    instead of ~1.2k); the backward and the SGD update stay eager.
    The CPU path is plain fp32 NCHW, bit-exact and resumable. Every regularizer of a comparison
    on one device kind takes the same path, so the identical-budget rule holds."""
    fast: bool = False
    channels_last: bool = False
    amp_dtype: torch.dtype | None = None
    compiled: bool = False

    def plain(self) -> "StepPath":
        """This path without its autocast (for forwards already inside the step's autocast region)."""
        return StepPath(self.fast, self.channels_last, None, self.compiled)

    def describe(self) -> dict:
        return {"fast_path": self.fast, "channels_last": self.channels_last,
                "amp_dtype": None if self.amp_dtype is None else str(self.amp_dtype).replace("torch.", ""),
                "compiled": self.compiled}


def step_path(cfg: RunConfig, device: torch.device) -> StepPath:
    """The config's resolved `step_path` as a StepPath: `fast` is channels_last + bf16 autocast on any
    device (CUDA, or a CPU: native bf16 there is about 2x per step, benchmarks/README.md); `plain` is float32
    NCHW. A config left unset resolves by `device` (fast on CUDA, plain on CPUs)."""
    name = cfg.step_path if cfg.step_path in ("plain", "fast") else resolve_step_path(cfg.step_path, str(device))
    fast = name == "fast"
    return StepPath(fast=fast, channels_last=fast, amp_dtype=torch.bfloat16 if fast else None,
                    compiled=bool(getattr(cfg, "compile", False)))


def prepare_model(model: torch.nn.Module, path: StepPath):
    """Put `model` in the path's memory format (in place) and return the callable the step uses."""
    if path.channels_last:
        model.to(memory_format=torch.channels_last)
    return model


def compile_mode(device: torch.device) -> str:
    """torch.compile's mode for the step: CUDA graphs on CUDA (the step's shapes are static), the default
    elsewhere."""
    return "reduce-overhead" if device.type == "cuda" else "default"


def path_autocast(path: StepPath, device_type: str):
    """The step's one autocast region (nothing on the plain path)."""
    import contextlib
    if path.amp_dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device_type, dtype=path.amp_dtype)


def path_forward(net, x: torch.Tensor, path: StepPath, features: bool = False):
    """One forward on the step path: channels_last input, autocast, float32 outputs. On the plain
    path this is exactly `net(x, features=features)`."""
    if path.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    if path.amp_dtype is None:
        return net(x, features=True) if features else net(x)
    with torch.autocast(device_type=x.device.type, dtype=path.amp_dtype):
        out = net(x, features=True) if features else net(x)
    if features:
        logits, feats = out
        return logits.float(), [f.float() for f in feats]
    return out.float()
