"""One hyper-parameter structure for a run (airbench style) plus named presets.

A `RunConfig` is everything that decides what a run computes. Its hash (over the fields that
change results, never over paths or the device) names the run directory, so the same config and
seed always land in the same place and a rerun resumes or skips.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field, fields
from typing import Any

DEFAULT_PRESET = "quick"  # what `bench run` / `bench sweep` run without --preset, on any device; `paper` is explicit
# `bench demo`'s worker processes. Measured on the 2-core CPU (the report of issue 5): two 1-thread workers
# beat one 2-thread process for the demo's narrow models.
DEMO_WORKERS = 2

# Fields that do not change what is computed: excluded from the hash.
SURROGATE_OFFSET = 1000  # a block's surrogate seed is this plus the block's seed (RunConfig.surrogate_seed None)
NON_SEMANTIC = ("data_dir", "out", "device", "download", "progress", "preset", "ckpt_every", "ckpt_minutes",
                "compile", "epoch_evals", "data_files")


@dataclass
class RunConfig:
    # --- what is trained
    regularizer: str = "none"
    reg_params: dict = field(default_factory=dict)
    dataset: str = "fashion_mnist"
    color: str = "gray"  # gray | rgb
    image_size: int = 32
    n_train: int | None = None  # training subset (None: the whole training split)
    n_test: int | None = None  # test subset used by the suite (None: the whole test set)
    val_fraction: float = 0.01
    # subset, validation split, test images, regularization-set augmentation. None: follows `seed`, so a
    # seed is a block that also samples the training subset and test images (issue 20's paired design);
    # an int fixes one subset for every seed of a comparison.
    data_seed: int | None = None
    augment: str = "auto"  # auto | crop_flip | none  (auto: crop_flip for CIFAR, none for MNIST family)
    arch: str = "resnet18"
    width: float = 1.0  # channel multiplier: 1.0 = 64-128-256-512, 0.25 = 16-32-64-128
    input_scaling: str = "reference"  # reference: 5*(x-0.5) | meanstd | none
    # --- how it is trained
    epochs: int = 40
    steps_per_epoch: int | None = None  # None: ceil(train images / batch_size)
    batch_size: int = 64
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 0.0
    lr_schedule: str = "cyclic_step"  # cyclic_step | constant | cosine
    lr_step_epochs: float = 4.0
    lr_gamma: float = 0.3
    lr_cycle_epochs: float = 20.0
    select: str = "best_val_loss"  # best_val_loss | last
    # joint: one forward over task+reg images | separate: as the reference code (task, then each pair half) |
    # grouped: separate's maths (batch statistics per group) in one forward (bench.core.models.grouped_batch_norm)
    reg_forward: str = "joint"
    budget_seconds: float | None = None  # optional wall-clock cap (the step budget stays the nominal one)
    seed: int = 0
    # --- evaluation
    suite: str = "quick"
    # seed of the unregularized transfer surrogate. None: SURROGATE_OFFSET + seed, one surrogate per seed
    # block (its variability is then inside the interval over seeds); an int: one surrogate for all seeds
    surrogate_seed: int | None = None
    # --- where (not hashed)
    data_dir: str | None = None
    # array files ({sha256: path}) of `npz:sha256=<hex>` datasets (bench.core.arrays): where the bytes the hash
    # names were found; config.json stores the paths relative to the record, as `out`
    data_files: dict | None = None
    out: str = "results"
    device: str = "auto"
    download: bool = True
    progress: bool = True
    preset: str | None = None
    ckpt_every: int | None = None  # steps between resumable checkpoints (None: by time only)
    ckpt_minutes: float = 10.0  # minutes between resumable checkpoints (a paper run writes a handful, not ~200)
    compile: bool = False  # torch.compile the step's forwards + loss + penalty (CUDA graphs on CUDA; speed only)
    # --- the train step's numerics (hashed when fast: fast and plain runs never pool as one protocol)
    # plain: float32 NCHW (bit-exact resume) | fast: channels_last + bf16 autocast | auto: fast on CUDA and on
    # CPUs with native bf16 | None: fast on CUDA, plain on CPUs. build_config stores the resolved value.
    step_path: str | None = None
    # keep every epoch's weights until the run's epoch evaluations (the accuracy-matched `none` control,
    # bench.app.epoch_evals) have run on them; adds evaluations, changes no trained weight: not hashed
    epoch_evals: bool = False

    def __post_init__(self):
        """`npz:PATH` (as `dataset` or `reg_params.reg_dataset`) becomes `npz:sha256=<hex>` with the path in
        `data_files`: the hash and config.json name the data by its bytes, never by a path of this machine
        (bench.core.arrays). Other names are left as they are; nothing is read for them."""
        rd = self.reg_params.get("reg_dataset") if isinstance(self.reg_params, dict) else None
        if _needs_canon(self.dataset) or _needs_canon(rd):
            from bench.core.arrays import canonical
            self.dataset, self.data_files = canonical(self.dataset, self.data_files)
            if _needs_canon(rd):
                rd, self.data_files = canonical(rd, self.data_files)
                self.reg_params = {**self.reg_params, "reg_dataset": rd}

    # ------------------------------------------------------------------ helpers
    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @property
    def effective_data_seed(self) -> int:
        """The data seed in force: `data_seed`, or the run's seed when it follows the seed block."""
        return int(self.seed if self.data_seed is None else self.data_seed)

    @property
    def effective_surrogate_seed(self) -> int:
        """The transfer surrogate's seed: `surrogate_seed`, or SURROGATE_OFFSET + seed (per block)."""
        return int(SURROGATE_OFFSET + self.seed if self.surrogate_seed is None else self.surrogate_seed)

    def semantic_dict(self) -> dict:
        """What the hash covers. The block-following seeds enter resolved, so a record made with a fixed
        `data_seed=0, surrogate_seed=1000` at seed 0 is the same run as one that follows its seed."""
        d = self.to_dict()
        for k in NON_SEMANTIC:
            d.pop(k, None)
        d["data_seed"] = self.effective_data_seed
        d["surrogate_seed"] = self.effective_surrogate_seed
        # the plain path is what every record before the option computed: it stays out of the hash, so those
        # records keep their names; the fast path enters it (and so the comparison key)
        d.pop("step_path", None)
        if self.resolved_step_path() == "fast":
            d["step_path"] = "fast"
        return d

    def resolved_step_path(self) -> str:
        """`plain` or `fast` for this config on this machine (bench.core.device.resolve_step_path)."""
        if self.step_path in ("plain", "fast"):
            return self.step_path
        from bench.core.device import resolve_step_path
        return resolve_step_path(self.step_path, self.device)

    def hash(self) -> str:
        blob = json.dumps(self.semantic_dict(), sort_keys=True, default=str, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    def comparison_key(self) -> str:
        """Hash of what must be identical between regularizers of one comparison (budget, data,
        model, suite): everything except the regularizer, its parameters and the seed."""
        d = self.semantic_dict()
        for k in ("regularizer", "reg_params", "seed"):
            d.pop(k)
        # seeds that follow the block are part of the block, not of the comparison
        d["data_seed"] = "seed" if self.data_seed is None else self.data_seed
        d["surrogate_seed"] = f"{SURROGATE_OFFSET}+seed" if self.surrogate_seed is None else self.surrogate_seed
        return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:12]

    def replace(self, **kw) -> "RunConfig":
        return dataclasses.replace(self, **kw)

    @classmethod
    def from_dict(cls, d: dict) -> "RunConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def resolved_augment(self) -> str:
        return resolve_augment(self.augment, self.dataset, self.data_files)


