"""The training loop: task cross-entropy + a regularizer's penalty, under a step budget.

Every regularizer in a comparison gets the same step budget (epochs x steps per epoch, where
steps per epoch depend on the task data only), on the same device kind. The run records what it
cost: steps, images processed (task + regularization), wall and device seconds, device name and
(on CUDA) peak memory. Resumable: a checkpoint with the model, regularizer, optimizer, the
epoch's data order and generator state is written every `ckpt_every` steps and at epoch ends, so
a killed run continues exactly where it stopped (bit-identical on CPU).
"""
from __future__ import annotations

import math
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

import regularizers as regs

from . import data as bdata
from . import store
from .config import RunConfig, lr_at
from .models import count_parameters, model_from_config


class NonFiniteLoss(ValueError):
    """The loss (cross-entropy or the regularizer's penalty) became NaN or infinite: the run stops
    and its record is marked failed."""

    def __init__(self, message: str, step: int, term: str):
        super().__init__(message)
        self.step, self.term = step, term


_DEVICE_RE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def resolve_device(name: str = "auto") -> torch.device:
    """`auto | cpu | cuda | cuda:N | mps` -> a torch.device that exists on this machine (a ValueError
    in one line otherwise: an unknown name, or CUDA asked for where there is none)."""
    name = "auto" if name is None else str(name).strip()
    if not _DEVICE_RE.match(name):
        raise ValueError(f"unknown device {name!r}; valid: auto, cpu, cuda, cuda:N")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            why = "this torch has no CUDA support" if torch.version.cuda is None else "no CUDA device is visible"
            raise ValueError(f"--device {name}: CUDA is not available on this machine ({why}); use --device cpu "
                             "or auto")
        idx = int(name.split(":")[1]) if ":" in name else 0
        if idx >= torch.cuda.device_count():
            raise ValueError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s) "
                             f"(cuda:0..cuda:{torch.cuda.device_count() - 1})")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError("--device mps: MPS is not available on this machine; use --device cpu or auto")
    return torch.device(name)


def determinism_info(device: torch.device) -> dict:
    """What decides whether a rerun is bit-identical (recorded in config.json, outside the hash)."""
    d = {"threads": torch.get_num_threads(), "interop_threads": torch.get_num_interop_threads(),
         "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"), "MKL_NUM_THREADS": os.environ.get("MKL_NUM_THREADS"),
         "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
         "float32_matmul_precision": torch.get_float32_matmul_precision(),
         "mkldnn_enabled": bool(torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled),
         "device_type": device.type,
         "bit_identical_when": "same torch version, device kind, thread count and step path (CPU fp32 path: "
                               "reruns and resumed runs are bit-identical; other thread counts or CUDA "
                               "(bf16 autocast, cuDNN) give close but not identical weights)"}
    if device.type == "cuda":
        d.update(cudnn_deterministic=torch.backends.cudnn.deterministic, cudnn_benchmark=torch.backends.cudnn.benchmark,
                 cuda_matmul_allow_tf32=torch.backends.cuda.matmul.allow_tf32,
                 CUBLAS_WORKSPACE_CONFIG=os.environ.get("CUBLAS_WORKSPACE_CONFIG"))
    return d


def _available_memory(device: torch.device) -> int | None:
    """Free bytes on the device (CUDA) or available host memory (CPU); None when unknown."""
    try:
        if device.type == "cuda":
            return int(torch.cuda.mem_get_info(device)[0])
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except Exception:
        return None
    return None


def check_step_memory(model, reg, cfg: RunConfig, channels: int, device: torch.device) -> None:
    """Refuse, before allocating anything large, a step whose activations cannot fit: about
    12 x the stem + stage outputs per image (kept for backward), times the task batch plus the
    regularizer's extra images."""
    extra = int(reg.images_per_step()) if reg.active else 0
    n_img = cfg.batch_size + extra
    if n_img <= 256:
        return
    was = model.training
    model.eval()
    with torch.no_grad():
        _, feats = model(torch.zeros(1, channels, cfg.image_size, cfg.image_size, device=device), features=True)
    model.train(was)
    per_image = 12 * sum(f.numel() * 4 for f in feats)
    need = n_img * per_image
    avail = _available_memory(device)
    if avail is not None and need > avail:
        raise ValueError(f"one training step needs about {need / 2**30:.1f} GiB ({n_img} images through the model: "
                         f"batch_size {cfg.batch_size} + {extra} regularization images) but {device} has "
                         f"{avail / 2**30:.1f} GiB available; lower pairs_per_step or batch_size")


