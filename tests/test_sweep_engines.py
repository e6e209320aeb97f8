"""A tiny sweep through the real engines: local Ray (num_cpus=2) and submitit's local executor.
Every record must exist exactly once (one folder, one run of its job) and the leaderboard must
have every row. SLURM itself cannot run here: a fake `sbatch` shows what submitit sends it (one job
array for the jobs ready at once)."""
import json
import os
from pathlib import Path

import pytest

from bench.core import store
from bench.cli import build_parser, main
from bench.app.jobs import is_complete
from bench.app.sweep import plan_sweep
from bench.cli.sweep import spec_from_args

ROOT = Path(__file__).resolve().parent.parent


def check_sweep(out: Path, argv: list[str]):
    plan = plan_sweep(spec_from_args(build_parser().parse_args(["sweep", *argv])))
    recs = store.find_records(out)
    assert sorted(map(str, recs)) == sorted(s.run_dir for s in plan.specs)  # each record exactly once
    for s in plan.specs:
        assert is_complete(s), s.id
        assert json.loads(Path(s.run_dir, "job_status.json").read_text())["state"] == "done"
        # its job ran once; a run that needs the surrogate had its training launched apart (issue 22): two jobs
        runs = 2 if (s.kind == "run" and s.deps) else 1
        assert Path(s.run_dir, "job.log").read_text().count("\n===== ") == runs
    import leaderboard
    table = leaderboard.build_table(out)
    # one row per regularizer with every seed evaluated (a train-only surrogate has no suite metrics)
    evaluated = table[table["clean.accuracy|n"] == len(plan.seeds)]
    assert sorted(evaluated["regularizer"]) == sorted(plan.regularizers)
    assert (evaluated["transfer_fgsm.mean_accuracy|n"] == len(plan.seeds)).all()
    text = leaderboard.render(table, "md")
    for r in plan.regularizers:
        assert r in text
    return plan


def test_tiny_sweep_through_local_ray(tmp_path, smoke):
    import ray  # noqa: F401  (installed by scripts/install.sh: a missing engine fails, not skips)
    out = tmp_path / "res"
    argv = ["--regularizers", "none,pixel_sim", "--seeds", "0-1", *smoke, "--out", str(out)]
    assert main(["sweep", *argv, "--launcher", "ray", "--workers", "2", "--no-leaderboard"]) == 0
    check_sweep(out, argv)


def test_tiny_sweep_through_submitit_local_executor(tmp_path, smoke, capsys, monkeypatch):
    """Array mode (the default): the jobs ready at once go through one `executor.batch()`; on the local
    cluster each still runs as its own process, and every record comes out as with one submit per job."""
    import submitit
    from bench.app.launch_slurm import SubmititLauncher
    sizes, batches = [], []
    many, batch = SubmititLauncher.submit_many, submitit.AutoExecutor.batch

    def spy_many(self, specs):
        sizes.append(len(specs))
        return many(self, specs)

    def spy_batch(self, *a, **k):
        batches.append(1)
        return batch(self, *a, **k)
    monkeypatch.setattr(SubmititLauncher, "submit_many", spy_many)
    monkeypatch.setattr(submitit.AutoExecutor, "batch", spy_batch)
    out = tmp_path / "res"  # one seed: submitit's local executor starts a fresh interpreter per job
    argv = ["--regularizers", "none,pixel_sim", "--seeds", "0", *smoke, "--out", str(out)]
    assert main(["sweep", *argv, "--launcher", "slurm", "--slurm-cluster", "local", "--workers", "2",
                 "--slurm-param", "timeout_min=10", "--slurm-array", "--no-leaderboard"]) == 0
    assert "submitit (local" in capsys.readouterr().out
    # the surrogate and a run's training start together: one batch of 2 (never more than --workers)
    assert max(sizes) == 2 and len(batches) == sum(n >= 2 for n in sizes) >= 1
    check_sweep(out, argv)
    # re-running launches nothing: everything is complete
    assert main(["sweep", *argv, "--launcher", "slurm", "--slurm-cluster", "local", "--no-leaderboard"]) == 0
    assert "0 to run" in capsys.readouterr().out
    check_sweep(out, argv)


def _fake_slurm(tmp_path, monkeypatch) -> Path:
    """`srun` and `sbatch` on PATH (submitit only needs srun to exist and sbatch to answer with an id):
    sbatch appends its arguments to calls.txt, keeps a copy of the script it was given, answers 4242, 4243..."""
    bin_dir, seen = tmp_path / "bin", tmp_path / "sbatch_seen"
    bin_dir.mkdir()
    seen.mkdir()
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "sbatch").write_text(f'#!/bin/sh\necho "$@" >> {seen}/calls.txt\nn=$(($(wc -l < {seen}/calls.txt)))\n'
                                    f'cp "$1" {seen}/script_$n.sh\necho "Submitted batch job $((4241 + n))"\n')
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return seen


