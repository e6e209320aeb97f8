"""The fast step path on a CPU (issue 30): `step_path=fast` (channels_last + bf16 autocast, float32 loss and
penalty) vs `plain` (float32 NCHW), the trainer's own step (`bench.engine.opcount.ready_trainer`: the task
batch with its crop/flip draws, the regularizer's draws, the penalty, backward and SGD update), `pixel_sim`
at the paper's shapes (64 task + 32 regularization images), widths 0.25 and 1.0, alternating round by round
in one process. Goal (issue 30): >= 1.7x per step at width 0.25 on a CPU with native bf16.

Runs per CPU-hour of the `repro_cpu` preset at `--workers 2 --threads 1` follow from the step time: a run
is 376 steps of training plus the `repro_cpu` suite, which is float32 on both paths (the same seconds), so
runs/CPU-hour = 3600 / (376 x step seconds + suite seconds) per worker (one core each); the suite's seconds
come from REGBENCH_SUITE_S (default 95 s: the median of the study's records on this machine, benchmarks/
README.md). On a CPU without native bf16 (bf16 emulated: slower than float32) the figure is recorded with
`native_bf16: false`, and `step_path=auto` stays plain there.

Run: python -m pytest benchmarks/bench_fastpath.py --benchmark-only -s
"""
from __future__ import annotations

import os
import tempfile

import pytest
import torch
from conftest import record

from bench.core.config import build_config
from bench.core.device import cpu_native_bf16
from bench.engine.opcount import ready_trainer

ROUNDS = int(os.environ.get("REGBENCH_BENCH_ROUNDS", "5"))
REPRO_STEPS = 376  # repro_cpu: 4 epochs x 94 steps
SUITE_S = float(os.environ.get("REGBENCH_SUITE_S", "95"))


def trainer(width: float, path: str, out: str):
    cfg = build_config("repro_cpu", {"regularizer": "pixel_sim", "width": width, "out": out, "progress": False,
                                     "device": "cpu", "n_train": 2048},
                       [f"step_path={path}", "reg_params.n_images=1024"])
    t = ready_trainer(cfg)
    return t


@pytest.mark.parametrize("width", [0.25, 1.0])
def test_fast_vs_plain_step(paired, benchmark, width):
    native, how = cpu_native_bf16()
    torch.set_num_threads(1)  # the studies' workers run 1 thread each (the fixture restores the count)
    with tempfile.TemporaryDirectory() as tmp:
        plain, fast = trainer(width, "plain", tmp + "/p"), trainer(width, "fast", tmp + "/f")
        assert fast.path.fast and not plain.path.fast
        ratio, t_fast, t_plain = paired(fast.step, plain.step, rounds=ROUNDS)
    goal = 1.7 if width == 0.25 else None
    extra = dict(plain_s=round(t_plain, 4), fast_s=round(t_fast, 4), width=width, native_bf16=native,
                 bf16_detected_by=how, threads=torch.get_num_threads(), images_per_step=64 + 32)
    record(benchmark, f"fast_path_step_speedup_w{width:g}", ratio,
           goal=None if goal is None else f">= {goal}x on a CPU with native bf16",
           met=None if (goal is None or not native) else ratio >= goal, **extra)
    if width == 0.25:
        per_hour = {p: 2 * 3600 / (REPRO_STEPS * s + SUITE_S) for p, s in (("plain", t_plain), ("fast", t_fast))}
        record(None, "repro_cpu_runs_per_hour_fast_vs_plain", per_hour["fast"] / per_hour["plain"],
               goal="report", plain_runs_per_hour=round(per_hour["plain"], 2),
               fast_runs_per_hour=round(per_hour["fast"], 2), suite_s=SUITE_S, steps=REPRO_STEPS,
               workers=2, threads_per_worker=1, native_bf16=native,
               note="2 workers x 1 thread; the pixel_sim step time at width 0.25 times the budget, plus the suite")
