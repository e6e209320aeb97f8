"""Checkpointing of a run: restoring from the record's checkpoint and writing one every `ckpt_minutes` (and
every `ckpt_every` steps when set), so a killed run continues exactly where it stopped.

Kept apart from `bench.engine.trainer`: what a checkpoint holds (model, regularizer, optimizer, loop state, the
epoch's data order and generator state, the best epoch's weights) is the resume contract, read and written
here only. `Checkpointing` is a mixin of `Trainer`.
"""
from __future__ import annotations

import time

import torch

from bench.core import store


class Checkpointing:
    """Restore and checkpoint a `Trainer` (uses its `record`, `model`, `reg`, `opt`, `state`, `timer`, `guard`,
    `perm`, `gen` and `best_model`)."""

    def restore(self) -> None:
        """Continue from the record's checkpoint, if there is one (bit-identical on CPU)."""
        ckpt_path = self.record.checkpoint_path
        if not ckpt_path.is_file():
            return
        try:
            ck = store.load_state(ckpt_path, map_location=self.device)
        except store.CorruptCheckpoint as e:
            raise store.CorruptCheckpoint(f"{e}; delete {ckpt_path} to restart this run from step 0, or "
                                          f"{self.record.damaged_hint()}") from None
        self.model.load_state_dict(ck["model"])
        self.reg.load_state_dict(ck["regularizer"])
        self.opt.load_state_dict(ck["optimizer"])
        self.state.update({k: (v.item() if isinstance(v, torch.Tensor) else v) for k, v in ck["state"].items()})
        best = ck.get("best_model")
        self.best_model = None if best is None else {k: v.cpu() for k, v in best.items()}
        self.perm = ck["perm"].cpu()
        self.gen = torch.Generator()
        self.gen.set_state(ck["gen_state"].cpu())
        torch.set_rng_state(ck["torch_rng"].cpu())
        self.log(f"[regbench] resuming {self.record.name} at step {self.state['step']}/{self.total_steps}")

    def _clock(self) -> None:
        self.state["device_s"] = self.timer.seconds()
        self.state["wall_s"] += time.perf_counter() - self.t_call
        self.t_call = time.perf_counter()

    def checkpoint_due(self) -> bool:
        """A checkpoint every `ckpt_minutes` of wall time (and every `ckpt_every` steps when set): a host
        clock read, no device sync."""
        every = self.cfg.ckpt_every
        if every is not None and self.state["step"] % every == 0:
            return True
        return time.perf_counter() - self.t_ckpt >= 60.0 * float(self.cfg.ckpt_minutes)

    def checkpoint(self) -> None:
        """Everything a resumed run needs to continue bit-identically, written atomically."""
        self.t_ckpt = time.perf_counter()
        self._clock()
        self.guard.check()
        ck = {"model": self.model.state_dict(), "regularizer": self.reg.state_dict(),
              "optimizer": self.opt.state_dict(), "state": dict(self.state), "perm": self.perm,
              "gen_state": self.gen.get_state(), "torch_rng": torch.get_rng_state()}
        if self.best_model is not None:
            ck["best_model"] = self.best_model
        store.atomic_torch_save(self.record.checkpoint_path, ck)
