"""`python -m bench sweep` and `python -m bench demo`: a comparison of regularizers over seeds.

A sweep expands into one job per (regularizer, seed, dataset), plus the unregularized surrogate
model of each dataset that the transfer attack needs (trained first, see bench/jobs.py). Every job
of a dataset gets the same budget and the same suite: the sweep builds all of them from one base
config, refuses `--set` overrides that would give one regularizer its own budget or protocol, and
checks that the jobs' `comparison_key` (everything but regularizer, hyper-parameters and seed)
agrees before it launches anything.

Re-running a sweep runs only what is missing: a job whose record is trained and holds every suite
test is not launched at all; an interrupted one resumes from its checkpoint (the trainer's own
resume) and the suite skips tests already in the record. `--status` reads the per-run status files
and shows done / running / stale / failed per job, from any machine that sees the results folder.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import os
import sys
import time
from pathlib import Path

from .jobs import JobSpec

BUILTIN_DEMO_REGULARIZERS = ("none", "pixel_sim", "pixel_th", "neural_pred")
# Measured on the 2-core CPU (see the report of issue 5): two 1-thread worker processes beat one
# 2-thread process for the demo's narrow models.
DEMO_WORKERS = 2


# ----------------------------------------------------------------------------- parsing
def parse_seeds(text: str) -> list[int]:
    """'0-4' -> [0, 1, 2, 3, 4]; '0,2,5' and '0-2,7' work too."""
    seeds: list[int] = []
    try:
        for part in str(text).split(","):
            part = part.strip()
            if not part:
                continue
            if "-" in part[1:]:
                i = part.index("-", 1)
                a, b = int(part[:i]), int(part[i + 1:])
                if b < a:
                    raise ValueError
                seeds += list(range(a, b + 1))
            else:
                seeds.append(int(part))
    except ValueError:
        raise ValueError(f"--seeds expects e.g. 0-4 or 0,1,2 or 0-2,7; got {text!r}") from None
    if not seeds:
        raise ValueError("--seeds is empty")
    return list(dict.fromkeys(seeds))


def parse_list(text: str | None) -> list[str]:
    return list(dict.fromkeys(t.strip() for t in (text or "").split(",") if t.strip()))


def split_sets(sets: list[str], reg_names: list[str]) -> tuple[list[str], dict, dict]:
    """Split `--set` items into (global config sets, hyper-parameters for every regularizer that has
    them, per-regularizer hyper-parameters `NAME.param=value`). Anything that would give one
    regularizer its own budget or protocol is refused."""
    from .config import RunConfig, parse_value
    fields = {f.name for f in dataclasses.fields(RunConfig)}
    glob, common, per = [], {}, {}
    for item in sets or []:
        if "=" not in item:
            raise ValueError(f"--set expects key=value, got {item!r}")
        key, val = item.split("=", 1)
        if key in ("regularizer", "seed"):
            raise ValueError(f"--set {key}=... is not allowed in a sweep: use --regularizers / --seeds")
        if key == "reg_params":
            raise ValueError("--set reg_params=... is not allowed: use reg_params.NAME=VALUE (every "
                             "regularizer that has NAME) or REGULARIZER.NAME=VALUE (one regularizer)")
        if "." in key:
            head, rest = key.split(".", 1)
            if head in ("reg_params", "reg"):
                common[rest] = parse_value(val)
                continue
            if head in reg_names:
                if rest in fields:
                    raise ValueError(
                        f"--set {key}=... would give {head} its own {rest!r}: every job of a sweep gets the "
                        f"same budget and protocol. Set it for all with --set {rest}=..., or run a separate sweep")
                per.setdefault(head, {})[rest] = parse_value(val)
                continue
        glob.append(item)
    return glob, common, per


def _params_for(reg: str, common: dict, per: dict) -> dict:
    import regularizers
    cls = regularizers.get_class(reg)
    valid = {f.name for f in dataclasses.fields(cls.Params)}
    out = {}
    if reg != "none":  # the baseline has no hyper-parameters that matter; keep its record shared
        out.update({k: v for k, v in common.items() if k in valid})
    for k, v in per.get(reg, {}).items():
        if k not in valid:
            raise ValueError(f"{reg}: unknown hyper-parameter {k!r}; valid: {', '.join(sorted(valid)) or '(none)'}")
        out[k] = v
    return out


# ----------------------------------------------------------------------------- the plan
@dataclasses.dataclass
class Plan:
    specs: list  # surrogates first, then runs
    out: Path
    datasets: list
    regularizers: list
    seeds: list

    @property
    def runs(self):
        return [s for s in self.specs if s.kind == "run"]


def plan_sweep(args) -> Plan:
    """Expand a sweep's arguments into job specs (also used by `bench estimate` and `bench reproduce`)."""
    import regularizers
    from . import store
    from .commands import load_plugins
    from .config import RunConfig, build_config
    from .jobs import suite_needs_surrogate, surrogate_config

    load_plugins(getattr(args, "plugin", None))
    regs = parse_list(args.regularizers)
    if not regs:
        raise ValueError("--regularizers is empty")
    for r in regs:
        regularizers.get_class(r)  # unknown name: an error that lists the valid ones
    seeds = parse_seeds(args.seeds)
    datasets = parse_list(getattr(args, "datasets", None))
    if getattr(args, "dataset", None):
        datasets = list(dict.fromkeys([args.dataset] + datasets))
    glob, common, per = split_sets(getattr(args, "set", []), regs)
    unused = [k for k in common if all(k not in {f.name for f in dataclasses.fields(regularizers.get_class(r).Params)}
                                       for r in regs if r != "none")]
    if unused:
        raise ValueError(f"--set reg_params.{unused[0]}=...: no regularizer of this sweep has a hyper-parameter "
                         f"{unused[0]!r}")
    for r in per:
        if r not in regs:
            raise ValueError(f"--set {r}.…: {r} is not in --regularizers ({', '.join(regs)})")
    # Every RunConfig field the command line sets (the shared run arguments of bench.commands).
    over = {f.name: getattr(args, f.name) for f in dataclasses.fields(RunConfig)
            if f.name not in ("regularizer", "reg_params", "seed", "dataset", "preset", "progress")
            and getattr(args, f.name, None) is not None}
    over["progress"] = False  # job logs are files: no progress bars in them
    base0 = build_config(args.preset, over, glob)
    if not datasets:
        datasets = [base0.dataset]
    plugins = list(getattr(args, "plugin", None) or [])
    specs_sur, specs_run = [], []
    for ds in datasets:
        base = build_config(args.preset, dict(over, dataset=ds), glob)
        keys = {}
        sur_id = None
        if suite_needs_surrogate(base.suite):
            scfg = surrogate_config(base.replace(regularizer="none", reg_params={}))
            sur_id = f"surrogate/{ds}/s{scfg.seed}"
            specs_sur.append(JobSpec(id=sur_id, kind="surrogate", config=scfg.to_dict(),
                                     run_dir=str(store.run_dir_for(scfg)), plugins=plugins))
        for r in regs:
            params = _params_for(r, common, per)
            regularizers.get_class(r)(**params)  # bad values fail here, before anything runs
            for s in seeds:
                cfg = base.replace(regularizer=r, reg_params=params, seed=s)
                keys.setdefault(cfg.comparison_key(), []).append(f"{r}/s{s}")
                specs_run.append(JobSpec(id=f"{r}/{ds}/s{s}", kind="run", config=cfg.to_dict(),
                                         run_dir=str(store.run_dir_for(cfg)), deps=[sur_id] if sur_id else [],
                                         plugins=plugins, evaluate=not getattr(args, "train_only", False)))
        if len(keys) != 1:  # cannot happen through this CLI; guards programmatic use
            raise ValueError(f"jobs of {ds} would not share one budget/protocol: {keys}")
    if specs_sur:
        sur_dirs = {s.run_dir: s for s in specs_sur}
        for s in specs_run:
            if s.run_dir in sur_dirs:
                raise ValueError(f"seed {s.config['seed']} of `none` is the transfer surrogate's seed "
                                 f"(surrogate_seed={s.config['surrogate_seed']}): the transfer test would attack "
                                 f"the model with its own gradients. Drop that seed or --set surrogate_seed=...")
    return Plan(specs=specs_sur + specs_run, out=Path(base0.out).expanduser().resolve(), datasets=datasets,
                regularizers=regs, seeds=seeds)


