"""Sweeps: expansion and the identical-budget rule, failure reporting, resume after a killed sweep,
and many processes writing records into one results folder at once."""
import json
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.core import store
from bench.cli import build_parser, main
from bench.app.jobs import JobSpec, is_complete, job_state, read_status
from bench.app.launch_local import LocalLauncher
from bench.app.launchers import run_jobs
from bench.app.sweep import parse_seeds, plan_sweep, split_sets
from bench.cli.sweep import spec_from_args

ROOT = Path(__file__).resolve().parent.parent
from conftest import SWEEP_TINY as TINY  # noqa: E402  (tests/ is on sys.path; the `smoke` fixture lives there too)


def sweep_args(tmp_path, *extra):
    """The SweepSpec of a `bench sweep` command line (the CLI parses; the library takes the spec)."""
    return spec_from_args(build_parser().parse_args(["sweep", *TINY, "--out", str(tmp_path / "res"), *extra]))


# ----------------------------------------------------------------------------- expansion and rules
def test_parse_seeds():
    assert parse_seeds("0-4") == [0, 1, 2, 3, 4]
    assert parse_seeds("0,2,5") == [0, 2, 5]
    assert parse_seeds("0-2,7,1") == [0, 1, 2, 7]
    for bad in ("", "a", "3-1", "1-"):
        with pytest.raises(ValueError, match="--seeds"):
            parse_seeds(bad)


def test_plan_one_job_per_regularizer_seed_dataset_with_one_budget(tmp_path):
    import regularizers
    regs = regularizers.available()
    args = sweep_args(tmp_path, "--regularizers", ",".join(regs), "--seeds", "0-2", "--datasets", "fashion_mnist,mnist")
    plan = plan_sweep(args)
    runs = plan.runs
    assert len(runs) == len(regs) * 3 * 2
    assert len({s.run_dir for s in plan.specs}) == len(plan.specs)  # every record exactly once
    assert {(s.config["regularizer"], s.config["seed"], s.config["dataset"]) for s in runs} == {
        (r, s, d) for r in regs for s in range(3) for d in ("fashion_mnist", "mnist")}
    from bench.core.config import RunConfig
    for ds in ("fashion_mnist", "mnist"):
        keys = {RunConfig.from_dict(s.config).comparison_key() for s in runs if s.config["dataset"] == ds}
        assert len(keys) == 1
    # surrogates (when the suite needs one) come first: one per seed block (seed 1000 + s, trained on the
    # block's data), and every run of that block waits for its own
    surs = [s for s in plan.specs if s.kind == "surrogate"]
    assert len(surs) == 3 * 2
    for s in surs:
        assert s.config["regularizer"] == "none" and s.config["seed"] == s.config["surrogate_seed"]
        block = s.config["seed"] - 1000
        assert s.config["data_seed"] == block
        mine = [r for r in runs if r.config["dataset"] == s.config["dataset"] and r.config["seed"] == block]
        assert mine and all(r.deps == [s.id] for r in mine)
        assert all(RunConfig.from_dict(r.config).effective_data_seed == block for r in mine)
    assert plan.specs[:len(surs)] == surs
    # a fixed surrogate seed and data seed: one surrogate for every block
    plan = plan_sweep(sweep_args(tmp_path, "--regularizers", "none,pixel_sim", "--seeds", "0-2",
                                 "--set", "surrogate_seed=1000", "--set", "data_seed=0"))
    surs = [s for s in plan.specs if s.kind == "surrogate"]
    assert len(surs) == 1 and all(r.deps == [surs[0].id] for r in plan.runs)
    assert {RunConfig.from_dict(r.config).effective_data_seed for r in plan.runs} == {0}


def test_sweep_refuses_mixed_budgets_and_bad_names(tmp_path):
    with pytest.raises(ValueError, match="same budget and protocol"):
        split_sets(["pixel_sim.epochs=3"], ["none", "pixel_sim"])
    with pytest.raises(ValueError, match="same budget and protocol"):
        split_sets(["none.suite=paper"], ["none", "pixel_sim"])
    with pytest.raises(ValueError, match="--regularizers / --seeds"):
        split_sets(["seed=3"], ["none"])
    glob, common, per = split_sets(["epochs=2", "reg_params.alpha=5", "none.alpha=0"], ["none"])
    assert glob == ["epochs=2"] and common == {"alpha": 5} and per == {"none": {"alpha": 0}}
    with pytest.raises(KeyError, match="valid names: .*none"):
        plan_sweep(sweep_args(tmp_path, "--regularizers", "none,nonexistent_reg"))
    with pytest.raises(ValueError, match="unknown config key"):
        plan_sweep(sweep_args(tmp_path, "--set", "nonexistent_key=1"))
    # the baseline's seed must not be the transfer surrogate's seed (only when the suite has a transfer test)
    from bench.app.pipeline import suite_needs_surrogate
    if suite_needs_surrogate("quick"):
        with pytest.raises(ValueError, match="surrogate"):
            plan_sweep(sweep_args(tmp_path, "--seeds", "0,1000", "--set", "surrogate_seed=1000",
                                  "--set", "data_seed=0"))
        # per-block surrogates (the default): seed 1000's block has its own surrogate (seed 2000), and
        # block 0's surrogate (seed 1000) trains on block 0's data, so it is not the seed-1000 run
        plan = plan_sweep(sweep_args(tmp_path, "--seeds", "0,1000"))
        assert len({s.run_dir for s in plan.specs}) == len(plan.specs)
    # the CLI turns these into a one-line error with exit code 2
    assert main(["sweep", *TINY, "--out", str(tmp_path / "r"), "--set", "none.epochs=9"]) == 2


