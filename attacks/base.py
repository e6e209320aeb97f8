"""Suite tests: one registered class per test, each with a versioned protocol.

As in torchattacks' `Attack`, the base class's `__call__` owns the bookkeeping (eval mode, the
[0, 1] input convention, seeding, timing, counting model forward calls, skipping a test whose
result with the same protocol is already in the record) and a subclass writes `run` only.

Result convention (the leaderboard and the plots read only this shape):

    {"summary": {metric: float, ...},        # scalars: one leaderboard column each
     "curves":  {name: {"x": [...], "y": [...], "x_label": str, "y_label": str}},   # optional
     "per_repeat": {metric: [float, ...]},   # optional: values over repeats (mean/SEM inside a run)
     "details": {...}}                       # optional: anything else (flags, per-corruption tables)

Higher-is-better is the default for a summary metric; a test lists the metrics where lower is
better (e.g. an error rate or a cost; distances to the boundary are higher-is-better) in `lower_is_better`.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn as nn

from bench.core.device import device_shared_by
from bench.core.registry import Registry

def _check_test(name, cls) -> None:
    if not (isinstance(cls, type) and issubclass(cls, SuiteTest)):
        raise TypeError(f"@register_test({name!r}) expects a SuiteTest subclass, got {cls!r}")


def _set_name(name, cls) -> None:
    cls.name = name


# Suite tests by name; third-party packages add theirs through the entry-point group `regbench.tests`.
TESTS = Registry("suite test", "regbench.tests", check=_check_test, on_register=_set_name, label="registered")
register_test = TESTS.register
available_tests = TESTS.names


class CountingModel(nn.Module):
    """Wraps a model that takes [0, 1] images; counts forward calls and images."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.calls = 0
        self.images = 0

    def forward(self, x):
        self.calls += 1
        self.images += int(x.shape[0])
        return self.model(x)


@dataclass
class Surrogate:
    """The unregularized source model of the transfer attacks, provided by the application (a record
    it found or trained: `run_dir`, `seed`) or by the caller (any `nn.Module` taking [0, 1] images)."""
    model: nn.Module
    run_dir: str | None = None
    seed: int | None = None


@dataclass
class EvalContext:
    """What a test sees: the model (eval mode, [0, 1] inputs), the test images as floats in
    [0, 1], labels, the run's config and folder (None for a bare model), the task's dataset name (the
    reference strengths depend on it), the device, the suite's seed and the transfer surrogate."""
    model: nn.Module
    x: torch.Tensor
    y: torch.Tensor
    config: Any = None
    run_dir: Path | None = None
    device: torch.device = torch.device("cpu")
    seed: int = 0
    num_classes: int = 10
    dataset: str | None = None
    surrogate: Surrogate | None = None
    extras: dict = field(default_factory=dict)  # optional inputs of single tests (test_indices, x_source)
    progress: bool = True


class SuiteTest:
    name: ClassVar[str] = "?"
    version: ClassVar[str] = "1"
    lower_is_better: ClassVar[tuple] = ()

    @dataclass
    class Params:
        pass

    def __init__(self, **params):
        valid = {f.name for f in dataclasses.fields(self.Params)}
        unknown = sorted(set(params) - valid)
        if unknown:
            raise ValueError(f"{self.name}: unknown parameter(s) {', '.join(unknown)}; "
                             f"valid: {', '.join(sorted(valid))}")
        self.params = self.Params(**params)

    def resolve_params(self, dataset: str | None):
        """The parameters with their per-dataset defaults filled in (default: as given). Tests whose
        reference strengths depend on the task (noise std, FGSM eps) override this, so the values
        actually used are what the record's protocol holds."""
        return self.params

    def protocol(self, dataset: str | None = None) -> dict:
        return {"test": self.name, "version": self.version, **dataclasses.asdict(self.resolve_params(dataset))}

    def run(self, ctx: EvalContext) -> dict:
        raise NotImplementedError

    def __call__(self, ctx: EvalContext) -> dict:
        counting = CountingModel(ctx.model).to(ctx.device).eval()
        inner = dataclasses.replace(ctx, model=counting)
        torch.manual_seed(ctx.seed)
        t0 = time.perf_counter()
        result = self.run(inner)
        if ctx.device.type == "cuda":
            torch.cuda.synchronize(ctx.device)
        cost = {"seconds": round(time.perf_counter() - t0, 3), "forward_calls": counting.calls,
                "forward_images": counting.images}
        if device_shared_by() > 1:  # other worker processes ran on this device: the seconds include theirs
            cost["device_shared_by"] = device_shared_by()
        return {"protocol": self.protocol(dataset_of(ctx)), "result": result, "cost": cost, "seed": ctx.seed,
                "lower_is_better": list(self.lower_is_better),
                "n_examples": int(len(ctx.x))}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in dataclasses.asdict(self.params).items())
        return f"{type(self).__name__}({args})"


