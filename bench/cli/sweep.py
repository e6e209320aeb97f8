"""`python -m bench sweep` and `python -m bench demo`: argument parsing only; the sweep itself is
`bench.app.sweep` (a `SweepSpec`). Imports nothing heavy at load time (`--help` stays instant)."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from bench.cli.common import CONFIRM_ABOVE_S, RUN_FIELDS, add_common_run_args, check_results_dir, hms
from bench.core.config import DEFAULT_PRESET, DEMO_WORKERS, parse_value
from bench.core.names import COMPARISON

CONFIRM_JOBS = 500  # bench.app.sweep.CONFIRM_JOBS (not imported: --help stays instant)

SWEEP_DOC = """Run a comparison: regularizers x seeds x datasets, through a launcher. Every job of a dataset gets
the same budget and suite; re-running runs only what is missing; --status shows done / running / failed."""


def spec_from_args(args):
    """The `SweepSpec` a sweep-like command line describes (`bench sweep`, `demo`, `estimate`, `run`)."""
    from bench.app.sweep import SweepSpec
    slurm = {}
    for item in getattr(args, "slurm_param", None) or []:
        if "=" not in item:
            raise ValueError(f"--slurm-param expects key=value, got {item!r}")
        k, v = item.split("=", 1)
        slurm[k] = parse_value(v)
    overrides = {k: getattr(args, k) for k in RUN_FIELDS if getattr(args, k, None) is not None}
    return SweepSpec(regularizers=args.regularizers, seeds=args.seeds, datasets=getattr(args, "datasets", None),
                     preset=args.preset or DEFAULT_PRESET, overrides=overrides, sets=list(args.set or []),
                     plugins=list(args.plugin or []), train_only=bool(getattr(args, "train_only", False)),
                     launcher=getattr(args, "launcher", "local"), workers=getattr(args, "workers", None),
                     threads=getattr(args, "threads", None), gpus_per_job=getattr(args, "gpus_per_job", None),
                     ray_address=getattr(args, "ray_address", None),
                     slurm_cluster=getattr(args, "slurm_cluster", None), slurm_params=slurm,
                     slurm_array=getattr(args, "slurm_array", True) is not False,
                     force=bool(getattr(args, "force", False)), yes=bool(getattr(args, "yes", False)),
                     pack=1 if getattr(args, "pack", None) is None else args.pack)


def checked_spec(args):
    """`spec_from_args`, every value checked before anything runs: the plan (names, seeds, datasets, the
    job count against `--yes`, workers, threads, hyper-parameters) and the results folder."""
    from bench.app.sweep import plan_sweep
    spec = spec_from_args(args)
    check_results_dir(spec.overrides.get("out") or "results")
    plan_sweep(spec)  # raises on anything invalid; cheap (bounded by MAX_JOBS)
    return spec


def sweep_preflight(args, spec, log=print) -> None:
    """Like `bench run`: the estimated device time of the jobs still to do, and a stop above an hour
    without --yes (`--no-estimate` skips it)."""
    from bench.app import estimate as est_mod
    from bench.app.jobs import is_complete
    from bench.app.sweep import plan_sweep
    pending = [s for s in plan_sweep(spec).specs if not is_complete(s)]
    if not pending or getattr(args, "no_estimate", False):
        return
    log("[sweep] estimating the time: timing a few train steps and a tiny suite run on this device ...")
    try:
        est = est_mod.estimate(spec, log=lambda m: None, measure_steps=4, warmup_steps=1, suite_images=8)
    except (ValueError, KeyError, OSError, RuntimeError) as e:  # no estimate is no reason not to run
        log(f"[sweep] no time estimate: {e}")
        return
    done = {s.id for s in plan_sweep(spec).specs} - {s.id for s in pending}
    share = len(pending) / max(1, len(pending) + len(done))
    total = float(est["total_s"]) * share
    log(f"[sweep] estimate on {est.get('device')}: {hms(total)} for {len(pending)} job(s) still to do "
        "(a rough figure from short timings, not a promise)")
    if total > CONFIRM_ABOVE_S and not getattr(args, "yes", False):
        from bench.cli import UserError
        raise UserError(f"this sweep is estimated at {hms(total)} (more than {hms(CONFIRM_ABOVE_S)}): add --yes "
                        "to run it, or choose a smaller --preset or fewer --seeds")


def cmd_sweep(args) -> int:
    from bench.app import api, sweep, sweep_report, sweep_run
    spec = checked_spec(args)
    if args.status:
        counts = sweep_report.print_status(sweep.plan_sweep(spec))
        return 0 if not counts.get("failed") else 1
    sweep_preflight(args, spec)
    plan, results = api.sweep(spec)
    code = sweep_run.summarize(plan, results)
    if spec.train_only:  # nothing evaluated, so no board: what was trained and the command that evaluates it
        train_only_summary(args, plan)
    elif not args.no_leaderboard:
        sweep_report.show_leaderboard([plan.out])
    return code


def train_only_summary(args, plan, log=print) -> None:
    """After `bench sweep --train-only`: how many runs (and surrogates) are trained and where, and the exact
    command that evaluates them (the same one without --train-only: trained runs are not trained again)."""
    from bench.core.records import Record
    runs = [s for s in plan.runs if Record(s.run_dir).is_trained()]
    surs = [s for s in plan.specs if s.kind == "surrogate" and Record(s.run_dir).is_trained()]
    log(f"[sweep] trained {len(runs)} of {len(plan.runs)} run(s) ({len(plan.regularizers)} regularizer(s) x "
        f"{len(plan.seeds)} seed(s) x {len(plan.datasets)} dataset(s))"
        + (f" and {len(surs)} surrogate(s)" if surs else "")
        + f", not evaluated (--train-only); records under {plan.out}")
    log(f"[sweep] evaluate them (no retraining) with: {evaluate_command(args)}")


def evaluate_command(args) -> str:
    """The sweep's command line without --train-only (or an abbreviation of it), as a shell line."""
    import shlex
    argv = getattr(args, "argv", None)
    if argv is None:  # not called through `bench.cli.main`: the sweep rebuilt from its parsed arguments
        argv = ["sweep", "--regularizers", args.regularizers, "--seeds", args.seeds, "--preset", args.preset]
        argv += ["--datasets", args.datasets] if getattr(args, "datasets", None) else []
        for k in (k for k in RUN_FIELDS if getattr(args, k, None) not in (None, False)):
            argv.append(f"--{k.replace('_', '-')}" + ("" if getattr(args, k) is True else f"={getattr(args, k)}"))
        argv += [f"--set={v}" for v in args.set or []] + [f"--plugin={v}" for v in args.plugin or []]
    kept = [a for a in argv if not (len(a) >= 4 and "--train-only".startswith(a))]
    return shlex.join(["python", "-m", "bench", *kept])


