"""The `Regularizer` base class (torchattacks' `Attack` pattern: the base owns the bookkeeping).

A subclass declares its hyper-parameters as a nested dataclass `Params` and writes the penalty:

    @regularizers.register("l2_features")
    class L2Features(Regularizer):
        @dataclass
        class Params:
            alpha: float = 1.0

        def penalty(self, feats, batch):
            return sum(f.pow(2).mean() for f in feats)

The trainer talks to a regularizer through this interface only:
  * `setup(ctx)` once before training (load regularization images, targets, ...);
  * `sample(step, generator)` -> a `RegBatch` of images to push through the model this step,
    or None (no extra images; `penalty` then gets the task batch's features);
  * `__call__(feats, batch)` -> (alpha * penalty, log dict). The base class moves things to the
    device, weighs the penalty by `alpha`, and collects what is logged.
Parameters of the regularizer (e.g. trainable layer weights) join the optimizer; buffers (e.g.
running means) are saved with the checkpoint.

A training method that changes the step rather than the loss (input noise, adversarial training) is a
regularizer too; it implements one or both step hooks instead of (or beside) `penalty`:
  * `transform_batch(x, y, step)` -> the images the step trains on in place of the task batch `x`
    (e.g. noisy or adversarial images; same shape, [0, 1]);
  * `extra_loss(x, y, step)` -> a term added to the step's loss, computed from the regularizer's own
    forward(s) of the model (e.g. a consistency loss), or (term, dict to log);
  * `on_epoch_end(model, epoch)` -> a dict logged at each epoch's end (e.g. a robustness check), or None.
`step` is a `Step`: its `model` runs the trainer's model on the step's path (channels_last and bf16
autocast where the step uses them) and counts every image it forwards, and every image of a forward run
with gradients as one backward: that extra compute is recorded in the training summary
(`extra_forward_images`, `extra_backward_images`) beside the step budget, which stays the same for every
regularizer (the budget is steps; the cost says what each step cost). `step.generator` is a generator on
the device seeded by (run seed, step index): the hook's randomness is fixed by the seed, resumes exactly
and leaves the data order (drawn from the trainer's own generator) identical to `none`'s, so the
comparison stays paired. Penalty-only regularizers are unchanged.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn as nn

from bench.core.device import to_device


@dataclass
class RegBatch:
    """Images the trainer pushes through the model for the regularizer, plus what the
    regularizer needs to score them (e.g. pair indices and their target similarities)."""
    images: torch.Tensor | None = None  # float [M, C, H, W] in [0, 1], or None
    meta: dict = field(default_factory=dict)
    host_keys: tuple = ()  # meta entries the penalty never needs on the device: not copied each step

    def to(self, device) -> "RegBatch":
        """On `device` (host -> CUDA copies from pinned memory, non-blocking: no sync in the step)."""
        mv = {k: (to_device(v, device) if isinstance(v, torch.Tensor) and k not in self.host_keys else v)
              for k, v in self.meta.items()}
        return RegBatch(None if self.images is None else to_device(self.images, device), mv, self.host_keys)


@dataclass
class RegContext:
    """What `setup` may use: the run's config, task data and model, the device, a cache folder."""
    config: Any
    data: Any  # bench.core.data.DataBundle of the task
    model: nn.Module
    device: torch.device
    cache_dir: Any = None
    seed: int = 0