def seed_all(seed: int) -> None:
    torch.manual_seed(seed)
    import random
    import numpy as np
    random.seed(seed)
    np.random.seed(seed % 2**32)


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    return torch.Generator().manual_seed(1_000_003 * (seed + 1) + 7919 * epoch)


def steps_per_epoch(cfg: RunConfig, n_train: int) -> int:
    return cfg.steps_per_epoch or math.ceil(n_train / cfg.batch_size)


def is_done(run_dir: Path) -> bool:
    run_dir = Path(run_dir)
    if not (run_dir / "model.pt").is_file():
        return False
    m = store.read_json(run_dir / "metrics.json", {}) or {}  # damaged: DamagedRecord saying how to redo it
    t = m.get("train") or {}
    return bool(t.get("done")) and not t.get("failed")


def damaged_hint(run_dir: Path) -> str:
    return (f"retrain with `python -m bench run ... --force` (same arguments), or move the folder {Path(run_dir)} "
            "away")


def check_model_file(run_dir: Path) -> None:
    """A finished record's model.pt must load (weights_only): else a one-line error with the fix."""
    try:
        store.load_state(Path(run_dir) / "model.pt")
    except store.CorruptCheckpoint as e:
        raise store.CorruptCheckpoint(f"{e}; {damaged_hint(run_dir)}") from None


def mark_failed(run_dir: Path, message: str, **extra) -> None:
    """Leave a record that says it failed (never `done`), with the reason."""
    store.merge_metrics(run_dir, {"train": {"done": False, "failed": True, "error": message, **extra}})


def load_task_data(cfg: RunConfig) -> bdata.DataBundle:
    return bdata.load(cfg.dataset, color=cfg.color, image_size=cfg.image_size, n_train=cfg.n_train,
                      n_test=cfg.n_test, val_fraction=cfg.val_fraction, data_seed=cfg.data_seed,
                      data_dir=cfg.data_dir, download=cfg.download)