def cmd_demo(args) -> int:
    import regularizers
    from bench.app import api, sweep, sweep_report, sweep_run
    t0 = time.time()
    want = sweep.parse_list(args.regularizers)
    have = [r for r in want if r in regularizers.available()]
    if len(have) < len(want):
        print(f"[demo] not available in this install: {', '.join(r for r in want if r not in have)} "
              f"(available: {', '.join(regularizers.available())}); running the others", file=sys.stderr)
    args.regularizers = ",".join(have)
    plan, results = api.sweep(checked_spec(args))
    code = sweep_run.summarize(plan, results)
    print()
    sweep_report.show_leaderboard([plan.out])
    written = sweep_report.write_reports([plan.out], plan.out)
    print(f"\n[demo] finished in {(time.time() - t0) / 60:.1f} min")
    print(f"[demo] records (one folder per run): {plan.out}")
    for p in written["leaderboard"]:
        print(f"[demo] leaderboard: {p}")
    pngs = [p for p in written["plots"] if p.suffix == ".png"]
    if pngs:
        print(f"[demo] plots ({len(pngs)} figures, PNG + SVG): {pngs[0].parent}/")
        for p in pngs:
            print(f"         {p.name}")
    print(f"[demo] again any time: python -m bench leaderboard {plan.out}   |   python -m bench plot {plan.out}")
    return code


