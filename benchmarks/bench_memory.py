"""Memory: peak RSS of `python -m bench run --preset demo --no-eval`, and of the regularizers' target
similarities at N = 5000 and N = 50000 regularization images, as an N x N matrix vs the on-the-fly
pair targets (`regularizers.targets.PairTargets`: unit embeddings, one dot product per drawn pair).

Each figure comes from a fresh subprocess (peak RSS is a process-lifetime maximum): the run via
`resource.getrusage(RUSAGE_CHILDREN)` of a wrapper whose only child is the run; the targets via
/proc/self/status VmHWM, reported as the increase over the process's peak after imports and images.
The N = 50000 matrix (N^2 float64 = 20 GB) is not allocated: its size is given by arithmetic.
No goal is set in the issue for these: the table reports the figures."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from conftest import bench_threads, record

ROOT = Path(__file__).resolve().parent.parent
K_PAIRS = 16  # pairs per step (the default)

_TARGETS_SCRIPT = textwrap.dedent("""
    import json, sys
    import torch
    from regularizers import targets

    def hwm_mb():
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmHWM in /proc/self/status")

    n, mode = int(sys.argv[1]), sys.argv[2]
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 1, 32, 32), generator=g, dtype=torch.uint8)  # the task's uint8 size
    base = hwm_mb()
    if mode == "matrix":
        S = targets.pixel_similarity(images)  # what a precomputed N x N target costs
        check = float(S[0, 1])
    else:
        pt = targets.PairTargets(embeddings=targets.pixel_embeddings(images))
        for _ in range(100):  # 100 steps of drawn pairs
            i, j = pt.sample(%d, g)
            t = pt(i, j)
        check = float(t[0])
    peak = hwm_mb()
    print(json.dumps({"base_mb": base, "peak_mb": peak, "delta_mb": peak - base, "check": check}))
""" % K_PAIRS)


def _env():
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = str(bench_threads())
    env["TQDM_DISABLE"] = "1"
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _targets_peak(n: int, mode: str) -> dict:
    r = subprocess.run([sys.executable, "-c", _TARGETS_SCRIPT, str(n), mode], cwd=ROOT, env=_env(),
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_peak_rss_demo_run(benchmark, tmp_path):
    wrapper = ("import resource, subprocess, sys\n"
               "r = subprocess.run(sys.argv[1:])\n"
               "print('MAXRSS_KB', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, r.returncode)\n")
    cmd = [sys.executable, "-c", wrapper, sys.executable, "-m", "bench", "run", "--preset", "demo", "--no-eval",
           "--no-progress", "--out", str(tmp_path)]
    out = {}

    def go():
        r = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=1800)
        line = [ln for ln in r.stdout.splitlines() if ln.startswith("MAXRSS_KB")][-1]
        _, kb, rc = line.split()
        assert int(rc) == 0, r.stderr[-2000:]
        out["mb"] = int(kb) / 1024  # Linux: ru_maxrss in kB

    benchmark.pedantic(go, rounds=1, iterations=1)
    run = next(tmp_path.glob("none-*"))
    assert (run / "model.pt").is_file()
    record(benchmark, "peak_rss_demo_run_mb", out["mb"], unit="MB", goal=None, met=None,
           command="python -m bench run --preset demo --no-eval")


def test_target_memory_matrix_vs_pairs(benchmark):
    res = {}

    def go():
        res["m5k"] = _targets_peak(5000, "matrix")
        res["p5k"] = _targets_peak(5000, "pairs")
        res["p50k"] = _targets_peak(50000, "pairs")

    benchmark.pedantic(go, rounds=1, iterations=1)
    m5k, p5k, p50k = res["m5k"]["delta_mb"], res["p5k"]["delta_mb"], res["p50k"]["delta_mb"]
    matrix_5k_mb = 5000 ** 2 * 8 / 2 ** 20
    matrix_50k_mb = 50000 ** 2 * 8 / 2 ** 20
    assert m5k >= 0.9 * matrix_5k_mb  # the matrix really was materialised
    assert p50k < 0.1 * matrix_50k_mb
    record(benchmark, "target_rss_matrix_n5000_mb", m5k, unit="MB", note="N x N float64 pixel similarity")
    record(benchmark, "target_rss_pairs_n5000_mb", p5k, unit="MB", note="PairTargets embeddings, 100 steps x 16 pairs")
    record(benchmark, "target_rss_pairs_n50000_mb", p50k, unit="MB", note="PairTargets embeddings, 100 steps x 16 pairs")
    record(benchmark, "target_matrix_n50000_mb_arithmetic", matrix_50k_mb, unit="MB",
           note="not allocated: 50000^2 float64")
    record(benchmark, "target_memory_saving_n5000", m5k / max(p5k, 1e-9), unit="x",
           note="matrix / on-the-fly peak increase")
    record(benchmark, "target_memory_saving_n50000", matrix_50k_mb / max(p50k, 1e-9), unit="x",
           note="matrix by arithmetic / on-the-fly measured")
