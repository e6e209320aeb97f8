"""A tiny sweep through the real engines: local Ray (num_cpus=2) and submitit's local executor.
Every record must exist exactly once (one folder, one run of its job) and the leaderboard must
have every row."""
import json
from pathlib import Path


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


def test_tiny_sweep_through_submitit_local_executor(tmp_path, smoke, capsys):
    import submitit  # noqa: F401
    out = tmp_path / "res"  # one seed: submitit's local executor starts a fresh interpreter per job
    argv = ["--regularizers", "none,pixel_sim", "--seeds", "0", *smoke, "--out", str(out)]
    assert main(["sweep", *argv, "--launcher", "slurm", "--slurm-cluster", "local", "--workers", "2",
                 "--slurm-param", "timeout_min=10", "--no-leaderboard"]) == 0
    assert "submitit (local" in capsys.readouterr().out
    check_sweep(out, argv)
    # re-running launches nothing: everything is complete
    assert main(["sweep", *argv, "--launcher", "slurm", "--slurm-cluster", "local", "--no-leaderboard"]) == 0
    assert "0 to run" in capsys.readouterr().out
    check_sweep(out, argv)
