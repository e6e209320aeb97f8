"""The GPU check of issue 22 (run by benchmarks/gpu_check.sh; about 5-7 minutes on one H100/H200).

Prints, on synthetic CIFAR-shaped data (the device machine has no network; the step cost does not
depend on the pixel values):
  1. a paper-preset epoch (grayscale 32x32, ResNet18 width 64, batch 64, `pixel_sim` with the reference's
     per-forward batch statistics in one forward, 45 000 training images) from timed steps, for the plain
     step, the reference's three separate forwards and --compile (and --compile's agreement with eager);
  2. model FLOP utilisation: FLOPs of one step (torch.utils.flop_counter) / step time / bf16 dense peak;
  3. runs per hour packed (k = 1, 4, 16; bench.engine.packed) vs one at a time, paper budget;
  4. aten ops (dispatch mode) and CUDA kernel launches (profiler) per step;
  5. the paper suite's time from `bench estimate` (its own calibration; bounded to 150 s);
  6. CUDA vs CPU agreement on a small run: the same 20 steps' losses, the weights' relative distance,
     and suite draws (noise, generated corruptions) equal across devices.
`--smoke` runs every part at toy sizes on whatever device there is (a CPU check that the script runs).
"""
from __future__ import annotations

import argparse
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.core.config import build_config  # noqa: E402
from bench.core.data import DataBundle  # noqa: E402
from bench.engine.opcount import ready_trainer, step_ops  # noqa: E402
from bench.engine.packed import PackedTrainer  # noqa: E402

PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L40S": 362e12}


def synthetic(n_train: int, n_val: int = 512, n_test: int = 1024, channels: int = 1, seed: int = 0) -> DataBundle:
    g = torch.Generator().manual_seed(seed)
    mk = lambda n: torch.randint(0, 256, (n, channels, 32, 32), dtype=torch.uint8, generator=g)  # noqa: E731
    lab = lambda n: torch.randint(0, 10, (n,), generator=g)  # noqa: E731
    return DataBundle("cifar10", "gray", 10, mk(n_train), lab(n_train), mk(n_val), lab(n_val), mk(n_test), lab(n_test))


def sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def timed(fn, dev, n: int, warm: int) -> float:
    for _ in range(warm):
        fn()
    sync(dev)
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    sync(dev)
    return (time.perf_counter() - t0) / n


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--smoke", action="store_true")
    a = ap.parse_args()
    cuda = torch.cuda.is_available()
    dev = torch.device("cuda" if cuda else "cpu")
    smoke = a.smoke
    width, n_train, steps, warm = (0.125, 512, 2, 1) if smoke else (1.0, 45_000, 30, 10)
    ks = (1, 2) if smoke else (1, 4, 16)
    name = torch.cuda.get_device_name(0) if cuda else "CPU"
    print(f"== device: {name}; torch {torch.__version__}; smoke={smoke}")
    tmp = Path(tempfile.mkdtemp(prefix="regbench-gpucheck-"))
    data = synthetic(n_train)
    over = dict(out=str(tmp / "r"), progress=False, device=dev.type, width=width, n_train=None,
                regularizer="pixel_sim", reg_params={"n_images": 2048 if not smoke else 256})
    cfg = build_config("paper", over)
    spe = math.ceil(n_train / cfg.batch_size)

    # 1. paper-preset epoch time (plain and compiled)
    t = ready_trainer(cfg, data=data)
    step_s = timed(t.step, dev, steps, warm)
    print(f"1. paper-preset step (reg_forward=grouped) {step_s * 1e3:.2f} ms -> epoch ({spe} steps) "
          f"{step_s * spe:.1f} s; 40 epochs {step_s * spe * 40 / 60:.1f} min")
    ts = ready_trainer(cfg.replace(reg_forward="separate"), data=data)
    sep_s = timed(ts.step, dev, steps, warm)
    print(f"   reg_forward=separate (the reference's three forwards): step {sep_s * 1e3:.2f} ms "
          f"(grouped x{sep_s / step_s:.2f} faster)")
    del ts
    tc = None
    try:
        tc = ready_trainer(cfg.replace(compile=True), data=data)
        cstep = timed(tc.step, dev, steps, warm)
        print(f"   --compile: step {cstep * 1e3:.2f} ms -> epoch {cstep * spe:.1f} s (x{step_s / cstep:.2f})")
        # equal to eager? one step from the same state (weights, regularizer, step counter: the same draws)
        e1 = ready_trainer(cfg, data=data)  # tc keeps the graph it compiled; e1's state is copied into it
        tc.model.load_state_dict(e1.model.state_dict())
        tc.reg.load_state_dict(e1.reg.state_dict())
        tc.setup_optimizer()  # no momentum yet, step 0, the epoch's draws made again: e1's starting point
        tc.start_loop()
        before = {k: v.detach().clone() for k, v in e1.model.named_parameters()}
        e1.step()
        tc.step()
        sync(dev)
        le, lc = float(e1.running["loss"]), float(tc.running["loss"])
        upd = max(float((p.detach() - before[k]).abs().max()) for k, p in e1.model.named_parameters())
        diff = max(float((p.detach() - q.detach()).abs().max()) for (_, p), (_, q) in zip(e1.model.named_parameters(),
                                                                        tc.model.named_parameters()))
        print(f"   --compile vs eager, one step from one state: loss {lc:.5f} vs {le:.5f} (rel {abs(lc - le) / abs(le):.1e}); "
              f"weights differ by {diff:.2e} = {diff / max(upd, 1e-12):.1e} of the step's largest update")
    except Exception as e:  # noqa: BLE001 - report and go on
        print(f"   --compile failed: {type(e).__name__}: {str(e).splitlines()[0][:200]}")
    if cuda:  # no host sync inside the eager step (drawing ahead, pinned copies, guards read at log points)
        try:
            torch.cuda.set_sync_debug_mode("error")
            t.step()
            print("   eager step under cuda sync debug mode 'error': no host sync")
        except RuntimeError as e:
            print(f"   eager step synchronised with the host: {str(e).splitlines()[0][:200]}")
        finally:
            torch.cuda.set_sync_debug_mode("default")

    # 2. model FLOP utilisation
    from torch.utils.flop_counter import FlopCounterMode
    fc = FlopCounterMode(display=False)
    with fc:
        t.step()
    flops = fc.get_total_flops()
    peak = next((v for k, v in PEAK_BF16.items() if k in name), None)
    mfu = f"{flops / step_s / peak * 100:.1f}% of {peak / 1e12:.0f} TFLOP/s bf16 dense" if peak else "peak unknown"
    print(f"2. {flops / 1e9:.1f} GFLOP per step, {flops / step_s / 1e12:.2f} TFLOP/s achieved: MFU {mfu}")

    # 3. runs per hour, packed vs one at a time (none, paper budget 40 epochs)
    total_steps = 40 * spe
    base = cfg.replace(regularizer="none", reg_params={})
    alone = ready_trainer(base, data=data)
    one = timed(alone.step, dev, steps, warm)
    print(f"3. one at a time: {one * 1e3:.2f} ms/step -> {3600 / (one * total_steps):.2f} runs/hour")
    for k in ks:
        try:
            cfgs = [base.replace(seed=s) for s in range(k)]
            pt = PackedTrainer(cfgs, data=data, log=lambda *x: None)
            pt.setup(pt.members)
            st = [0]

            def packed_step():
                pt._step(pt.members, st[0])
                st[0] += 1
            ps = timed(packed_step, dev, max(2, steps // 2), warm)
            print(f"   packed k={k}: {ps * 1e3:.2f} ms/step -> {3600 * k / (ps * total_steps):.2f} runs/hour "
                  f"(x{one * k / ps:.2f} vs one at a time)")
            del pt
        except Exception as e:  # noqa: BLE001 - e.g. out of memory at k=16
            print(f"   packed k={k} failed: {type(e).__name__}: {str(e).splitlines()[0][:200]}")
        if cuda:
            torch.cuda.empty_cache()

    # 4. aten ops and kernel launches per step
    ops = step_ops(t, 1)
    launches = "n/a (no CUDA)"
    if cuda:
        from torch.profiler import ProfilerActivity, profile
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            t.step()
            sync(dev)
        launches = sum(1 for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA)
    print(f"4. pixel_sim paper step: {ops.total} aten ops, {launches} kernel launches")
    if tc is not None and cuda:
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            tc.step()
            sync(dev)
        n = sum(1 for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA)
        print(f"   --compile step: {n} kernels executed (CUDA graphs replay them from one launch)")

    # 5. the paper suite's time (bench estimate)
    cmd = [sys.executable, "-m", "bench", "estimate", "--preset", "paper", "--device", dev.type]
    try:
        r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=30 if smoke else 150)
        lines = [x for x in (r.stdout + r.stderr).splitlines() if x.strip()]
        print("5. bench estimate --preset paper:\n   " + "\n   ".join(lines[-12:]))
    except subprocess.TimeoutExpired:
        print("5. bench estimate --preset paper: did not finish within its time limit")

    # 6. CUDA vs CPU on a small run
    if cuda:
        small = build_config("tiny", dict(out=str(tmp / "s"), progress=False, width=0.25, n_train=None,
                                          dataset="cifar10", steps_per_epoch=20))
        d6 = synthetic(640, seed=1)
        runs = {}
        for dv in ("cpu", "cuda"):
            tr = ready_trainer(small.replace(device=dv), data=d6)
            losses = []
            for _ in range(20):
                tr.step()
                losses.append(float(tr.running["loss"]) / max(tr.running["n"], 1))
            runs[dv] = (losses, {k: v.detach().float().cpu() for k, v in tr.model.state_dict().items()})
        lc, lg = runs["cpu"][0], runs["cuda"][0]
        wc, wg = runs["cpu"][1], runs["cuda"][1]
        num = math.sqrt(sum(float((wc[k] - wg[k]).pow(2).sum()) for k in wc if wc[k].is_floating_point()))
        den = math.sqrt(sum(float(wc[k].pow(2).sum()) for k in wc if wc[k].is_floating_point()))
        print(f"6. tiny run, 20 steps: mean loss CPU {lc[-1]:.4f} vs CUDA {lg[-1]:.4f}; first-step loss "
              f"{lc[0]:.5f} vs {lg[0]:.5f}; weights' relative distance {num / den:.2e} (bf16 autocast on CUDA)")
        from attacks.corruptions import generate
        from attacks.noise import GaussianNoise
        x = torch.rand(64, 1, 32, 32, generator=torch.Generator().manual_seed(3))
        same_noise = torch.equal(GaussianNoise().draw(x, torch.Generator().manual_seed(5)),
                                 GaussianNoise().draw(x.cuda(), torch.Generator().manual_seed(5)).cpu())
        same_corr = all(torch.equal(generate(x, c, 3, 0), generate(x.cuda(), c, 3, 0).cpu())
                        for c in ("gaussian_noise", "glass_blur", "fog"))
        print(f"   suite draws equal on CUDA and CPU: noise {same_noise}, generated corruptions {same_corr}")
    else:
        print("6. CUDA vs CPU: no CUDA device")
    return 0


if __name__ == "__main__":
    sys.exit(main())
