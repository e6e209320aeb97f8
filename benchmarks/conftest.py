"""Shared fixtures of the performance suite: `pytest benchmarks --benchmark-only`.

Not part of the test run: pyproject's `testpaths = ["tests"]` keeps `pytest` and
`python -m pytest -q tests` out of this folder, and only this conftest teaches pytest to collect the
`bench_*.py` files here. Every benchmark measures a *ratio* side by side in one process (the fast
path and its reference alternate round by round, so a machine shared with other work slows both
alike), stores it in pytest-benchmark's `extra_info`, prints it, and merges it into
`benchmarks/results.json` (the source of the README table) with the machine it came from.
"""
from __future__ import annotations

import json
import os
import platform
import statistics
import time
from pathlib import Path

import pytest
import torch

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results.json"


def pytest_collect_file(file_path, parent):
    # a file named on the command line is collected by pytest itself; do not add it twice
    if file_path.suffix == ".py" and file_path.name.startswith("bench_") and not parent.session.isinitpath(file_path):
        return pytest.Module.from_parent(parent, path=file_path)
    return None


def bench_threads() -> int:
    """Torch threads for the benchmarks: REGBENCH_BENCH_THREADS, else all cores, but 1 when the
    machine is already busy (1-minute load >= cores): an oversubscribed OpenMP pool makes small ops
    10-50x slower (measured here: 64-image crop/flip batches, 0.27 s/epoch on 1 thread vs 12.9 s on
    2 with the 2 cores loaded), which would measure the contention, not the code."""
    if os.environ.get("REGBENCH_BENCH_THREADS"):
        return int(os.environ["REGBENCH_BENCH_THREADS"])
    cores = os.cpu_count() or 1
    try:
        busy = os.getloadavg()[0] >= cores
    except OSError:
        busy = False
    return 1 if busy else cores


@pytest.fixture(autouse=True)
def _bench_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(bench_threads())
    os.environ.setdefault("TQDM_DISABLE", "1")
    yield
    torch.set_num_threads(before)


def machine() -> str:
    """One line naming the machine a figure came from."""
    from bench.app.estimate_calibration import cpu_name
    cpu = cpu_name()
    s = f"CPU: {os.cpu_count()} cores ({cpu}), torch {torch.__version__}, {torch.get_num_threads()} threads"
    if torch.cuda.is_available():
        s = f"GPU: {torch.cuda.get_device_name(0)}; " + s
    return s


def record(benchmark, key: str, value: float, goal: str | None = None, met: bool | None = None,
           unit: str = "x", **extra) -> dict:
    """Store a figure in the benchmark's extra_info, print it, and merge it into results.json."""
    entry = {"value": round(float(value), 4), "unit": unit, "goal": goal, "met": met, "machine": machine(),
             "device": "cuda" if torch.cuda.is_available() else "cpu",
             "when": time.strftime("%Y-%m-%d %H:%M:%S"), **extra}
    if benchmark is not None:
        benchmark.extra_info[key] = entry["value"]
        if goal:
            benchmark.extra_info[key + "_goal"] = goal
        for k, v in extra.items():
            if isinstance(v, (int, float, str, bool)):
                benchmark.extra_info[k] = v
    flag = "" if met is None else ("  [goal met]" if met else "  [goal NOT met]")
    print(f"\n[benchmark] {key}: {entry['value']:g} {unit}" + (f" (goal {goal})" if goal else "") + flag)
    try:
        from bench.core.store import atomic_write_json
        data = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
        data[key] = entry
        atomic_write_json(RESULTS, data)
    except (OSError, ValueError) as e:  # a read-only checkout still prints the figure
        print(f"[benchmark] could not write {RESULTS}: {e}")
    return entry


def _clock(fn) -> float:
    t0 = time.perf_counter()
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - t0


@pytest.fixture
def paired(benchmark):
    """paired(fast, reference, rounds=3, warmup=1) -> (ratio, fast_s, ref_s): median seconds of each
    over rounds that run the reference then the fast path back to back; pytest-benchmark times the
    pairs (its table shows one round = reference + fast)."""

    def run(fast, reference, rounds: int = 3, warmup: int = 1):
        for _ in range(warmup):
            fast()
            reference()
        t_fast, t_ref = [], []

        def one_round():
            t_ref.append(_clock(reference))
            t_fast.append(_clock(fast))

        benchmark.pedantic(one_round, rounds=rounds, iterations=1, warmup_rounds=0)
        f, r = statistics.median(t_fast), statistics.median(t_ref)
        benchmark.extra_info.update(fast_s=round(f, 4), reference_s=round(r, 4), rounds=len(t_fast))
        return r / f, f, r

    return run


@pytest.fixture(scope="session")
def fmnist_uint8():
    """(uint8 [N, 1, 32, 32] training images, where they came from): real Fashion-MNIST when it is
    installed, else seeded random images of the same shape."""
    from bench.core import data as bdata
    try:
        d = bdata.load("fashion_mnist", color="gray", image_size=32, n_train=10000, n_test=1000, download=False)
        return d.train_x, "Fashion-MNIST (real)"
    except bdata.DatasetNotFound:
        g = torch.Generator().manual_seed(0)
        return torch.randint(0, 256, (10000, 1, 32, 32), generator=g, dtype=torch.uint8), "random uint8"


@pytest.fixture(scope="session")
def small_trained():
    """(model in eval mode, test images float [0, 1], labels) of a briefly trained reference ResNet18
    at width 0.25 (16 base channels), 2 epochs on 2048 images (~73% test accuracy), so attacks see a
    model that predicts every class. Kept in the temp folder: the record's hash makes a rerun skip it."""
    import tempfile
    from bench.core import data as bdata
    from bench.core.config import build_config
    from bench.engine.trainer import train
    from bench.core.data import load_for_config
    from bench.core.records import Record
    out = Path(tempfile.gettempdir()) / "regbench-benchmark-models"
    cfg = build_config("tiny", {"width": 0.25, "n_train": 2048, "n_test": 512, "epochs": 2, "out": str(out),
                                "progress": False})
    run = train(cfg, log=lambda *a: None)
    _, model = Record(run).load_model()
    data = load_for_config(cfg)
    return model, bdata.to_float(data.test_x), data.test_y
