"""The engine: the `Trainer` (task cross-entropy + a regularizer's penalty or step hooks, under a step budget).

Every regularizer in a comparison gets the same step budget (epochs x steps per epoch, where
steps per epoch depend on the task data only), on the same device kind. The run records what it
cost: steps, images processed (task + regularization), wall and device seconds, device name and
(on CUDA) peak memory. Resumable: a checkpoint with the model, regularizer, optimizer, the
epoch's data order and generator state is written every `ckpt_minutes` (and every `ckpt_every`
steps when set), so a killed run continues exactly where it stopped (bit-identical on CPU); it loses
at most that much work. The best epoch's weights live in host memory (written with each checkpoint)
until the run ends, so they cost no device memory and no extra writes.

The step's path lives in `bench.engine.step_path`, the epoch plan in `bench.engine.epoch_plan`, checkpointing
in `bench.engine.checkpointing` and the step loop's timer and finite guard in `bench.engine.monitors`.
"""
from __future__ import annotations

import time
from pathlib import Path

import torch
import torch.nn.functional as F

import regularizers as regs

from bench.core import data as bdata
from bench.core import store
from bench.core.config import RunConfig, lr_at, validate
from bench.core.device import (available_memory, cpu_native_bf16, determinism_info, device_info, device_shared_by,
                               resolve_device, synchronize)
from bench.core.models import BatchNormGroups, count_parameters, model_from_config
from bench.core.records import Record
from bench.engine.checkpointing import Checkpointing
from bench.engine.epoch_plan import EpochPlan, steps_per_epoch
from bench.engine.monitors import DeviceTimer, FiniteGuard, NonFiniteLoss
from bench.engine.step_path import compile_mode, path_autocast, path_forward, prepare_model, step_path


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
    avail = available_memory(device)
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