AUGMENTS = ("auto", "crop_flip", "none")


def _needs_canon(name) -> bool:
    return isinstance(name, str) and name.startswith("npz:") and not name.startswith("npz:sha256=")


def resolve_augment(option: str, dataset: str, files: dict | None = None) -> str:
    """`auto` -> the reference's augmentation for the dataset (CIFAR: crop with 4-px reflect padding +
    flip; MNIST family and folders: none); other options as given. Used for the task data and for the
    regularization sets alike. An `npz:` array file counts as CIFAR when its images are 32x32 colour
    (`bench.core.arrays.cifar_like`, read from the file `files` names); set `augment` to override."""
    if option not in AUGMENTS:
        raise ValueError(f"augment must be one of {', '.join(AUGMENTS)}, got {option!r}")
    if option != "auto":
        return option
    if str(dataset).startswith("npz:"):
        from bench.core.arrays import cifar_like
        return "crop_flip" if cifar_like(dataset, files) else "none"
    return "crop_flip" if str(dataset).startswith("cifar") else "none"


PRESETS: dict[str, dict[str, Any]] = {
    # The reference protocol of Attias et al. / Li et al. (grayscale CIFAR-10, ResNet18 width 64).
    "paper": dict(dataset="cifar10", color="gray", width=1.0, epochs=40, batch_size=64, lr=0.1,
                  momentum=0.9, weight_decay=0.0, lr_schedule="cyclic_step", lr_step_epochs=4.0,
                  lr_gamma=0.3, lr_cycle_epochs=20.0, select="best_val_loss", reg_forward="grouped",
                  suite="paper", n_train=None, n_test=None),
    # A small but real run on Fashion-MNIST (offline via Debian's dataset-fashion-mnist).
    "quick": dict(dataset="fashion_mnist", color="gray", width=0.25, epochs=4, batch_size=64, lr=0.05,
                  lr_schedule="cyclic_step", lr_step_epochs=2.0, lr_gamma=0.3, lr_cycle_epochs=4.0,
                  n_train=10000, n_test=1000, suite="quick"),
    # CPU-friendly: a couple of minutes on 2 cores.
    "demo": dict(dataset="fashion_mnist", color="gray", width=0.25, epochs=3, batch_size=64, lr=0.05,
                 lr_schedule="cyclic_step", lr_step_epochs=2.0, lr_gamma=0.3, lr_cycle_epochs=3.0,
                 n_train=5000, n_test=500, suite="quick"),  # n_test 500: `bench demo` (12 runs + suite) in ~15 min
    # The CPU scale of `bench reproduce`: every model well trained on a 2-core machine (~1-2 min each).
    "repro_cpu": dict(dataset="fashion_mnist", color="gray", width=0.25, epochs=4, batch_size=64, lr=0.05,
                      lr_schedule="cyclic_step", lr_step_epochs=2.0, lr_gamma=0.3, lr_cycle_epochs=4.0,
                      n_train=6000, n_test=1000, suite="repro_cpu"),
    # For tests: seconds.
    "tiny": dict(dataset="fashion_mnist", color="gray", width=0.125, epochs=1, batch_size=32, lr=0.05,
                 lr_schedule="constant", n_train=256, n_test=128, val_fraction=0.05, suite="quick"),
}