def dataset_of(ctx: EvalContext) -> str | None:
    """The task's dataset name (from the run's config, or `ctx.dataset` for a bare model)."""
    ds = getattr(ctx.config, "dataset", None) if ctx.config is not None else None
    return ds or ctx.dataset


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch: int = 512) -> torch.Tensor:
    return torch.cat([model(x[i:i + batch]).argmax(1) for i in range(0, len(x), batch)]) if len(x) else \
        torch.zeros(0, dtype=torch.long, device=x.device)


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 512) -> float:
    return (predict(model, x, batch) == y).float().mean().item() if len(x) else float("nan")


def shared(ctx: EvalContext, key: str, fn):
    """Work several tests of one evaluation need (clean predictions, ...), computed once: cached in
    `ctx.extras["_shared"]` for this model and these images (a different model or image tensor misses)."""
    model = ctx.model.model if isinstance(ctx.model, CountingModel) else ctx.model
    cache = ctx.extras.setdefault("_shared", {})
    hit = cache.get(key)
    if hit is not None and hit[0] is model and hit[1] is ctx.x:
        return hit[2]
    value = fn()
    cache[key] = (model, ctx.x, value)
    return value


def clean_predictions(ctx: EvalContext) -> torch.Tensor:
    """The model's predictions on all of `ctx.x`, computed once per evaluation."""
    return shared(ctx, "clean_predictions", lambda: predict(ctx.model, ctx.x))


# --------------------------------------------------------------------------- shared helpers for attacks
def progress_bar(ctx: EvalContext, total: int, desc: str):
    """A tqdm bar that honours `ctx.progress` (disabled bars cost nothing)."""
    from tqdm.auto import tqdm
    return tqdm(total=total, desc=desc, disable=not ctx.progress, leave=False, dynamic_ncols=True)


def first_n(ctx: EvalContext, n: int | None):
    """The first `n` test images (all when None): a fixed subset, so repeated runs compare."""
    if n is None or n >= len(ctx.x):
        return ctx.x, ctx.y
    return ctx.x[:n], ctx.y[:n]


def select_images(ctx: EvalContext, n: int | None) -> torch.Tensor:
    """Indices of `n` random test images, seeded by the suite seed only, so the boundary attack,
    HopSkipJump and the white-box minimal-L2 reference all attack the same images."""
    g = torch.Generator().manual_seed(int(ctx.seed) + 7_777)
    perm = torch.randperm(len(ctx.x), generator=g)
    return perm if n is None else perm[:n]


def sq_l2_per_pixel(adv: torch.Tensor, x: torch.Tensor, channel: str = "all") -> torch.Tensor:
    """Squared L2 distance divided by the number of values compared, per image: over all channels
    (default) or over channel 0 only (the reference code's variant)."""
    d = (adv - x).float()
    if channel in ("0", 0):
        d = d[:, :1]
    elif channel != "all":
        raise ValueError(f"channel must be 'all' or '0', got {channel!r}")
    return d.flatten(1).pow(2).mean(1)


def skipped(reason: str) -> dict:
    """Result of a test that could not run (e.g. no surrogate): recorded, and recomputed next time."""
    return {"summary": {}, "details": {"skipped": reason}}