# ----------------------------------------------------------------------------- status
def _age(ts) -> str:
    if not ts:
        return ""
    s = max(0, time.time() - float(ts))
    return f"{s:.0f} s" if s < 120 else (f"{s / 60:.0f} min" if s < 7200 else f"{s / 3600:.1f} h")


def status_rows(plan: Plan) -> list[dict]:
    from .jobs import job_state
    rows = []
    for s in plan.specs:
        state, st = job_state(s)
        c = s.config
        if state == "running":
            info = f"pid {st.get('pid')} on {st.get('host')}, since {st.get('start')} (heartbeat {_age(st.get('heartbeat_ts'))} ago)"
        elif state == "stale":
            info = f"was running (pid {st.get('pid')} on {st.get('host')}), process gone; re-run to resume"
        elif state in ("failed", "interrupted"):
            info = f"{st.get('error')}  log: {st.get('log')}"
        elif state == "done":
            info = f"{st.get('seconds', '?')} s" if st.get("state") == "done" else "(record complete)"
        elif state == "trained":
            info = "trained; suite incomplete"
        else:
            info = ""
        rows.append({"job": s.kind, "regularizer": c["regularizer"], "dataset": c["dataset"], "seed": c["seed"],
                     "state": state, "info": info, "run_dir": s.run_dir})
    return rows


