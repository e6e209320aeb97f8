"""Several runs trained at once on one device, as one packed model (`torch.func.stack_module_state`
+ `vmap`): k (seed, regularizer) runs of one comparison share every forward and backward pass, so
a narrow model fills a GPU instead of waiting on kernel launches.

Each member is an ordinary `Trainer` (its own record, data order, augmentation and pair draws from
its own generator, regularizer, penalty and targets) and ends as its own ordinary record; only the
model's forward/backward and the SGD update are batched. Batch norm stays per run: under `vmap` each
member normalises over its own images with its own running statistics. The update is one SGD over
the stacked parameters, which is member-wise exactly SGD on each run's parameters (same lr schedule
and step budget by the comparison rule; the momentum buffers are stacked too, so each run keeps its
own optimizer state). Numbers: the same maths as training alone; the batched convolutions round
differently, so weights agree within float32 round-off amplified by training (the test states the
tolerance), not bit for bit.

A member whose loss turns non-finite fails alone: its record is marked failed and it leaves the
loss; the others go on. Packed runs write no mid-run checkpoint (a killed pack retrains its members;
a member that has a checkpoint from an unpacked run resumes alone, unpacked). Costs: each member
records the pack's seconds divided by the number of members, and `packed: k`.
"""
from __future__ import annotations

import contextlib
import copy
import time

import torch
import torch.nn.functional as F
from torch.func import functional_call, stack_module_state, vmap

import regularizers as regs

from bench.core.config import RunConfig, lr_at
from bench.core.device import synchronize
from bench.core.records import Record
from bench.engine.monitors import NonFiniteLoss
from bench.engine.step_path import path_autocast
from bench.engine.trainer import Trainer


def check_packable(cfgs: list[RunConfig]) -> None:
    """One comparison (same budget, data, model, suite), one forward structure, no wall-clock cap."""
    if not cfgs:
        raise ValueError("a pack needs at least one run")
    keys = {c.comparison_key() for c in cfgs}
    if len(keys) != 1:
        raise ValueError("packed runs must share one comparison (budget, data, model, suite); these differ: "
                         + ", ".join(f"{c.regularizer} s{c.seed}" for c in cfgs))
    if any(c.budget_seconds is not None for c in cfgs):
        raise ValueError("packed runs train for their step budget; budget_seconds (a wall-clock cap) is not "
                         "supported with --pack")
    if len({Record.for_config(c).path for c in cfgs}) != len(cfgs):
        raise ValueError("a pack lists the same run twice")