def parse_value(text: str) -> Any:
    """Parse a `--set key=value` value: JSON when it parses (numbers, bools, null, lists), else str."""
    try:
        return json.loads(text)
    except (json.JSONDecodeError, ValueError):
        return text


_TYPE_WORDS = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string",
               "dict": "a JSON object, e.g. {\"alpha\": 5}"}


def parse_field_value(key: str, text: str) -> Any:
    """A `--set KEY=VALUE` value checked against the type of RunConfig's field KEY (`int`, `float`,
    `bool`, `str`, `dict`, or any of them `| None`, where `null`/`none` give None). A value of the
    wrong type is a ValueError of one line naming the key and the expected type."""
    types = {f.name: f.type for f in fields(RunConfig)}
    if key not in types:
        raise ValueError(f"unknown config key {key!r}; valid keys: {', '.join(sorted(types))}")
    tname = str(types[key]).replace(" ", "")
    optional = tname.endswith("|None")
    base = tname[:-len("|None")] if optional else tname
    raw = text.strip()
    if optional and raw.lower() in ("null", "none", ""):
        return None
    if base == "str":
        return raw
    if base == "bool":
        low = raw.lower()
        if low in ("true", "1", "yes", "on"):
            return True
        if low in ("false", "0", "no", "off"):
            return False
    else:
        v = parse_value(raw)
        if base == "int" and isinstance(v, int) and not isinstance(v, bool):
            return v
        if base == "int" and isinstance(v, float) and v.is_integer() and "." not in raw and "e" not in raw.lower():
            return int(v)
        if base == "float" and isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            return float(v)
        if base == "dict" and isinstance(v, dict):
            return v
    want = _TYPE_WORDS.get(base, base) + (" or null" if optional else "")
    raise ValueError(f"--set {key}={text}: {key} must be {want} ({tname.replace('|', ' | ')}), got {text!r}")