def print_status(plan: Plan, file=None) -> dict:
    file = file or sys.stdout
    rows = status_rows(plan)
    w = {k: max(len(k), *(len(str(r[k])) for r in rows)) for k in ("job", "regularizer", "dataset", "seed", "state")}
    head = "  ".join(k.ljust(w[k]) for k in w) + "  info"
    print(head, file=file)
    print("-" * len(head), file=file)
    for r in rows:
        print("  ".join(str(r[k]).ljust(w[k]) for k in w) + "  " + r["info"], file=file)
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["state"]] = counts.get(r["state"], 0) + 1
    print(f"\n{len(rows)} jobs: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) + f"  (results: {plan.out})",
          file=file)
    return counts


# ----------------------------------------------------------------------------- leaderboard + plots
def show_leaderboard(roots, log=print) -> bool:
    """Print the terminal leaderboard of `roots`; False (with a message) when it cannot be built."""
    try:
        import leaderboard
        build, render = leaderboard.build_table, leaderboard.render
    except (ImportError, AttributeError) as e:
        log(f"[sweep] leaderboard not available in this install ({e}); the records are in "
            f"{', '.join(map(str, roots))}")
        return False
    table = build(*roots)
    log(render(table, "term"))
    return True


def write_reports(roots, out_dir: Path, log=print) -> dict:
    """Leaderboard files (md/csv/html) in out_dir and the plots in out_dir/plots; returns
    {"leaderboard": [paths], "plots": [paths]}."""
    written = {"leaderboard": [], "plots": []}
    try:
        import leaderboard
        table = leaderboard.build_table(*roots)
    except (ImportError, AttributeError) as e:
        log(f"[sweep] leaderboard files skipped: {e}")
        return written
    for fmt in ("md", "csv", "html"):
        p = Path(out_dir) / f"leaderboard.{fmt}"
        try:
            leaderboard.write(table, fmt, p)
            written["leaderboard"].append(p)
        except Exception as e:  # noqa: BLE001 - one renderer failing must not hide the others
            log(f"[sweep] leaderboard as {fmt} failed: {type(e).__name__}: {e}")
    try:
        written["plots"] = [Path(p) for p in leaderboard.plot_all([str(r) for r in roots], str(Path(out_dir) / "plots"))]
    except (ImportError, AttributeError) as e:
        log(f"[sweep] plots skipped: {e}")
    return written