class PackedTrainer:
    """Train `cfgs` together; `run()` returns {record path: None (trained) or the error it failed with}."""

    def __init__(self, cfgs: list[RunConfig], data=None, log=print):
        check_packable(cfgs)
        self.log = log
        self.members = [Trainer(c, data=data, log=log) for c in cfgs]
        m0 = self.members[0]
        for m in self.members:
            if m.hooks:
                raise ValueError(f"regularizer {m.cfg.regularizer!r} changes the training step ({', '.join(m.hooks)}) "
                                 "and cannot be packed; train it without --pack")
        shape = {(type(m.reg), bool(m.reg.active), int(m.reg.images_per_step()) if m.reg.active else 0)
                 for m in self.members}
        if len(shape) != 1:
            raise ValueError("packed runs must put the same images through the model each step (the same "
                             "regularizer class and pairs_per_step); pack runs of one regularizer")
        if m0.path.compiled:
            raise ValueError("--compile is not supported with --pack")
        self.device = m0.device

    # ------------------------------------------------------------------ driving
    def run(self, force: bool = False) -> dict:
        results = {}
        with contextlib.ExitStack() as stack:
            for m in self.members:
                stack.enter_context(m.record.run_lock(log=self.log))
            todo = []
            for m in self.members:
                if force:
                    m.record.clear()
                elif m.record.is_trained():
                    results[str(m.record.path)] = None
                    continue
                if m.record.checkpoint_path.is_file():  # an unpacked run's checkpoint: resume it alone
                    results[str(m.record.path)] = self._alone(m)
                    continue
                todo.append(m)
            if todo:
                results.update(self._train(todo))
        return results

    def _alone(self, m: Trainer):
        try:
            m._train()
        except (NonFiniteLoss, regs.base.PenaltyError) as e:
            m.record.mark_failed(str(e), **({"failed_step": e.step, "failed_term": e.term}
                                            if isinstance(e, NonFiniteLoss) else {}))
            return e
        return None

    # ------------------------------------------------------------------ training
    def _train(self, members: list[Trainer]) -> dict:
        for m in members:
            m.write_header()
        self.setup(members)
        k = len(members)
        failed: dict[int, Exception] = {}
        total, spe = members[0].total_steps, members[0].spe
        t0 = time.perf_counter()
        step = 0
        while step < total and self.alive:
            for idx, err in self._step(members, step).items():
                failed[idx] = err
            step += 1
            for i in self.alive:
                members[i].after_step()
            if step % spe == 0:
                self._sync(members)
                for i in self.alive:
                    members[i].end_of_epoch()
        synchronize(self.device)
        per = (time.perf_counter() - t0) / k
        self._sync(members)
        out = {}
        for i, m in enumerate(members):
            if i in failed:
                out[str(m.record.path)] = failed[i]
                continue
            m.timer.total = per  # the pack's seconds, shared by its members
            m.state["wall_s"], m.t_call = 0.0, time.perf_counter() - per
            m.finish("steps")
            out[str(m.record.path)] = None
        return out

    def setup(self, members: list[Trainer]) -> None:
        """Stack the members' weights and buffers, one SGD over them (plus each regularizer's own
        parameters), loop state per member."""
        k = len(members)
        for m in members:
            m.setup_optimizer()
            m.start_loop()
            m.extra_summary = {"packed": k}
        self.params, self.buffers = stack_module_state([m.model for m in members])
        self.params = {n: p.detach().requires_grad_() for n, p in self.params.items()}
        cfg = members[0].cfg
        groups = [{"params": list(self.params.values())}]
        for m in members:
            rp = [p for p in m.reg.parameters() if p.requires_grad]
            if rp:
                groups.append({"params": rp})
        self.opt = torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                                   foreach=True)
        self.base = copy.deepcopy(members[0].model).to("meta")
        self.alive = list(range(k))
        self.members = members

    @torch.no_grad()
    def adopt(self, i: int, t: Trainer) -> None:
        """Put an unpacked trainer's weights, buffers and momentum into slot i (to compare a packed step
        with the unpacked one from the same state)."""
        for n, p in t.model.named_parameters():
            self.params[n][i].copy_(p)
            q = t.opt.state.get(p, {}).get("momentum_buffer")
            st = self.opt.state.setdefault(self.params[n], {})
            if q is not None:
                if st.get("momentum_buffer") is None:
                    st["momentum_buffer"] = torch.zeros_like(self.params[n])
                st["momentum_buffer"][i].copy_(q)
        for n, b in t.model.named_buffers():
            if n in self.buffers:
                self.buffers[n][i].copy_(b)

    def _forward(self, x: torch.Tensor, features: bool):
        """One vmapped forward of every member (inside the step's autocast region on the fast path)."""
        base = self.base

        def one(p, b, xi):
            return functional_call(base, (p, b), (xi,), {"features": features})
        return vmap(one, randomness="different")(self.params, self.buffers, x)

    def _step(self, members: list[Trainer], step: int) -> dict:
        """One packed optimizer step; returns {member index: error} for members that failed at it."""
        xs, ys, rbs = [], [], []
        for m in members:  # each member's own draws, in the order its unpacked step makes them
            x, y, rb = m.inputs()
            xs.append(x)
            ys.append(y)
            rbs.append(rb)
        m0 = members[0]
        lr = lr_at(m0.cfg, step, m0.spe)
        for g in self.opt.param_groups:
            g["lr"] = lr
        x = torch.stack(xs)
        b = x.shape[1]
        with path_autocast(m0.path, self.device.type):  # the members' step path: one autocast region
            logits, feats = self._forwards(m0, x, b, rbs)
        if m0.path.amp_dtype is not None:
            logits, feats = logits.float(), (None if feats is None else [f.float() for f in feats])
        terms = []
        for i in self.alive:
            m = members[i]
            m.lr = lr
            ce = F.cross_entropy(logits[i], ys[i])
            pen, m.rlog = m.reg([f[i] for f in feats], rbs[i]) if m.reg.active else (None, {})
            terms.append((i, ce, pen))
        ok = torch.stack([torch.isfinite(ce) & (torch.isfinite(pen) if pen is not None else torch.isfinite(ce))
                          for _, ce, pen in terms]).tolist()  # one host sync per step for the whole pack
        losses, failed = [], {}
        for (i, ce, pen), good in zip(terms, ok):
            m = members[i]
            if not good:  # this member fails alone (the guard names the term and the step)
                try:
                    m.guard.eager = True
                    m.guard.update(step + 1, ce, pen)
                except NonFiniteLoss as e:
                    m.record.mark_failed(str(e), failed_step=e.step, failed_term=e.term)
                    self.log(f"[regbench] packed member {m.record.name} failed: {e}")
                    self.alive.remove(i)
                    failed[i] = e
                    continue
            loss = ce if pen is None else ce + pen
            losses.append(loss)
            m.state["step"] += 1
            m.state["images"] += b
            m.state["reg_images"] += 0 if (rbs[i] is None or rbs[i].images is None) else rbs[i].images.shape[0]
            m._accumulate(loss, ce, pen)
        if losses:
            self.opt.zero_grad(set_to_none=True)
            torch.stack(losses).sum().backward()  # member i's parameters get d loss_i only
            self.opt.step()
        return failed

    def _forwards(self, m0: Trainer, x: torch.Tensor, b: int, rbs: list):
        extra = None if rbs[0] is None else rbs[0].images
        if not m0.reg.active:
            logits, feats = self._forward(x, False), None
        elif extra is None:
            logits, feats = self._forward(x, True)
        elif m0.cfg.reg_forward == "joint":
            lg, fs = self._forward(torch.cat([x, torch.stack([r.images for r in rbs])], 1), True)
            logits, feats = lg[:, :b], [f[:, b:] for f in fs]
        else:  # separate (and grouped: the same maths) forwards per pair half, batch statistics per forward
            logits = self._forward(x, False)
            g = int(rbs[0].meta.get("groups", 1))
            parts = [self._forward(torch.stack([r.images.chunk(g)[c] for r in rbs]), True)[1] for c in range(g)]
            feats = [torch.cat(fs, 1) for fs in zip(*parts)]
        return logits, feats

    @torch.no_grad()
    def _sync(self, members: list[Trainer]) -> None:
        """Copy each member's slice of the stacked weights and buffers into its own model."""
        for i, m in enumerate(members):
            for n, p in m.model.named_parameters():
                p.copy_(self.params[n][i])
            for n, t in m.model.named_buffers():
                if n in self.buffers:
                    t.copy_(self.buffers[n][i])


def train_packed(cfgs: list[RunConfig], log=print, data=None, force: bool = False) -> dict:
    """Train several runs of one comparison packed on one device; {record path: None or error}."""
    return PackedTrainer(cfgs, data=data, log=log).run(force=force)