class StepModel:
    """The model as a step hook sees it: calling it runs the trainer's forward on the step path (float32
    logits) and counts the images, so the base class, not each plugin, keeps the cost. A forward run with
    gradients enabled is counted as one backward too (a hook that does not backpropagate a forward runs it
    under `torch.no_grad()`). `module` is the plain `nn.Module` (for evaluation outside the step)."""

    def __init__(self, module: nn.Module, forward=None):
        self.module = module
        self._forward = forward if forward is not None else module
        self.forward_images = 0
        self.backward_images = 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.forward_images += int(x.shape[0])
        if torch.is_grad_enabled():
            self.backward_images += int(x.shape[0])
        return self._forward(x)

    def input_grad(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """d CE(model(x), y) / dx: one counted forward and backward; the parameters' .grad are untouched."""
        xg = x.detach().requires_grad_(True)
        with torch.enable_grad():
            loss = nn.functional.cross_entropy(self(xg), y)
            (g,) = torch.autograd.grad(loss, xg)
        return g

    def take(self) -> tuple[int, int]:
        """(forward, backward) images counted since the last call, and reset."""
        out = (self.forward_images, self.backward_images)
        self.forward_images = self.backward_images = 0
        return out


def step_seed(run_seed: int, step: int) -> int:
    """The seed of a step hook's generator: a function of the run's seed and the step index only."""
    return (1_000_003 * (int(run_seed) + 1) + 7919 * int(step) + 104_729) % (2**63 - 1)


@dataclass
class Step:
    """What a step hook gets: the step index, the model (`StepModel`) and a lazily made generator on
    the device seeded by `step_seed(seed, index)`."""
    index: int
    model: StepModel
    seed: int = 0
    device: Any = None
    _gen: Any = field(default=None, repr=False)

    @property
    def generator(self) -> torch.Generator:
        if self._gen is None:
            dev = torch.device(self.device) if self.device is not None else torch.device("cpu")
            self._gen = torch.Generator(device=dev).manual_seed(step_seed(self.seed, self.index))
        return self._gen


class PenaltyError(TypeError, ValueError):
    """A regularizer's penalty() returned something other than a scalar tensor."""


def _type_name(t) -> str:
    return t if isinstance(t, str) else getattr(t, "__name__", str(t))


def check_hparam(owner: str, name: str, value, typ):
    """`value` checked against a Params field's declared type (`int`, `float`, `str`, `bool`;
    other annotations are not checked): an integer field takes integers only (an integral float
    such as 5000.0 becomes 5000; 2.7 or 1e400 is an error), a float field finite numbers, a str
    field strings, a bool field booleans. Returns the (possibly converted) value."""
    t = _type_name(typ).replace(" ", "")
    base = t.split("|")[0]
    optional = "None" in t.split("|")
    if value is None and optional:
        return value
    if base == "bool":
        if not isinstance(value, bool):
            raise ValueError(f"{owner}: {name} must be true or false, got {value!r}")
        return value
    if base == "int":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{owner}: {name} must be an integer, got {value!r}")
        if isinstance(value, float):
            if not math.isfinite(value) or not value.is_integer():
                raise ValueError(f"{owner}: {name} must be an integer, got {value!r}")
            value = int(value)
        return value
    if base == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{owner}: {name} must be a number, got {value!r}")
        if not math.isfinite(float(value)):
            raise ValueError(f"{owner}: {name} must be a finite number, got {value!r}")
        return float(value)
    if base == "str":
        if not isinstance(value, str):
            raise ValueError(f"{owner}: {name} must be a string, got {value!r}")
        return value
    return value


class Regularizer(nn.Module):
    name: ClassVar[str] = "?"
    # The penalty's weight `alpha` must be >= 0 (0 turns the regularizer off); a regularizer for which a
    # negative weight is meaningful (e.g. one whose penalty is a reward) sets this to True.
    negative_alpha: ClassVar[bool] = False

    @dataclass
    class Params:
        alpha: float = 0.0

    def __init__(self, **hp):
        super().__init__()
        valid = {f.name for f in dataclasses.fields(self.Params)}
        unknown = sorted(set(hp) - valid)
        if unknown:
            raise ValueError(f"{self.name}: unknown hyper-parameter(s) {', '.join(unknown)}; "
                             f"valid: {', '.join(sorted(valid))}")
        types = {f.name: f.type for f in dataclasses.fields(self.Params)}
        hp = {k: check_hparam(f"regularizer {self.name}", k, v, types[k]) for k, v in hp.items()}
        self.hp = self.Params(**hp)
        alpha = getattr(self.hp, "alpha", None)
        if isinstance(alpha, (int, float)) and alpha < 0 and not self.negative_alpha:
            raise ValueError(f"regularizer {self.name}: alpha must be >= 0 (the penalty's weight; 0 turns it off), "
                             f"got {alpha:g}")
        self.last_log: dict = {}
        cls = type(self)
        if cls.penalty is Regularizer.penalty and not cls.changes_step():
            raise TypeError(f"regularizer {self.name}: implements neither penalty() nor a step hook "
                            "(transform_batch, extra_loss)")

    # ----------------------------------------------------------------- subclass API
    def setup(self, ctx: RegContext) -> None:
        """Prepare once before training (default: nothing)."""

    def sample(self, step: int, generator: torch.Generator | None = None, drawn: dict | None = None) -> RegBatch | None:
        """The extra images for this step (default: none). A regularizer with `draws_ahead` gets this step's
        `drawn` (its `draw` output, already on the device) instead of drawing from `generator`."""
        return None

    # True: `draw` makes every random choice of a step, so the trainer draws a whole epoch's at once (see `draw`)
    draws_ahead: ClassVar[bool] = False

    def draw(self, step: int, generator: torch.Generator) -> dict:
        """This step's random draws as a dict of host tensors of the same shapes every step, made from
        `generator` (CPU). With `draws_ahead`, the trainer calls it for every step of an epoch at the epoch's
        start (in step order, interleaved with the task batch's own draws exactly as a step-by-step loop
        would make them, so the numbers are the same), copies the stacked draws to the device once, and
        passes each step's slice to `sample(step, drawn=...)`: no host work and no copy inside the step."""
        raise NotImplementedError(f"{self.name}: draws_ahead is set but draw() is not implemented")

    def images_per_step(self) -> int:
        """How many extra images `sample` puts through the model per step (for the trainer's
        memory estimate before it allocates anything; default: none)."""
        return 0

    def penalty(self, feats: list[torch.Tensor], batch: RegBatch | None):
        """Return the unweighted penalty (a scalar tensor), or (penalty, dict to log)."""
        raise NotImplementedError

    @property
    def active(self) -> bool:
        """False for a regularizer that adds no penalty (the trainer then skips the penalty path entirely:
        no extra images, no features; a step hook still runs, see `changes_step`)."""
        if type(self).penalty is Regularizer.penalty:  # a step-only method (noise_aug, fgsm_at)
            return False
        return float(getattr(self.hp, "alpha", 1.0)) != 0.0

    # ----------------------------------------------------------------- step hooks (see the module docstring)
    def transform_batch(self, x: torch.Tensor, y: torch.Tensor, step: Step) -> torch.Tensor:
        """The images this step trains on instead of the task batch `x` (default: `x`)."""
        return x

    def extra_loss(self, x: torch.Tensor, y: torch.Tensor, step: Step):
        """A term added to this step's loss, from the regularizer's own forward(s) through `step.model`."""
        raise NotImplementedError

    def on_epoch_end(self, model: nn.Module, epoch: int) -> dict | None:
        """Called after each epoch's validation with the plain model (in train mode; restore it if changed):
        a dict to log, or None."""
        return None

    @classmethod
    def hooks(cls) -> tuple[str, ...]:
        """The step hooks this class implements (overrides): a subset of ("transform_batch", "extra_loss")."""
        return tuple(h for h in ("transform_batch", "extra_loss")
                     if getattr(cls, h) is not getattr(Regularizer, h))

    @classmethod
    def changes_step(cls) -> bool:
        """True when the class changes the step itself (not only the loss): the trainer then runs its hooks,
        and such a run cannot be packed with others (its hooks run per model)."""
        return bool(cls.hooks())

    def checked_transform(self, x: torch.Tensor, y: torch.Tensor, step: Step) -> torch.Tensor:
        """`transform_batch`, checked (a tensor of x's shape), detached: the step trains on it as data."""
        out = self.transform_batch(x, y, step)
        if not isinstance(out, torch.Tensor) or out.shape != x.shape:
            got = f"shape {tuple(out.shape)}" if isinstance(out, torch.Tensor) else f"a {type(out).__name__}"
            raise PenaltyError(f"regularizer {self.name!r}: transform_batch() must return a tensor of the task "
                               f"batch's shape {tuple(x.shape)}, got {got}")
        return out.detach().to(x.dtype)

    def checked_extra_loss(self, x: torch.Tensor, y: torch.Tensor, step: Step) -> tuple[torch.Tensor, dict]:
        """`extra_loss` as (scalar term, log dict), checked as `penalty` is."""
        out = self.extra_loss(x, y, step)
        term, extra = (out if isinstance(out, tuple) else (out, {}))
        if not isinstance(term, torch.Tensor) or term.numel() != 1 or not term.is_floating_point():
            raise PenaltyError(f"regularizer {self.name!r}: extra_loss() must return a scalar floating-point "
                               f"torch.Tensor (or (tensor, dict)), got {type(term).__name__}")
        term = term.reshape(())
        return term, {"reg_raw": term.detach(), **(extra if isinstance(extra, dict) else {})}

    # ----------------------------------------------------------------- bookkeeping
    def forward(self, feats: list[torch.Tensor], batch: RegBatch | None = None):
        out = self.penalty(feats, batch)
        raw, extra = (out if isinstance(out, tuple) else (out, {}))
        if not isinstance(raw, torch.Tensor):
            raise PenaltyError(f"regularizer {self.name!r}: penalty() must return a scalar torch.Tensor "
                               f"(shape (), floating point, connected to the model's features), got a "
                               f"{type(raw).__name__}")
        if raw.numel() != 1 or not raw.is_floating_point():
            raise PenaltyError(f"regularizer {self.name!r}: penalty() must return a scalar floating-point tensor "
                               f"(shape ()), got a {str(raw.dtype).replace('torch.', '')} tensor of shape "
                               f"{tuple(raw.shape)}; reduce it (e.g. .mean())")
        raw = raw.reshape(())
        if not isinstance(extra, dict):
            raise PenaltyError(f"regularizer {self.name!r}: penalty() may return (tensor, dict), got a "
                               f"{type(extra).__name__} as its second item")
        alpha = float(getattr(self.hp, "alpha", 1.0))
        log = {"reg_raw": raw.detach(), "reg_weighted": alpha * raw.detach()}
        log.update(extra)
        self.last_log = log
        return alpha * raw, log

    def hparams(self) -> dict:
        return dataclasses.asdict(self.hp)

    def describe(self) -> dict:
        """What the record stores about this regularizer: its name, class, hyper-parameters as used and the
        class's defaults (the leaderboard labels a run by the hyper-parameters that differ from them)."""
        return {"name": self.name, "class": f"{type(self).__module__}.{type(self).__qualname__}",
                "params": self.hparams(), "defaults": dataclasses.asdict(self.Params())}

    def describe_training(self) -> dict:
        """Fields this regularizer adds to the record's training summary once training ends (e.g. the
        learned layer weights); default none."""
        return {}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.hparams().items())
        return f"{type(self).__name__}({args})"