# ----------------------------------------------------------------------------- failures
def test_failed_job_is_reported_with_log_and_others_go_on(tmp_path, capsys):
    from bench.core.config import build_config
    good = build_config("tiny", dict(out=str(tmp_path / "res"), n_train=128, n_test=64, progress=False))
    bad = good.replace(dataset=f"folder:{tmp_path / 'no_such_folder'}")
    mk = lambda c, i, deps=(): JobSpec(id=i, kind="surrogate", config=c.to_dict(),  # noqa: E731
                                       run_dir=str(store.run_dir_for(c)), deps=list(deps))
    specs = [mk(bad, "bad"), mk(bad.replace(seed=1), "after-bad", ["bad"]), mk(good, "good")]
    res = run_jobs(specs, LocalLauncher(workers=1, threads=2), log=print)
    assert res["good"]["state"] == "done" and is_complete(specs[2])
    assert res["bad"]["state"] == "failed" and "no_such_folder" in res["bad"]["error"]
    log = Path(res["bad"]["log"])
    assert log.is_file() and "Traceback" in log.read_text() and log.parent == Path(specs[0].run_dir)
    assert read_status(Path(specs[0].run_dir))["state"] == "failed"
    assert res["after-bad"]["state"] == "failed" and "dependency bad failed" in res["after-bad"]["error"]
    assert not Path(specs[1].run_dir, "job.log").exists()  # never started
    out = capsys.readouterr().out
    assert "FAILED" in out and str(log) in out
    assert job_state(specs[0])[0] == "failed" and job_state(specs[2])[0] == "done"


# ----------------------------------------------------------------------------- kill and resume
def test_killed_sweep_resumes_without_redoing_finished_runs(tmp_path, smoke):
    out = tmp_path / "res"
    cmd = [sys.executable, "-m", "bench", "sweep", "--regularizers", "none", "--seeds", "0-1", *smoke,
           "--out", str(out), "--workers", "1", "--no-leaderboard"]
    env = dict(os.environ, OMP_NUM_THREADS="2")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    first = None
    try:
        deadline = time.time() + 120
        while time.time() < deadline and first is None and proc.poll() is None:
            for st in out.glob("*/job_status.json"):
                with open(st) as f:
                    if json.load(f)["state"] == "done":
                        first = st.parent
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the sweep's own process group, started above
        proc.wait()
    assert first is not None, proc.stderr.read().decode()[-2000:]
    plan = plan_sweep(spec_from_args(build_parser().parse_args(["sweep", "--regularizers", "none", "--seeds", "0-1",
                                                                *smoke, "--out", str(out)])))
    assert [s.kind for s in plan.specs] == ["surrogate", "surrogate", "run", "run"]  # a surrogate per block
    before = {s.id: job_state(s)[0] for s in plan.specs}
    assert "running" not in before.values()  # a killed job shows as stale, not as running
    done_before = {s.run_dir: (Path(s.run_dir, "model.pt").stat().st_mtime_ns,
                               Path(s.run_dir, "train_log.jsonl").read_text(),
                               Path(s.run_dir, "job.log").read_text())
                   for s in plan.specs if before[s.id] == "done"}
    assert str(first) in done_before and len(done_before) < len(plan.specs)
    assert main(["sweep", "--regularizers", "none", "--seeds", "0-1", *smoke, "--out", str(out),
                 "--no-leaderboard"]) == 0
    for s in plan.specs:
        assert job_state(s)[0] == "done" and is_complete(s)
    for run_dir, (mtime, tlog, jlog) in done_before.items():
        assert Path(run_dir, "model.pt").stat().st_mtime_ns == mtime
        assert Path(run_dir, "train_log.jsonl").read_text() == tlog
        assert Path(run_dir, "job.log").read_text() == jlog  # the job was not even started again
    assert len(store.find_records(out)) == len(plan.specs)