def build_config(preset: str | None = None, overrides: dict | None = None,
                 sets: list[str] | None = None) -> RunConfig:
    """Defaults <- preset <- explicit overrides <- `--set key=value` (dotted `reg_params.alpha=5`)."""
    d = RunConfig().to_dict()
    if preset:
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; valid presets: {', '.join(sorted(PRESETS))}")
        d.update(PRESETS[preset])
        d["preset"] = preset
    for k, v in (overrides or {}).items():
        if v is not None:
            d[k] = v
    valid = {f.name for f in fields(RunConfig)}
    for item in sets or []:
        if "=" not in item:
            raise ValueError(f"--set expects key=value, got {item!r}")
        key, val = item.split("=", 1)
        if key.startswith("reg_params.") or key.startswith("reg."):
            d.setdefault("reg_params", {})
            d["reg_params"] = dict(d["reg_params"])
            d["reg_params"][key.split(".", 1)[1]] = parse_value(val)
            continue
        if key not in valid:
            raise ValueError(f"unknown config key {key!r}; valid keys: {', '.join(sorted(valid))}")
        d[key] = parse_field_value(key, val)  # type-checked against the field (reg_params stay free-form)
    cfg = RunConfig.from_dict(d)
    validate(cfg)
    # the resolved path (never auto/unset) is what config.json, the hash and job specs carry
    cfg.step_path = cfg.resolved_step_path()
    return cfg


_DEVICE_NAMES = ("auto", "cpu", "cuda", "cuda:N", "mps")


def _check_int(name: str, v, lo: int | None = None, hi: int | None = None, optional: bool = False) -> None:
    if v is None and optional:
        return
    if isinstance(v, bool) or not isinstance(v, int):
        raise ValueError(f"{name} must be an integer, got {v!r}")
    if lo is not None and v < lo:
        raise ValueError(f"{name} must be >= {lo}, got {v}")
    if hi is not None and v > hi:
        raise ValueError(f"{name} must be <= {hi}, got {v}")


def _check_float(name: str, v, lo: float | None = None, hi: float | None = None, lo_open: bool = False,
                 optional: bool = False) -> None:
    if v is None and optional:
        return
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError(f"{name} must be a number, got {v!r}")
    if not math.isfinite(float(v)):
        raise ValueError(f"{name} must be a finite number, got {v!r}")
    if lo is not None and (v <= lo if lo_open else v < lo):
        raise ValueError(f"{name} must be {'>' if lo_open else '>='} {lo}, got {v}")
    if hi is not None and v > hi:
        raise ValueError(f"{name} must be <= {hi}, got {v}")


