"""Runs per hour packed on one device vs one at a time, and aten ops per training step (issue 22).

Packed: k runs of `none` (seeds 0..k-1) at width 0.25 (16 base channels), batch 64, trained by
`bench.engine.packed.PackedTrainer` (one vmapped forward/backward for all k) vs the same k runs' steps
taken one run after another by their own `Trainer`s. Both sides take the same number of optimizer
steps per run; the ratio is (k runs' steps one at a time) / (k runs' steps packed) seconds, i.e. the
factor by which packing multiplies runs per hour on this device. Timed side by side (the shared
`paired` fixture). The GPU figures (k = 1, 4, 16 at width 1) come from benchmarks/gpu_check.sh.

Ops: aten ops dispatched per training step (`bench.engine.opcount`), now vs the per-tensor SGD loop and
step-by-step draws the trainer used before issue 22, for `none` and `pixel_sim` with the reference's separate
forwards; and the compiled step's top-level aten ops (profiler) vs eager.

Run: python -m pytest benchmarks/bench_packed.py --benchmark-only -s
"""
from __future__ import annotations

import os

import pytest
import torch
from conftest import record

from bench.core.config import build_config
from bench.engine.opcount import ready_trainer, step_ops
from bench.engine.packed import PackedTrainer

ROUNDS = int(os.environ.get("REGBENCH_BENCH_ROUNDS", "3"))
STEPS = 4


def _cfg(tmp_path, seed, **kw):
    over = dict(out=str(tmp_path / "r"), progress=False, width=0.25, batch_size=64, n_train=1024, seed=seed)
    over.update(kw)
    return build_config("tiny", over)


@pytest.mark.parametrize("k", [1, 2, 4])
def test_packed_vs_one_at_a_time(benchmark, paired, tmp_path, k):
    cfgs = [_cfg(tmp_path, s) for s in range(k)]
    pt = PackedTrainer(cfgs, log=lambda *a: None)
    pt.setup(pt.members)
    alone = [ready_trainer(c) for c in cfgs]
    step = [0]

    def packed():
        for _ in range(STEPS):
            pt._step(pt.members, step[0])
            step[0] += 1

    def one_at_a_time():
        for t in alone:
            for _ in range(STEPS):
                t.step()

    ratio, f, r = paired(packed, one_at_a_time, rounds=ROUNDS)
    record(benchmark, f"packed_runs_per_hour_ratio_k{k}_w0.25", ratio, goal=None, unit="x",
           packed_s_per_step=round(f / STEPS, 4), alone_s_per_step_all_k=round(r / STEPS, 4))


@pytest.mark.parametrize("reg,extra", [("none", {}), ("pixel_sim", dict(reg_forward="separate",
                                                                       reg_params={"n_images": 256,
                                                                                   "pairs_per_step": 16}))])
def test_aten_ops_per_step(benchmark, tmp_path, reg, extra):
    """Dispatched aten ops per step with the paper's crop + flip, width 1: before issue 22 (per-tensor SGD,
    draws made step by step) vs now (multi-tensor SGD, the epoch's draws made at its start)."""
    cfg = _cfg(tmp_path, 0, regularizer=reg, width=1.0, augment="crop_flip", **extra)
    counts = {}
    for now in (False, True):
        t = ready_trainer(cfg)
        t.ahead = t.ahead and now
        for g in t.opt.param_groups:
            g["foreach"] = now
        t.step()
        counts[now] = step_ops(t, 1).total
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    record(benchmark, f"aten_ops_per_step_{reg}", counts[True], unit="ops", before=counts[False])


def _top_level_aten(prof) -> int:
    """aten ops the profiler saw called from outside any other aten op (what the host dispatches)."""
    n = 0
    for e in prof.events():
        if e.name.startswith("aten::"):
            p = e.cpu_parent
            while p is not None and not p.name.startswith("aten::"):
                p = p.cpu_parent
            n += p is None
    return n


def test_aten_ops_per_step_compiled(benchmark, tmp_path):
    """`--compile` (forwards + CE + penalty as one inductor graph) vs eager, `pixel_sim` separate forwards,
    width 1: top-level aten ops per step from the profiler (a dispatch mode cannot see inside a compiled
    graph; its kernels are inductor's own). The first compiled step (compilation, ~1 min) is not counted."""
    from torch.profiler import ProfilerActivity, profile
    cfg = _cfg(tmp_path, 0, regularizer="pixel_sim", width=1.0, augment="crop_flip", reg_forward="separate",
               reg_params={"n_images": 256, "pairs_per_step": 16})
    counts = {}
    for comp in (False, True):
        t = ready_trainer(cfg.replace(compile=comp))
        t.step()
        t.step()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            t.step()
        counts[comp] = _top_level_aten(prof)
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    record(benchmark, "aten_ops_per_step_pixel_sim_compiled", counts[True], unit="ops", eager=counts[False])