def augment(cfg: RunConfig, x_uint8: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    x = bdata.to_float(x_uint8)
    if cfg.resolved_augment() == "crop_flip":
        x = bdata.batch_crop_flip(x, pad=4, flip=True, generator=gen)
    return x


@torch.no_grad()
def evaluate_loss(model, x_uint8, y, batch: int = 512) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of a model in eval mode."""
    was = model.training
    model.eval()
    tot, correct, n = 0.0, 0, 0
    for i in range(0, len(x_uint8), batch):
        xb = bdata.to_float(x_uint8[i:i + batch])
        logits = model(xb)
        yb = y[i:i + batch]
        tot += F.cross_entropy(logits, yb, reduction="sum").item()
        correct += (logits.argmax(1) == yb).sum().item()
        n += len(yb)
    model.train(was)
    return tot / max(n, 1), correct / max(n, 1)


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# --------------------------------------------------------------------------- GPU fast path
@dataclass(frozen=True)
class StepPath:
    """How the train step runs. The fast path (automatic on CUDA) keeps the model and inputs in
    channels_last and runs the forward under bf16 autocast; the loss and the regularizer see
    float32 logits/features. `compiled` wraps the model in torch.compile (any device, opt-in).
    The CPU path is plain fp32 NCHW, bit-exact and resumable. Every regularizer of a comparison
    on one device kind takes the same path, so the identical-budget rule holds."""
    fast: bool = False
    channels_last: bool = False
    amp_dtype: torch.dtype | None = None
    compiled: bool = False

    def describe(self) -> dict:
        return {"fast_path": self.fast, "channels_last": self.channels_last,
                "amp_dtype": None if self.amp_dtype is None else str(self.amp_dtype).replace("torch.", ""),
                "compiled": self.compiled}


def step_path(cfg: RunConfig, device: torch.device) -> StepPath:
    cuda = device.type == "cuda"
    return StepPath(fast=cuda, channels_last=cuda, amp_dtype=torch.bfloat16 if cuda else None,
                    compiled=bool(getattr(cfg, "compile", False)))


def prepare_model(model: torch.nn.Module, path: StepPath):
    """Put `model` in the path's memory format (in place) and return the callable the step uses
    (the model itself, or its torch.compile wrapper, which shares the parameters)."""
    if path.channels_last:
        model.to(memory_format=torch.channels_last)
    return torch.compile(model) if path.compiled else model


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


def to_device_async(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Host -> CUDA copy without a stream sync (pinned + non_blocking); a plain .to elsewhere."""
    if device.type == "cuda" and t.device.type == "cpu":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


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


def train(cfg: RunConfig, log=print, data: bdata.DataBundle | None = None, force: bool = False) -> Path:
    """Train the run a config describes (or resume it, or skip it when done); returns its folder.

    Everything that can be wrong with the input (device, regularizer and its hyper-parameters,
    data, memory of one step) is checked before the run folder is created. The run lock
    (`store.run_lock`) is held while training, so a second identical command waits. A non-finite
    loss stops the run (`NonFiniteLoss`) and marks the record failed. `force`: retrain a finished
    (or damaged) record from scratch."""
    from .config import validate
    validate(cfg)
    run_dir = store.run_dir_for(cfg)
    device = resolve_device(cfg.device)
    if not force and is_done(run_dir):
        check_model_file(run_dir)
        log(f"[regbench] already trained: {run_dir}")
        return run_dir
    reg = regs.get(cfg.regularizer, **cfg.reg_params)
    seed_all(cfg.seed)
    if data is None:
        data = load_task_data(cfg)
    data = data.to(device)
    n_train = len(data.train_x)
    if n_train < 1 or len(data.val_x) < 1:
        raise ValueError(f"dataset {cfg.dataset!r} leaves {n_train} training and {len(data.val_x)} validation images; "
                         "need at least 1 of each")
    spe = steps_per_epoch(cfg, n_train)
    total_steps = cfg.epochs * spe

    model = model_from_config(cfg, data.channels, data.num_classes).to(device)
    check_step_memory(model, reg, cfg, data.channels, device)
    cache_dir = Path(cfg.out).expanduser().resolve() / ".cache"
    reg.setup(regs.RegContext(config=cfg, data=data, model=model, device=device, cache_dir=cache_dir,
                              seed=cfg.seed))
    reg.to(device)
    path = step_path(cfg, device)
    net = prepare_model(model, path)
    with store.run_lock(run_dir, log=log):
        if not force and is_done(run_dir):  # finished by another process while we waited
            check_model_file(run_dir)
            log(f"[regbench] already trained: {run_dir}")
            return run_dir
        if force:
            for name in ("model.pt", "regularizer.pt", "checkpoint.pt", "metrics.json", "train_log.jsonl"):
                (run_dir / name).unlink(missing_ok=True)
        try:
            _train_locked(cfg, log, data, run_dir, device, reg, model, net, path, n_train, spe, total_steps)
        except (NonFiniteLoss, regs.base.PenaltyError) as e:
            mark_failed(run_dir, str(e), **({"failed_step": e.step, "failed_term": e.term}
                                            if isinstance(e, NonFiniteLoss) else {}))
            raise
    return run_dir


class _FiniteGuard:
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


def _train_locked(cfg, log, data, run_dir, device, reg, model, net, path, n_train, spe, total_steps):

    record = {"config": cfg.to_dict(), "hash": cfg.hash(), "comparison_key": cfg.comparison_key(),
              "regularizer": reg.describe(), "versions": store.versions(), "git_commit": store.git_commit(),
              "device": store.device_info(device),
              "model": {"arch": cfg.arch, "width": cfg.width, "params": count_parameters(model),
                        "channels": data.channels, "num_classes": data.num_classes},
              "data": {"dataset": cfg.dataset, "color": cfg.color, "n_train": n_train,
                       "n_val": len(data.val_x), "n_test": len(data.test_x)},
              "budget": {"epochs": cfg.epochs, "steps_per_epoch": spe, "steps": total_steps,
                         "batch_size": cfg.batch_size, "budget_seconds": cfg.budget_seconds},
              "step_path": path.describe(), "determinism": determinism_info(device)}
    store.atomic_write_json(run_dir / "config.json", record)

    params = list(model.parameters()) + [p for p in reg.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)

    state = {"step": 0, "best_val": float("inf"), "best_epoch": -1, "wall_s": 0.0, "device_s": 0.0,
             "images": 0, "reg_images": 0}
    best_model = None
    perm, gen = None, None
    ckpt_path = run_dir / "checkpoint.pt"
    if ckpt_path.is_file():
        try:
            ck = store.load_state(ckpt_path, map_location=device)
        except store.CorruptCheckpoint as e:
            raise store.CorruptCheckpoint(f"{e}; delete {ckpt_path} to restart this run from step 0, or "
                                          f"{damaged_hint(run_dir)}") from None
        model.load_state_dict(ck["model"])
        reg.load_state_dict(ck["regularizer"])
        opt.load_state_dict(ck["optimizer"])
        state.update({k: (v.item() if isinstance(v, torch.Tensor) else v) for k, v in ck["state"].items()})
        best_model = ck.get("best_model")
        perm = ck["perm"].cpu()
        gen = torch.Generator()
        gen.set_state(ck["gen_state"].cpu())
        torch.set_rng_state(ck["torch_rng"].cpu())
        log(f"[regbench] resuming {run_dir.name} at step {state['step']}/{total_steps}")

    def save_checkpoint():
        ck = {"model": model.state_dict(), "regularizer": reg.state_dict(), "optimizer": opt.state_dict(),
              "state": dict(state), "perm": perm, "gen_state": gen.get_state(),
              "torch_rng": torch.get_rng_state()}
        if best_model is not None:
            ck["best_model"] = best_model
        store.atomic_torch_save(ckpt_path, ck)

    progress = None
    if cfg.progress:
        from tqdm.auto import tqdm
        progress = tqdm(total=total_steps, initial=state["step"], desc=f"{cfg.regularizer} s{cfg.seed}",
                        unit="step", dynamic_ncols=True, leave=False)
    t_call = time.perf_counter()
    stopped_by = "steps"
    model.train()
    log_path = run_dir / "train_log.jsonl"
    # running sums stay on the device (float64) and are read only at log points: no host sync
    running = {"loss": 0.0, "ce": 0.0, "reg": 0.0, "n": 0}
    timer = DeviceTimer(device, state["device_s"])
    guard = _FiniteGuard(device, run_dir.name)
    while state["step"] < total_steps:
        epoch, in_epoch = divmod(state["step"], spe)
        if in_epoch == 0 or perm is None:
            gen = epoch_generator(cfg.seed, epoch)
            reps = math.ceil(spe * cfg.batch_size / n_train)
            perm = torch.cat([torch.randperm(n_train, generator=gen) for _ in range(reps)])
        idx = to_device_async(perm[in_epoch * cfg.batch_size:(in_epoch + 1) * cfg.batch_size], device)
        timer.start()
        x = augment(cfg, data.train_x[idx], gen)
        y = data.train_y[idx]
        lr = lr_at(cfg, state["step"], spe)
        for gpar in opt.param_groups:
            gpar["lr"] = lr
        rb = reg.sample(state["step"], gen) if reg.active else None
        if rb is not None:
            rb = rb.to(device)
        extra = rb.images if (rb is not None and rb.images is not None) else None
        b = x.shape[0]
        if not reg.active:
            logits = path_forward(net, x, path)
        elif extra is None:  # the regularizer scores the task batch's own features
            logits, feats = path_forward(net, x, path, features=True)
        elif cfg.reg_forward == "joint":  # one forward over task + regularization images
            logits, feats = path_forward(net, torch.cat([x, extra]), path, features=True)
            logits, feats = logits[:b], [f[b:] for f in feats]
        else:  # separate forwards per pair half, as the reference code
            logits = path_forward(net, x, path)
            parts = [path_forward(net, g, path, features=True)[1]
                     for g in extra.chunk(int(rb.meta.get("groups", 1)))]
            feats = [torch.cat(fs) for fs in zip(*parts)]
        ce = F.cross_entropy(logits, y)
        pen, rlog = reg(feats, rb) if reg.active else (None, {})
        loss = ce if pen is None else ce + pen
        guard.update(state["step"] + 1, ce, pen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        timer.stop()
        state["step"] += 1
        state["images"] += b
        state["reg_images"] += 0 if extra is None else extra.shape[0]
        running["loss"] += loss.detach().double()
        running["ce"] += ce.detach().double()
        if pen is not None:
            r = rlog.get("reg_raw", 0.0)
            running["reg"] += r.detach().double() if isinstance(r, torch.Tensor) else float(r)
        running["n"] += 1
        if progress is not None:
            progress.update(1)
        if state["step"] == min(3, total_steps) and state["step"] < total_steps:
            _sync(device)
            per = (time.perf_counter() - t_call) / 3
            log(f"[regbench] {run_dir.name}: ~{per * 1000:.0f} ms/step, estimated "
                f"{per * (total_steps - state['step']) / 60:.1f} min for {total_steps - state['step']} more steps")
        if state["step"] % 50 == 0 or state["step"] == total_steps or (state["step"] % spe == 0):
            guard.check()
            entry = {"step": state["step"], "epoch": state["step"] / spe, "lr": lr,
                     "loss": float(running["loss"]) / running["n"], "ce": float(running["ce"]) / running["n"],
                     "reg_raw": float(running["reg"]) / running["n"]}
            if progress is not None:
                progress.set_postfix(loss=f"{entry['loss']:.3f}")
            extra = {k: v for k, v in rlog.items() if k not in ("reg_raw", "reg_weighted")}
            for k, v in extra.items():
                entry[k] = v.detach().cpu().tolist() if isinstance(v, torch.Tensor) else v
            store.append_log(log_path, entry)
            running = {"loss": 0.0, "ce": 0.0, "reg": 0.0, "n": 0}
        end_of_epoch = state["step"] % spe == 0
        if end_of_epoch:
            vloss, vacc = evaluate_loss(model, data.val_x, data.val_y)
            store.append_log(log_path, {"step": state["step"], "epoch": state["step"] // spe,
                                        "val_loss": vloss, "val_acc": vacc})
            if vloss < state["best_val"]:
                state["best_val"], state["best_epoch"] = vloss, state["step"] // spe
                best_model = {k: v.detach().clone() for k, v in model.state_dict().items()}
        elapsed = state["wall_s"] + (time.perf_counter() - t_call)
        over_budget = cfg.budget_seconds is not None and elapsed >= cfg.budget_seconds
        if end_of_epoch or state["step"] % cfg.ckpt_every == 0 or over_budget:
            state["device_s"] = timer.seconds()
            state["wall_s"] += time.perf_counter() - t_call
            t_call = time.perf_counter()
            guard.check()
            save_checkpoint()
        if over_budget:
            stopped_by = "budget_seconds"
            break
    if progress is not None:
        progress.close()
    guard.check()
    state["device_s"] = timer.seconds()
    state["wall_s"] += time.perf_counter() - t_call

    if cfg.select == "best_val_loss" and best_model is not None:
        final = best_model
    else:
        final = model.state_dict()
    store.atomic_torch_save(run_dir / "model.pt", {k: v.detach().cpu() for k, v in final.items()})
    reg_state = reg.state_dict()
    if reg_state:
        store.atomic_torch_save(run_dir / "regularizer.pt", {k: v.detach().cpu() for k, v in reg_state.items()})
    train_rec = {"done": True, "steps": state["step"], "budget_steps": total_steps, "stopped_by": stopped_by,
                 "task_images": state["images"], "reg_images": state["reg_images"],
                 "images": state["images"] + state["reg_images"],
                 "wall_s": round(state["wall_s"], 3), "device_s": round(state["device_s"], 3),
                 "best_val_loss": state["best_val"], "selected_epoch": state["best_epoch"]
                 if cfg.select == "best_val_loss" else cfg.epochs,
                 "device": store.device_info(device)["name"], **path.describe()}
    if device.type == "cuda":
        train_rec["peak_memory_mb"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    if hasattr(reg, "layer_weights"):
        try:
            train_rec["layer_weights"] = reg.layer_weights().tolist()
        except Exception:
            pass
    store.merge_metrics(run_dir, {"train": train_rec})
    ckpt_path.unlink(missing_ok=True)
    log(f"[regbench] trained {run_dir} ({state['step']} steps, {state['wall_s']:.1f} s)")


def load_trained(run_dir: Path, device="cpu"):
    """(config, model in eval mode) of a finished record; the weights load with weights_only=True."""
    run_dir = Path(run_dir)
    rec = store.read_json(run_dir / "config.json")
    if rec is None:
        raise FileNotFoundError(f"no config.json in {run_dir}: not a RegBench run directory")
    cfg = RunConfig.from_dict(rec["config"])
    m = rec["model"]
    model = model_from_config(cfg, m["channels"], m["num_classes"])
    try:
        state = store.load_state(run_dir / "model.pt")
    except store.CorruptCheckpoint as e:
        raise store.CorruptCheckpoint(f"{e}; {damaged_hint(run_dir)}") from None
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise store.CorruptCheckpoint(f"{run_dir / 'model.pt'} does not fit the record's model "
                                      f"({str(e).splitlines()[0][:160]}); {damaged_hint(run_dir)}") from None
    return cfg, model.to(device).eval()
