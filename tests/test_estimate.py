"""`bench estimate`: the step-time part agrees with a real run's recorded device seconds, the suite
part reads forward counts from records, and the printed arithmetic is exactly its parts."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

import attacks
from bench.app import estimate as est
from bench.cli import build_parser
from bench.cli.sweep import spec_from_args
from bench.core.config import build_config
from bench.engine.trainer import train

ROOT = Path(__file__).resolve().parent.parent
SMALL_SUITE = "estimate_test"


@pytest.fixture(autouse=True)
def _small_suite():
    attacks.register_suite(SMALL_SUITE, [("clean", {}), ("gaussian_noise", {"n": 32})])
    yield
    attacks.SUITES.unregister(SMALL_SUITE)


@pytest.fixture(autouse=True)
def _own_calibration_cache(tmp_path, monkeypatch):
    # the estimate caches its per-device calibration under $XDG_CACHE_HOME/regbench: not the user's here
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))


def _args(out, regs="none", seeds="0-1", extra=()):
    return spec_from_args(build_parser().parse_args(["estimate", "--preset", "tiny", "--regularizers", regs, "--seeds", seeds,
                                      "--out", str(out), "--set", f"suite={SMALL_SUITE}", *extra]))


def test_estimate_matches_a_measured_run_and_reads_records(tmp_path):
    out = tmp_path / "results"
    cfg = build_config("tiny", {"out": str(out), "progress": False, "suite": SMALL_SUITE})
    run = train(cfg, log=lambda *a: None)
    ctx = attacks.context_for_run(run, progress=False)
    attacks.evaluate(ctx, suite=SMALL_SUITE, run_dir=run, log=lambda *a: None)
    rec = __import__("json").loads((run / "metrics.json").read_text())
    recorded_step_s = rec["train"]["device_s"] / rec["train"]["steps"]

    e = est.estimate(_args(out), log=lambda *a: None, measure_steps=4, warmup_steps=1)
    (row,) = e["rows"]  # seeds 0-1 of `none`, no surrogate in this suite
    assert row["jobs"] == 2 and row["steps"] == rec["train"]["budget_steps"] == 8
    # the same trainer, model and batch on the same machine: within a generous factor (shared CPU)
    assert recorded_step_s / 5 < row["step_s"] < recorded_step_s * 5
    # the suite's forward counts come from the record: clean is 1 forward per image, noise one per std
    tests = e["suite"]["fashion_mnist"]["tests"]
    assert tests["clean"]["source"].startswith("record") and tests["clean"]["forward_images_per_image"] == 1.0
    n_std = len(rec["suite"]["gaussian_noise"]["result"]["curves"]["accuracy"]["x"]) \
        if "curves" in rec["suite"]["gaussian_noise"]["result"] else 10
    assert tests["gaussian_noise"]["forward_images_per_image"] == n_std
    assert tests["gaussian_noise"]["images"] == 32 and tests["clean"]["images"] == len(ctx.x)


def test_estimate_arithmetic_is_its_printed_parts(tmp_path):
    e = est.estimate(_args(tmp_path / "empty", regs="none,pixel_sim", seeds="0-2",
                           extra=["--set", "reg_params.n_images=64"]),
                     log=lambda *a: None, measure_steps=2, warmup_steps=1)
    rows = {r["regularizer"]: r for r in e["rows"]}
    assert set(rows) == {"none", "pixel_sim"} and all(r["jobs"] == 3 for r in rows.values())
    for r in e["rows"]:
        assert r["train_s"] == r["jobs"] * r["steps"] * r["step_s"]
        assert r["suite_total_s"] == r["jobs"] * r["suite_s"]
        assert r["total_s"] == r["train_s"] + r["suite_total_s"]
    assert e["train_s"] == sum(r["train_s"] for r in e["rows"])
    assert e["total_s"] == e["train_s"] + e["suite_s"] and e["jobs"] == 6
    suite = e["suite"]["fashion_mnist"]
    for t in suite["tests"].values():  # no records here: measured on a tiny run
        assert t["source"].startswith("tiny run")
        assert t["seconds"] == t["forward_images"] / suite["forward_rate"]
    assert suite["seconds_per_run"] == pytest.approx(sum(t["seconds"] for t in suite["tests"].values()))
    # the printed lines carry the same numbers: jobs x steps x step time = seconds
    text = est.format_estimate(e)
    lines = re.findall(r"(\S+)/fashion_mnist\s+(\d+) x (\d+) x ([\d.]+) s = ([\d.]+) s", text)
    assert {m[0] for m in lines} == {"none", "pixel_sim"}
    for name, jobs, steps, step_s, total in lines:
        assert int(jobs) * int(steps) * float(step_s) == pytest.approx(float(total), abs=2e-3 + 1e-6 * float(total))
        assert float(total) == pytest.approx(rows[name]["train_s"], abs=1e-3)
    m = re.search(r"total: ([\d.]+) s", text)
    assert float(m.group(1)) == pytest.approx(e["total_s"], abs=1e-3)


def test_estimate_cli_rejects_unknown_regularizer():
    r = subprocess.run([sys.executable, "-m", "bench", "estimate", "--preset", "tiny", "--regularizers", "nope"],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "nope" in r.stderr and "pixel_sim" in r.stderr