# ----------------------------------------------------------------------------- running
def _launcher_from_args(args, plan: Plan, log_dir: Path):
    from .launchers import make_launcher
    slurm_params = {}
    for item in getattr(args, "slurm_param", None) or []:
        if "=" not in item:
            raise ValueError(f"--slurm-param expects key=value, got {item!r}")
        from .config import parse_value
        k, v = item.split("=", 1)
        slurm_params[k] = parse_value(v)
    return make_launcher(args.launcher, workers=args.workers, threads=getattr(args, "threads", None),
                         device=plan.specs[0].config["device"] if plan.specs else "auto",
                         ray_address=getattr(args, "ray_address", None),
                         slurm_cluster=getattr(args, "slurm_cluster", None), slurm_params=slurm_params,
                         log_dir=log_dir)


def _device_check(plan: Plan, log=print) -> None:
    """The budget is a step count, identical by construction; warn when one dataset's records were
    trained on different devices (their wall/device seconds are then not comparable)."""
    from . import store
    for ds in plan.datasets:
        names = set()
        for s in plan.runs:
            if s.config["dataset"] != ds:
                continue
            rec = store.read_json(Path(s.run_dir) / "config.json") or {}
            if rec.get("device", {}).get("name"):
                names.add(rec["device"]["name"])
        if len(names) > 1:
            log(f"[sweep] note: {ds} records were trained on different devices ({', '.join(sorted(names))}); "
                "steps are identical, but their time costs are not comparable")


def run_sweep(args, log=print) -> tuple[Plan, dict]:
    from . import store
    from .jobs import is_complete, job_state
    from .launchers import run_jobs
    plan = plan_sweep(args)
    todo, done = [], {}
    for s in plan.specs:
        if is_complete(s):
            done[s.id] = {"id": s.id, "state": "done", "run_dir": s.run_dir, "skipped": True}
    for s in plan.specs:
        if s.id in done:
            continue
        if s.kind == "surrogate" and all(r.id in done for r in plan.specs if s.id in r.deps):
            # every run that needs it is complete (e.g. committed records without weights): not needed
            done[s.id] = {"id": s.id, "state": "done", "run_dir": s.run_dir, "skipped": True}
            continue
        state, st = job_state(s)
        if state == "running" and not getattr(args, "force", False):
            raise ValueError(f"job {s.id} is running now (pid {st.get('pid')} on {st.get('host')}); wait for it, "
                             f"or pass --force if that process is gone")
        todo.append(s)
    n_sur = sum(1 for s in plan.specs if s.kind == "surrogate")
    log(f"[sweep] {len(plan.runs)} runs ({len(plan.regularizers)} regularizers x {len(plan.seeds)} seeds x "
        f"{len(plan.datasets)} dataset(s)) + {n_sur} surrogate(s); {len(done)} already complete, {len(todo)} to run")
    log(f"[sweep] results: {plan.out}")
    if not todo:
        return plan, done
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S") + f"-{os.getpid()}"
    log_dir = plan.out / ".sweeps" / stamp
    store.atomic_write_json(log_dir / "plan.json", {"argv": sys.argv, "jobs": [s.to_dict() for s in plan.specs]})
    launcher = _launcher_from_args(args, plan, log_dir)
    log(f"[sweep] launcher: {launcher.describe()}")
    results = run_jobs(todo, launcher, done=done, log=log)
    _device_check(plan, log)
    return plan, results


def _summarize(plan: Plan, results: dict, log=print) -> int:
    failed = [r for r in results.values() if r.get("state") != "done"]
    ran = [r for r in results.values() if r.get("state") == "done" and not r.get("skipped")]
    skipped = [r for r in results.values() if r.get("skipped")]
    log(f"[sweep] {len(ran)} ran, {len(skipped)} were already complete, {len(failed)} failed")
    for r in failed:
        log(f"[sweep]   FAILED {r['id']}: {r.get('error')}\n           log: {r.get('log')}")
    if failed:
        log("[sweep] re-run the same command to retry only what is missing")
    return 1 if failed else 0