class Trainer(EpochPlan, Checkpointing):
    """One run's training, in named steps: `restore` (a checkpoint, if any), `step` (one optimizer step),
    `end_of_epoch` (validation loss, best-model tracking), `checkpoint`, `select` (the weights to keep) and
    `finish` (weights + training summary into the record). `run()` drives them under the run lock.

    Everything that can be wrong with the input (device, regularizer and its hyper-parameters, data,
    memory of one step) is checked in the constructor, before the run folder is created."""

    def __init__(self, cfg: RunConfig, data: bdata.DataBundle | None = None, log=print):
        validate(cfg)
        cfg = cfg.replace(step_path=cfg.resolved_step_path())  # config.json holds the resolved path (same hash)
        self.cfg, self.log = cfg, log
        self.record = Record.for_config(cfg)
        self.device = resolve_device(cfg.device)
        if self.device.type == "cuda":  # static shapes: let cuDNN pick its fastest kernels (recorded in config.json)
            torch.backends.cudnn.benchmark = True
        self.reg = regs.get(cfg.regularizer, **cfg.reg_params)
        seed_all(cfg.seed)
        self.data = (bdata.load_for_config(cfg) if data is None else data).to(self.device)
        self.n_train = len(self.data.train_x)
        for note in self.data.meta.get("notes", ()):  # e.g. a preset's n_train over an array file's size: said
            log(f"[regbench] {cfg.dataset}: {note}")
        if self.n_train < 1 or len(self.data.val_x) < 1:
            raise ValueError(f"dataset {cfg.dataset!r} leaves {self.n_train} training and {len(self.data.val_x)} "
                             "validation images; need at least 1 of each")
        self.spe = steps_per_epoch(cfg, self.n_train)
        self.total_steps = cfg.epochs * self.spe
        self.model = model_from_config(cfg, self.data.channels, self.data.num_classes).to(self.device)
        check_step_memory(self.model, self.reg, cfg, self.data.channels, self.device)
        self.reg.setup(regs.RegContext(config=cfg, data=self.data, model=self.model, device=self.device,
                                       cache_dir=Path(cfg.out).expanduser().resolve() / ".cache", seed=cfg.seed))
        self.reg.to(self.device)
        # reg_forward=grouped: the batch norms take per-group statistics while the step sets group sizes
        self.bn_groups = BatchNormGroups(self.model) if cfg.reg_forward == "grouped" else None
        self.path = step_path(cfg, self.device)
        if self.path.fast and self.device.type == "cpu" and not cpu_native_bf16()[0]:
            log("[regbench] warning: step_path=fast on a CPU without native bf16: bf16 is emulated there and "
                "slower than the plain path")
        prepare_model(self.model, self.path)
        # a regularizer that changes the step (regularizers.base: transform_batch / extra_loss) sees the model
        # through a StepModel: its forwards run on the step path and are counted as the run's extra compute
        self.hooks = self.reg.hooks()
        self.step_model = regs.StepModel(self.model, lambda x: path_forward(self.model, x, self.path))
        self.loss_fn = (torch.compile(self._loss_of, mode=compile_mode(self.device), dynamic=False)
                        if self.path.compiled else self._loss_of)

    # ------------------------------------------------------------------ driving
    def run(self, force: bool = False) -> Record:
        """Train (or resume) under the record's run lock; skip a finished record unless `force`."""
        with self.record.run_lock(log=self.log):
            if not force and self.record.is_trained():  # finished by another process while we waited
                self.record.check_model_file()
                self.log(f"[regbench] already trained: {self.record.path}")
                return self.record
            if force:
                self.record.clear()
            try:
                self._train()
            except (NonFiniteLoss, regs.base.PenaltyError) as e:
                self.record.mark_failed(str(e), **({"failed_step": e.step, "failed_term": e.term}
                                                   if isinstance(e, NonFiniteLoss) else {}))
                raise
            except OSError as e:  # a full disk, a read-only folder: the record is not done (no temporary file is
                # left: writes are atomic); the last complete checkpoint is the resume point, so it is kept and said
                if e.filename is None or not self.record.checkpoint_path.is_file():
                    raise
                raise type(e)(e.errno, f"{e.strerror or e}; training stopped, its last checkpoint "
                                       f"{self.record.checkpoint_path} is kept: fix the cause, then rerun the same "
                                       "command to resume", e.filename) from None
        return self.record

    def _train(self) -> None:
        self.write_header()
        self.setup_optimizer()
        self.restore()
        self.start_loop()
        stopped_by = "steps"
        while self.state["step"] < self.total_steps:
            self.step()
            self.after_step()
            end_of_epoch = self.state["step"] % self.spe == 0
            if end_of_epoch:
                self.end_of_epoch()
            elapsed = self.state["wall_s"] + (time.perf_counter() - self.t_call)
            over_budget = self.cfg.budget_seconds is not None and elapsed >= self.cfg.budget_seconds
            if over_budget or self.checkpoint_due():
                self.checkpoint()
            if over_budget:
                stopped_by = "budget_seconds"
                break
        self.finish(stopped_by)

    # ------------------------------------------------------------------ steps
    def write_header(self) -> None:
        cfg, d, device = self.cfg, self.data, self.device
        self.record.write_header({
            "config": cfg.to_dict(), "hash": cfg.hash(), "comparison_key": cfg.comparison_key(),
            "regularizer": self.reg.describe(), "versions": store.versions(), "git_commit": store.git_commit(),
            "device": device_info(device),
            "model": {"arch": cfg.arch, "width": cfg.width, "params": count_parameters(self.model),
                      "channels": d.channels, "num_classes": d.num_classes},
            "data": {"dataset": cfg.dataset, "color": cfg.color, "n_train": self.n_train,
                     "n_val": len(d.val_x), "n_test": len(d.test_x), **d.meta},
            "budget": {"epochs": cfg.epochs, "steps_per_epoch": self.spe, "steps": self.total_steps,
                       "batch_size": cfg.batch_size, "budget_seconds": cfg.budget_seconds},
            "step_path": self.path.describe(), "determinism": determinism_info(device, self.path.amp_dtype)})

    def setup_optimizer(self) -> None:
        cfg = self.cfg
        params = list(self.model.parameters()) + [p for p in self.reg.parameters() if p.requires_grad]
        # foreach: one multi-tensor kernel per update term instead of ~4 ops per parameter tensor (the same
        # element-wise arithmetic, so bit-identical to the per-tensor loop on the CPU)
        self.opt = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                                   foreach=True)
        self.state = {"step": 0, "best_val": float("inf"), "best_epoch": -1, "wall_s": 0.0, "device_s": 0.0,
                      "images": 0, "reg_images": 0, "extra_forward_images": 0, "extra_backward_images": 0}
        self.best_model, self.perm, self.gen, self.plan = None, None, None, None
        # draw each epoch's randomness at its start (see inputs): every regularizer that splits its draws off
        self.ahead = (not self.reg.active) or bool(getattr(self.reg, "draws_ahead", False))

    def start_loop(self) -> None:
        self.progress = None
        if self.cfg.progress:
            from tqdm.auto import tqdm
            self.progress = tqdm(total=self.total_steps, initial=self.state["step"], unit="step", leave=False,
                                 desc=f"{self.cfg.regularizer} s{self.cfg.seed}", dynamic_ncols=True)
        self.t_call = self.t_ckpt = time.perf_counter()
        self.model.train()
        # running sums stay on the device (float64) and are read only at log points: no host sync
        self.running = {"loss": 0.0, "ce": 0.0, "reg": 0.0, "n": 0}
        self.timer = DeviceTimer(self.device, self.state["device_s"])
        self.guard = FiniteGuard(self.device, self.record.name)
        self.rlog, self.lr = {}, self.cfg.lr

    def _forward(self, x, rb):
        """(logits of the task batch, features the regularizer scores) on the step path, every forward
        of the step inside one autocast region (float32 outputs)."""
        with path_autocast(self.path, x.device.type):
            logits, feats = self._forwards(x, rb)
        if self.path.amp_dtype is not None:
            logits, feats = logits.float(), (None if feats is None else [f.float() for f in feats])
        return logits, feats

    def _forwards(self, x, rb):
        net, path, b = self.model, self.path.plain(), x.shape[0]
        extra = rb.images if (rb is not None and rb.images is not None) else None
        if not self.reg.active:
            return path_forward(net, x, path), None
        if extra is None:  # the regularizer scores the task batch's own features
            return path_forward(net, x, path, features=True)
        if self.cfg.reg_forward == "joint":  # one forward over task + regularization images
            logits, feats = path_forward(net, torch.cat([x, extra]), path, features=True)
            return logits[:b], [f[b:] for f in feats]
        groups = extra.chunk(int(rb.meta.get("groups", 1)))
        if self.cfg.reg_forward == "grouped":  # separate's batch statistics, in one forward
            self.bn_groups.sizes = [b] + [len(g) for g in groups]
            try:
                logits, feats = path_forward(net, torch.cat([x, extra]), path, features=True)
            finally:
                self.bn_groups.sizes = None
            return logits[:b], [f[b:] for f in feats]
        logits = path_forward(net, x, path)  # separate forwards per pair half, as the reference code
        parts = [path_forward(net, g, path, features=True)[1] for g in groups]
        return logits, [torch.cat(fs) for fs in zip(*parts)]

    def _loss_of(self, x, y, images, meta):
        """(loss, CE, penalty or None, the regularizer's log) of one step: every forward, the cross-entropy
        and the penalty (the region `compile` turns into one graph; tensors and a dict in, so a compiled
        step is not re-traced for each step's new RegBatch object)."""
        rb = None if meta is None else regs.RegBatch(images=images, meta=meta)
        logits, feats = self._forward(x, rb)
        ce = F.cross_entropy(logits, y)
        pen, rlog = self.reg(feats, rb) if self.reg.active else (None, {})
        return (ce if pen is None else ce + pen), ce, pen, rlog

    def step(self) -> None:
        """One optimizer step on CE + the regularizer's penalty (the guard stops at a non-finite term)."""
        state, reg = self.state, self.reg
        self.timer.start()
        x, y, rb = self.inputs()
        hook = self._hook_step() if self.hooks else None
        if "transform_batch" in self.hooks:
            x = reg.checked_transform(x, y, hook)
        self.lr = lr_at(self.cfg, state["step"], self.spe)
        for gpar in self.opt.param_groups:
            gpar["lr"] = self.lr
        if self.path.compiled and self.device.type == "cuda":
            torch.compiler.cudagraph_mark_step_begin()
        loss, ce, pen, self.rlog = self.loss_fn(x, y, None if rb is None else rb.images,
                                                None if rb is None else rb.meta)
        if "extra_loss" in self.hooks:
            loss, pen = self._extra_loss(x, y, hook, loss, pen)
        self.guard.update(state["step"] + 1, ce, pen)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.timer.stop()
        state["step"] += 1
        state["images"] += x.shape[0]
        state["reg_images"] += 0 if (rb is None or rb.images is None) else rb.images.shape[0]
        if hook is not None:
            fwd, bwd = self.step_model.take()
            state["extra_forward_images"] += fwd
            state["extra_backward_images"] += bwd
        self._accumulate(loss, ce, pen)

    def _hook_step(self):
        """This step as the regularizer's step hooks see it (its generator seeded by (seed, step index))."""
        return regs.Step(index=self.state["step"], model=self.step_model, seed=self.cfg.seed, device=self.device)

    def _extra_loss(self, x, y, hook, loss, pen):
        """The regularizer's extra loss term (its forwards inside the step's autocast region) added to the loss;
        for the finite guard and the log it counts as the penalty."""
        with path_autocast(self.path, x.device.type):
            term, log = self.reg.checked_extra_loss(x, y, hook)
        term = term.float()
        self.rlog = {**self.rlog, **log} if pen is not None else log
        return loss + term, (term if pen is None else pen + term)

    def _accumulate(self, loss, ce, pen) -> None:
        r = self.running
        r["loss"] += loss.detach().double()
        r["ce"] += ce.detach().double()
        if pen is not None:
            v = self.rlog.get("reg_raw", 0.0)
            r["reg"] += v.detach().double() if isinstance(v, torch.Tensor) else float(v)
        r["n"] += 1

    def after_step(self) -> None:
        """Progress, the early time estimate, and the log line every 50 steps and at epoch ends."""
        step, total = self.state["step"], self.total_steps
        if self.progress is not None:
            self.progress.update(1)
        if step == min(3, total) and step < total:
            synchronize(self.device)
            per = (time.perf_counter() - self.t_call) / 3
            self.log(f"[regbench] {self.record.name}: ~{per * 1000:.0f} ms/step, estimated "
                     f"{per * (total - step) / 60:.1f} min for {total - step} more steps")
        if step % 50 == 0 or step == total or step % self.spe == 0:
            self.guard.check()
            r = self.running
            entry = {"step": step, "epoch": step / self.spe, "lr": self.lr, "loss": float(r["loss"]) / r["n"],
                     "ce": float(r["ce"]) / r["n"], "reg_raw": float(r["reg"]) / r["n"]}
            if self.progress is not None:
                self.progress.set_postfix(loss=f"{entry['loss']:.3f}")
            for k, v in self.rlog.items():
                if k not in ("reg_raw", "reg_weighted"):
                    entry[k] = v.detach().cpu().tolist() if isinstance(v, torch.Tensor) else v
            self.record.append_log(entry)
            self.running = {"loss": 0.0, "ce": 0.0, "reg": 0.0, "n": 0}

    def end_of_epoch(self) -> None:
        """Validation loss and accuracy; the best epoch's weights are kept for `select`."""
        step = self.state["step"]
        vloss, vacc = evaluate_loss(self.model, self.data.val_x, self.data.val_y)
        self.record.append_log({"step": step, "epoch": step // self.spe, "val_loss": vloss, "val_acc": vacc})
        extra = self.reg.on_epoch_end(self.model, step // self.spe)
        if extra:
            self.record.append_log({"step": step, "epoch": step // self.spe, **extra})
        if self.cfg.epoch_evals:  # the epoch's weights, evaluated and deleted after training (bench.app.epoch_evals)
            store.atomic_torch_save(self.record.path / "epochs" / f"epoch_{step // self.spe}.pt",
                                    {k: v.detach().cpu() for k, v in self.model.state_dict().items()})
        if vloss < self.state["best_val"]:
            self.state["best_val"], self.state["best_epoch"] = vloss, step // self.spe
            # kept in host memory (no device memory for a second model); written only with checkpoints
            self.best_model = {k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()}

    def select(self) -> dict:
        """The weights the record keeps: the best validation-loss epoch's, or the last."""
        if self.cfg.select == "best_val_loss" and self.best_model is not None:
            return self.best_model
        return self.model.state_dict()

    def finish(self, stopped_by: str) -> None:
        """Weights and the training summary (costs, selection, the regularizer's own fields) into the record."""
        if self.progress is not None:
            self.progress.close()
        self.guard.check()
        self._clock()
        state, cfg = self.state, self.cfg
        self.record.save_weights(self.select(), self.reg.state_dict())
        summary = {"done": True, "steps": state["step"], "budget_steps": self.total_steps, "stopped_by": stopped_by,
                   "task_images": state["images"], "reg_images": state["reg_images"],
                   "images": state["images"] + state["reg_images"],
                   "wall_s": round(state["wall_s"], 3), "device_s": round(state["device_s"], 3),
                   "best_val_loss": state["best_val"],
                   "selected_epoch": state["best_epoch"] if cfg.select == "best_val_loss" else cfg.epochs,
                   "device": device_info(self.device)["name"], **self.path.describe(),
                   **getattr(self, "extra_summary", {})}
        if self.hooks:  # the step hooks' own forwards/backwards: training compute beside the step budget
            summary.update(step_hooks=list(self.hooks), extra_forward_images=state["extra_forward_images"],
                           extra_backward_images=state["extra_backward_images"])
        if device_shared_by() > 1:  # other worker processes ran on this device: its seconds include theirs
            summary["device_shared_by"] = device_shared_by()
        if self.device.type == "cuda":
            summary["peak_memory_mb"] = round(torch.cuda.max_memory_allocated(self.device) / 2**20, 1)
        summary.update(self.reg.describe_training())
        self.record.merge({"train": summary})
        self.record.checkpoint_path.unlink(missing_ok=True)
        self.log(f"[regbench] trained {self.record.path} ({state['step']} steps, {state['wall_s']:.1f} s)")


def train(cfg: RunConfig, log=print, data: bdata.DataBundle | None = None, force: bool = False) -> Path:
    """Train the run a config describes (or resume it, or skip it when done); returns its folder.

    The run lock is held while training, so a second identical command waits. A non-finite loss stops
    the run (`NonFiniteLoss`) and marks the record failed. `force`: retrain a finished (or damaged)
    record from scratch."""
    validate(cfg)
    record = Record.for_config(cfg)
    resolve_device(cfg.device)
    if not force and record.is_trained():
        record.check_model_file()
        log(f"[regbench] already trained: {record.path}")
        return record.path
    return Trainer(cfg, data=data, log=log).run(force=force).path