def add_sweep_args(p, demo: bool = False) -> None:
    """The arguments of `bench sweep` (shared with `bench demo` and `bench estimate`)."""
    p.add_argument("--regularizers", default=",".join(COMPARISON) if demo else "none",
                   help=f"comma-separated regularizer names, e.g. {','.join(COMPARISON)} "
                        "(`bench list` shows all) (default: %(default)s)")
    p.add_argument("--seeds", default="0-2" if demo else "0-4", help="e.g. 0-4 or 0,1,2 (default: %(default)s)")
    p.add_argument("--datasets", default=None, help="comma-separated datasets: cifar10, cifar100, fashion_mnist, "
                                                      "mnist, folder:PATH, npz:PATH (default: the preset's)")
    p.add_argument("--launcher", default="local", choices=["local", "ray", "slurm"],
                   help="local: in-process or worker processes; ray: a Ray cluster (extra `ray`); slurm: submitit "
                        "(extra `slurm`) (default: local)")
    p.add_argument("--workers", type=int, default=DEMO_WORKERS if demo else None,
                   help="local: worker processes (default: 1, or one per GPU); ray: CPUs of a local Ray; "
                        "slurm: max jobs running (a job array's parallelism; with --no-slurm-array, max jobs "
                        "in flight)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads per worker (local: default cores / workers, GPU workers too; ray: CPUs per job)")
    p.add_argument("--gpus-per-job", type=float, default=None, dest="gpus_per_job",
                   help="ray: GPUs per job; a fraction (0.25) packs several jobs on one GPU (default: 1 when the "
                        "cluster has GPUs)")
    p.add_argument("--ray-address", default=None, dest="ray_address",
                   help="ray: address of a running cluster (default: start a local Ray)")
    p.add_argument("--slurm-cluster", default=None, dest="slurm_cluster",
                   help="slurm: submitit cluster (default: slurm when available; 'local' runs jobs as local processes)")
    p.add_argument("--slurm-param", action="append", default=[], dest="slurm_param", metavar="KEY=VALUE",
                   help="slurm: submitit executor parameter, e.g. slurm_partition=gpu, timeout_min=600")
    p.add_argument("--slurm-array", action=argparse.BooleanOptionalAction, default=True, dest="slurm_array",
                   help="slurm: submit the jobs ready at once as one job array (one sbatch; at most --workers of "
                        "them running, or --slurm-param slurm_array_parallelism=N); --no-slurm-array: one sbatch "
                        "per job (default: %(default)s)")
    p.add_argument("--force", action="store_true",
                   help="run jobs whose status says running (their process is gone); estimate: also replace an "
                        "existing --json file this project did not write")
    p.add_argument("--pack", type=int, default=1,
                   help="train K runs of one regularizer at once on one device, in one batched forward/backward "
                        "(each still its own record; default: 1)")
    p.add_argument("--train-only", action="store_true", dest="train_only",
                   help="train every job (and the surrogates) but run no suite; a later run without it evaluates")
    p.add_argument("--yes", "-y", action="store_true",
                   help=f"plan more than {CONFIRM_JOBS} jobs; "
                        "`bench sweep`: also run when the estimate is above an hour")
    add_common_run_args(p)
    if demo:
        p.set_defaults(preset="demo", out=str(Path("results") / "demo"))
    else:  # as `bench run`: never the papers' GPU-scale protocol unless asked for
        p.set_defaults(preset=DEFAULT_PRESET)


def add_parser(sub) -> None:
    p = sub.add_parser("sweep", help="run a comparison: regularizers x seeds x datasets, through a launcher",
                       description=SWEEP_DOC, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_sweep_args(p)
    p.add_argument("--status", action="store_true", help="show done/running/failed per job and exit")
    p.add_argument("--no-leaderboard", action="store_true", dest="no_leaderboard",
                   help="do not print the leaderboard at the end")
    p.add_argument("--no-estimate", action="store_true", dest="no_estimate",
                   help="skip the time estimate before launching (and so its --yes check)")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("demo", help="the README's main job: 4 regularizers x 3 seeds on Fashion-MNIST, "
                                    "the quick suite, leaderboard and plots (about 15 min on 2 CPU cores)")
    add_sweep_args(p, demo=True)
    p.set_defaults(func=cmd_demo)