class _Submitted(Exception):
    """Raised by the first `wait`: the fake jobs never run, only their submission is checked."""


@pytest.mark.parametrize("workers,params,array,expect", [
    (2, {}, True, "0-2%2"),  # all 3 ready jobs in one array; --workers is its parallelism (SLURM's cap)
    (2, {"slurm_array_parallelism": 1}, True, "0-2%1"),  # --slurm-param wins
    (None, {"slurm_array_parallelism": 2}, True, "0-2%2"),
    (2, {}, False, None),  # --no-slurm-array: one sbatch per job, --workers caps the jobs in flight
])
def test_slurm_jobs_ready_at_once_go_out_as_one_array(tmp_path, monkeypatch, workers, params, array, expect):
    """With cluster "slurm" (a fake sbatch), the jobs `run_jobs` finds ready in one pass are one sbatch call
    whose script carries `#SBATCH --array=0-N%P`, written by submitit itself."""
    import submitit
    from bench.app.jobs import JobSpec
    from bench.app.launchers import make_launcher, run_jobs
    seen = _fake_slurm(tmp_path, monkeypatch)
    launcher = make_launcher("slurm", workers=workers, slurm_cluster="slurm", slurm_params=dict(params),
                             slurm_array=array, log_dir=tmp_path / "logs")
    assert launcher.executor.cluster == "slurm"
    submitted = []
    real = launcher.submit_many

    def spy(specs):
        submitted.append(real(specs))
        return submitted[-1]

    def stop(handles, timeout):
        raise _Submitted
    monkeypatch.setattr(launcher, "submit_many", spy)
    monkeypatch.setattr(launcher, "wait", stop)
    specs = [JobSpec(id=f"none/d/s{i}", kind="run", config={"regularizer": "none", "dataset": "d", "seed": i},
                     run_dir=str(tmp_path / f"run{i}")) for i in range(3)]
    later = JobSpec(id="late", kind="run", config={"regularizer": "none", "dataset": "d", "seed": 9},
                    run_dir=str(tmp_path / "late"), deps=[specs[0].id])  # waits for s0: in no first array
    lines = []
    with pytest.raises(_Submitted):
        run_jobs(specs + [later], launcher, log=lines.append)
    n = 3 if array else min(3, workers or 3)
    assert [ln.split(" (")[0] for ln in lines] == [f"[sweep] start none d s{i}" for i in range(n)]
    calls = (seen / "calls.txt").read_text().splitlines()
    scripts = [(seen / f"script_{i + 1}.sh").read_text() for i in range(len(calls))]
    assert len(submitted) == 1 and len(submitted[0]) == n  # one submit_many for the jobs ready at once
    if expect:
        assert len(calls) == 1  # one sbatch for all of them
        directives = [ln for ln in scripts[0].splitlines() if ln.startswith("#SBATCH --array")]
        assert directives == [f"#SBATCH --array={expect}"]
        assert "%A_%a" in scripts[0]  # each array task logs apart
        ids = [f"4242_{i}" for i in range(n)]
        assert launcher.params["slurm_array_parallelism"] == int(expect.split("%")[1])
    else:
        assert len(calls) == n and not any("--array" in s for s in scripts)
        assert "slurm_array_parallelism" not in launcher.params
        ids = [str(4242 + i) for i in range(n)]
    # each handle maps back to its spec (what `wait` reports), pickled with that spec and the thread count
    # SLURM gives it (cpus_per_task)
    assert [j.job_id for j in submitted[0]] == ids
    for job, spec in zip(submitted[0], specs):
        assert launcher._specs[job.job_id] is spec and spec.threads == 8
        assert submitit.helpers.DelayedSubmission.load(job.paths.submitted_pickle).args[0].id == spec.id


def test_slurm_array_flag_reaches_the_launcher(tmp_path, monkeypatch):
    """`--slurm-array` (default) / `--no-slurm-array`: through the SweepSpec to the launcher `bench sweep` makes."""
    from types import SimpleNamespace
    from bench.app.sweep_run import _launcher
    _fake_slurm(tmp_path, monkeypatch)
    for flags, array in (([], True), (["--slurm-array"], True), (["--no-slurm-array"], False)):
        spec = spec_from_args(build_parser().parse_args(["sweep", "--launcher", "slurm", "--slurm-cluster", "slurm",
                                                         *flags]))
        assert spec.slurm_array is array
        launcher = _launcher(spec, SimpleNamespace(specs=[]), tmp_path / "logs")
        assert launcher.array is array and ("job arrays" in launcher.describe()) is array