def cmd_sweep(args) -> int:
    if args.status:
        plan = plan_sweep(args)
        counts = print_status(plan)
        return 0 if not counts.get("failed") else 1
    plan, results = run_sweep(args)
    code = _summarize(plan, results)
    if not args.no_leaderboard:
        show_leaderboard([plan.out])
    return code


def cmd_demo(args) -> int:
    import regularizers
    t0 = time.time()
    want = parse_list(args.regularizers)
    have = [r for r in want if r in regularizers.available()]
    if len(have) < len(want):
        print(f"[demo] not available in this install: {', '.join(r for r in want if r not in have)} "
              f"(available: {', '.join(regularizers.available())}); running the others", file=sys.stderr)
    args.regularizers = ",".join(have)
    args.status, args.no_leaderboard = False, False
    plan, results = run_sweep(args)
    code = _summarize(plan, results)
    print()
    show_leaderboard([plan.out])
    written = write_reports([plan.out], plan.out)
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


# ----------------------------------------------------------------------------- CLI
def add_sweep_args(p, demo: bool = False) -> None:
    """The arguments of `bench sweep` (shared with `bench estimate`)."""
    from .commands import add_common_run_args
    p.add_argument("--regularizers", default=",".join(BUILTIN_DEMO_REGULARIZERS) if demo else "none",
                   help="comma-separated regularizer names, e.g. none,pixel_sim,pixel_th,neural_pred "
                        "(`bench list` shows all) (default: %(default)s)")
    p.add_argument("--seeds", default="0-2" if demo else "0-4", help="e.g. 0-4 or 0,1,2 (default: %(default)s)")
    p.add_argument("--datasets", default=None, help="comma-separated datasets: cifar10, cifar100, fashion_mnist, "
                                                      "mnist, folder:PATH (default: the preset's)")
    p.add_argument("--launcher", default="local", choices=["local", "ray", "slurm"],
                   help="local: in-process or worker processes; ray: a Ray cluster (extra `ray`); slurm: submitit "
                        "(extra `slurm`) (default: local)")
    p.add_argument("--workers", type=int, default=DEMO_WORKERS if demo else None,
                   help="local: worker processes (default: 1, or one per GPU); ray: CPUs of a local Ray; "
                        "slurm: max jobs in flight")
    p.add_argument("--threads", type=int, default=None, help="local: torch threads per worker (default: cores / workers)")
    p.add_argument("--ray-address", default=None, dest="ray_address",
                   help="ray: address of a running cluster (default: start a local Ray)")
    p.add_argument("--slurm-cluster", default=None, dest="slurm_cluster",
                   help="slurm: submitit cluster (default: slurm when available; 'local' runs jobs as local processes)")
    p.add_argument("--slurm-param", action="append", default=[], dest="slurm_param", metavar="KEY=VALUE",
                   help="slurm: submitit executor parameter, e.g. slurm_partition=gpu, timeout_min=600")
    p.add_argument("--force", action="store_true", help="run jobs whose status says running (their process is gone)")
    p.add_argument("--train-only", action="store_true", dest="train_only",
                   help="train every job (and the surrogates) but run no suite; a later run without it evaluates")
    add_common_run_args(p)
    if demo:
        p.set_defaults(preset="demo", out=str(Path("results") / "demo"))
    else:  # as `bench run`: never the papers' GPU-scale protocol unless asked for
        from .commands import DEFAULT_PRESET
        p.set_defaults(preset=DEFAULT_PRESET)


def add_parser(sub) -> None:
    p = sub.add_parser("sweep", help="run a comparison: regularizers x seeds x datasets, through a launcher",
                       description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    add_sweep_args(p)
    p.add_argument("--status", action="store_true", help="show done/running/failed per job and exit")
    p.add_argument("--no-leaderboard", action="store_true", dest="no_leaderboard",
                   help="do not print the leaderboard at the end")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("demo", help="the README's main job: 4 regularizers x 3 seeds on Fashion-MNIST, "
                                    "the quick suite, leaderboard and plots (about 15 min on 2 CPU cores)")
    add_sweep_args(p, demo=True)
    p.set_defaults(func=cmd_demo)