# ----------------------------------------------------------------------------- concurrent writers
def _writer(root, shared, i, n, barrier):
    from bench.core import store as st
    barrier.wait()
    for k in range(n):
        run = Path(root) / f"w{i}-r{k}"
        st.atomic_write_json(run / "config.json", {"writer": i, "k": k, "pad": "x" * 20000})
        st.merge_metrics(run, {"train": {"done": True, "k": k}})
        st.merge_metrics(shared, {f"w{i}-{k}": {"writer": i, "k": k, "pad": "y" * 2000}})
        st.atomic_write_json(Path(shared) / "job_status.json", {"writer": i, "k": k})


def test_eight_processes_write_records_into_one_folder_without_loss(tmp_path):
    root, shared, n = tmp_path / "res", tmp_path / "res" / "shared-run", 6
    ctx = mp.get_context("fork")  # the writers touch no torch state; fork keeps the test fast
    barrier = ctx.Barrier(8)
    procs = [ctx.Process(target=_writer, args=(str(root), str(shared), i, n, barrier)) for i in range(8)]
    for p in procs:
        p.start()
    reads = 0
    while any(p.is_alive() for p in procs):  # a reader never sees half a file
        f = shared / "metrics.json"
        if f.is_file():
            json.loads(f.read_text())
            reads += 1
    for p in procs:
        p.join()
        assert p.exitcode == 0
    recs = [r for r in store.find_records(root)]
    assert len(recs) == 8 * n
    for r in recs:
        assert json.loads((r / "config.json").read_text())["pad"] == "x" * 20000
        assert json.loads((r / "metrics.json").read_text())["train"]["done"] is True
    merged = json.loads((shared / "metrics.json").read_text())
    assert set(merged) == {f"w{i}-{k}" for i in range(8) for k in range(n)}
    json.loads((shared / "job_status.json").read_text())
    assert not list(root.glob("**/*.tmp"))  # no temporary file left behind


def test_training_does_not_wait_for_the_surrogate(tmp_path, smoke):
    """Runs that need the surrogate only to evaluate are trained by jobs with no dependency; their own
    jobs (evaluation) wait for the training and the surrogate. Trained records need no training job."""
    from bench.app.sweep_run import TRAIN_SUFFIX, split_training
    plan = plan_sweep(spec_from_args(build_parser().parse_args(
        ["sweep", "--regularizers", "none", "--seeds", "0-1", *smoke, "--out", str(tmp_path / "r"),
         "--set", "surrogate_seed=1000"])))  # one surrogate for both seeds (the default is one per seed block)
    jobs = split_training(plan.specs)
    assert [j.kind for j in jobs] == ["surrogate", "train", "train", "run", "run"]
    sur = jobs[0].id
    for t, r in zip(jobs[1:3], jobs[3:]):
        assert t.deps == [] and not t.evaluate and t.run_dir == r.run_dir and t.id == r.id + TRAIN_SUFFIX
        assert r.deps == [sur, t.id] and r.evaluate
    assert [s.deps for s in plan.runs] == [[sur], [sur]]  # the plan itself is unchanged
    Path(plan.runs[0].run_dir).mkdir(parents=True)
    Path(plan.runs[0].run_dir, "model.pt").write_bytes(b"x")
    Path(plan.runs[0].run_dir, "metrics.json").write_text(json.dumps({"train": {"done": True}}))
    from bench.core.records import Record
    assert Record(plan.runs[0].run_dir).is_trained()
    assert [j.kind for j in split_training(plan.specs)] == ["surrogate", "train", "run", "run"]
    train_only = [s for s in plan.specs if s.kind == "run"]
    for s in train_only:
        s.evaluate = False
    assert [j.kind for j in split_training(plan.specs)] == ["surrogate", "run", "run"]


def test_sweep_pack_trains_runs_together_into_their_own_records(tmp_path, smoke):
    from bench.app.sweep_run import split_training
    out = tmp_path / "res"
    args = ["sweep", "--regularizers", "none", "--seeds", "0-1", *smoke, "--out", str(out), "--set", "surrogate_seed=1000"]
    plan = plan_sweep(spec_from_args(build_parser().parse_args(args)))
    jobs = split_training(plan.specs, pack=2)
    assert [j.kind for j in jobs] == ["surrogate", "pack", "run", "run"]
    assert [c["seed"] for c in jobs[1].pack] == [0, 1] and all(jobs[1].id in r.deps for r in jobs[2:])
    assert main(args + ["--pack", "2", "--workers", "1", "--no-leaderboard"]) == 0
    for s in plan.runs:
        assert is_complete(s)
        assert json.loads(Path(s.run_dir, "metrics.json").read_text())["train"]["packed"] == 2
    assert main(args + ["--pack", "0", "--no-leaderboard"]) != 0