def validate(cfg: RunConfig) -> None:
    """Range checks of every field (one-line ValueErrors naming the field); types are parsed by
    `parse_value`/`build_config`."""
    _check_int("epochs", cfg.epochs, 1, 100_000)
    _check_int("batch_size", cfg.batch_size, 1, 1_000_000)
    _check_int("image_size", cfg.image_size, 8, 4096)
    _check_int("n_train (--n-train)", cfg.n_train, 1, optional=True)
    _check_int("n_test (--n-test)", cfg.n_test, 1, optional=True)
    _check_int("steps_per_epoch", cfg.steps_per_epoch, 1, optional=True)
    _check_int("seed (--seed)", cfg.seed, 0, 2**63 - 1)
    _check_int("data_seed", cfg.data_seed, 0, 2**63 - 1, optional=True)
    _check_int("surrogate_seed", cfg.surrogate_seed, 0, 2**63 - 1, optional=True)
    _check_int("ckpt_every", cfg.ckpt_every, 1, optional=True)
    _check_float("ckpt_minutes", cfg.ckpt_minutes, 0.0)
    _check_float("width (--width)", cfg.width, 0.0, 64.0, lo_open=True)
    _check_float("lr", cfg.lr, 0.0, lo_open=True)
    _check_float("momentum", cfg.momentum, 0.0, 1.0)
    _check_float("weight_decay", cfg.weight_decay, 0.0)
    _check_float("lr_step_epochs", cfg.lr_step_epochs, 0.0, lo_open=True)
    _check_float("lr_gamma", cfg.lr_gamma, 0.0, lo_open=True)
    _check_float("lr_cycle_epochs", cfg.lr_cycle_epochs, 0.0, lo_open=True)
    _check_float("budget_seconds (--budget-seconds)", cfg.budget_seconds, 0.0, lo_open=True, optional=True)
    _check_float("val_fraction", cfg.val_fraction)
    for name in ("regularizer", "dataset", "arch", "suite", "lr_schedule", "out"):
        v = getattr(cfg, name)
        if not isinstance(v, str) or not v.strip():
            raise ValueError(f"{name} must be a non-empty string, got {v!r}")
    if not isinstance(cfg.reg_params, dict):
        raise ValueError(f"reg_params must be a mapping of hyper-parameters, got {cfg.reg_params!r}")
    if cfg.data_files is not None and not (isinstance(cfg.data_files, dict)
                                           and all(isinstance(v, str) for v in cfg.data_files.values())):
        raise ValueError(f"data_files must map sha256 to file paths, got {cfg.data_files!r}")
    if cfg.data_dir is not None and (not isinstance(cfg.data_dir, str) or not cfg.data_dir.strip()):
        raise ValueError(f"data_dir (--data-dir) must be a path, got {cfg.data_dir!r}")
    dev = str(cfg.device)
    if not (dev in ("auto", "cpu", "cuda", "mps") or (dev.startswith("cuda:") and dev[5:].isdigit())):
        raise ValueError(f"unknown device {cfg.device!r}; valid: {', '.join(_DEVICE_NAMES)}")
    if cfg.lr_schedule not in ("cyclic_step", "constant", "cosine"):
        raise ValueError(f"unknown lr_schedule {cfg.lr_schedule!r}; valid: constant, cosine, cyclic_step")
    if cfg.color not in ("gray", "rgb"):
        raise ValueError(f"color must be 'gray' or 'rgb', got {cfg.color!r}")
    if cfg.augment not in AUGMENTS:
        raise ValueError(f"augment must be auto|crop_flip|none, got {cfg.augment!r}")
    if cfg.input_scaling not in ("reference", "meanstd", "none"):
        raise ValueError(f"input_scaling must be reference|meanstd|none, got {cfg.input_scaling!r}")
    if cfg.reg_forward not in ("joint", "separate", "grouped"):
        raise ValueError(f"reg_forward must be joint|separate|grouped, got {cfg.reg_forward!r}")
    if cfg.step_path not in (None, "auto", "plain", "fast"):
        raise ValueError(f"step_path must be auto|plain|fast (or unset), got {cfg.step_path!r}")
    if cfg.select not in ("best_val_loss", "last"):
        raise ValueError(f"select must be best_val_loss|last, got {cfg.select!r}")
    if cfg.epochs < 1 or cfg.batch_size < 1 or cfg.width <= 0:
        raise ValueError("epochs, batch_size and width must be positive")
    if not (0.0 < cfg.val_fraction < 0.5):
        raise ValueError("val_fraction must be in (0, 0.5)")


def lr_at(cfg: RunConfig, step: int, steps_per_epoch: int) -> float:
    """Learning rate at a step. `cyclic_step` is the reference's schedule: within a cycle of
    `lr_cycle_epochs` epochs the rate is multiplied by `lr_gamma` every `lr_step_epochs` epochs,
    and it restarts at `lr` each cycle."""
    epoch = step / steps_per_epoch
    if cfg.lr_schedule == "constant":
        return cfg.lr
    if cfg.lr_schedule == "cosine":
        return 0.5 * cfg.lr * (1 + math.cos(math.pi * min(epoch / cfg.epochs, 1.0)))
    if cfg.lr_schedule == "cyclic_step":
        in_cycle = epoch % cfg.lr_cycle_epochs
        return cfg.lr * cfg.lr_gamma ** math.floor(in_cycle / cfg.lr_step_epochs + 1e-9)
    raise ValueError(f"unknown lr_schedule {cfg.lr_schedule!r}; valid: constant, cosine, cyclic_step")
