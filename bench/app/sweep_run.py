"""Running a sweep: what is missing of its plan is launched (`run_sweep`), with training split off so it does not
wait for the surrogate and, with `pack` > 1, runs of one regularizer trained together (`split_training`); then
a summary of what ran, was complete already, or failed (`summarize`).

Kept apart from the plan (`bench.app.sweep`): planning is pure and cheap (the CLI validates with it before
anything runs), running needs the launchers (`bench.app.launchers`) and writes to the results folder.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import os
import sys
from pathlib import Path

from bench.app.sweep import Plan, SweepSpec, plan_sweep
from bench.core.records import Record


def _launcher(spec: SweepSpec, plan: Plan, log_dir: Path):
    from bench.app.launchers import make_launcher
    return make_launcher(spec.launcher, workers=spec.workers, threads=spec.threads,
                         device=plan.specs[0].config["device"] if plan.specs else "auto",
                         ray_address=spec.ray_address, slurm_cluster=spec.slurm_cluster,
                         gpus_per_job=spec.gpus_per_job, slurm_array=bool(spec.slurm_array),
                         slurm_params=dict(spec.slurm_params or {}), log_dir=log_dir)


def _device_check(plan: Plan, log=print) -> None:
    """The budget is a step count, identical by construction; warn when one dataset's records were
    trained on different devices (their wall/device seconds are then not comparable)."""
    for ds in plan.datasets:
        names = set()
        for s in plan.runs:
            if s.config["dataset"] != ds:
                continue
            rec = Record(s.run_dir).header() or {}
            if rec.get("device", {}).get("name"):
                names.add(rec["device"]["name"])
        if len(names) > 1:
            log(f"[sweep] note: {ds} records were trained on different devices ({', '.join(sorted(names))}); "
                "steps are identical, but their time costs are not comparable")


TRAIN_SUFFIX = "/train"


def split_training(todo: list, pack: int = 1) -> list:
    """Jobs to launch, with training not waiting for the surrogate: a run that needs the surrogate only
    for its evaluation and is not trained yet gets a train-only job with no dependency (launched with the
    surrogate, side by side on free workers), and its own job (which then only evaluates) waits for both.
    `pack` > 1: the untrained runs of one regularizer and dataset are trained `pack` at a time by one
    "pack" job (bench.engine.packed), which their own jobs wait for. Order: surrogates, training,
    evaluations. The plan itself (one job per record) does not change."""
    surs = [s for s in todo if s.kind == "surrogate"]
    trains, runs = [], []
    for s in todo:
        if s.kind == "surrogate":
            continue
        if s.kind == "run" and (pack > 1 or (s.evaluate and s.deps)) and not Record(s.run_dir).is_trained():
            t = dataclasses.replace(s, id=s.id + TRAIN_SUFFIX, kind="train", deps=[], evaluate=False)
            trains.append(t)
            s = dataclasses.replace(s, deps=list(s.deps) + [t.id])
        runs.append(s)
    if pack > 1:
        trains, runs = _pack(trains, runs, pack)
    return surs + trains + runs


def _changes_step(name: str) -> bool:
    """Whether regularizer `name` changes the training step (regularizers.base step hooks): not packable."""
    import regularizers
    try:
        return regularizers.get_class(name).changes_step()
    except (KeyError, ValueError):  # not loaded in this process: the pack job itself says so
        return False


def _pack(trains: list, runs: list, k: int) -> tuple[list, list]:
    """Train jobs grouped `k` at a time per (regularizer, dataset) into "pack" jobs; runs re-pointed."""
    groups: dict = {}
    packs, owner = [], {}
    for t in trains:
        if _changes_step(t.config["regularizer"]):  # its step hooks run per model: trained alone
            packs.append(t)
            continue
        groups.setdefault((t.config["regularizer"], t.config["dataset"]), []).append(t)
    for members in groups.values():
        for i in range(0, len(members), k):
            chunk = members[i:i + k]
            if len(chunk) == 1:
                packs.append(chunk[0])
                continue
            p = dataclasses.replace(chunk[0], id=f"{chunk[0].id}+{len(chunk) - 1}{TRAIN_SUFFIX}", kind="pack",
                                    pack=[c.config for c in chunk])
            packs.append(p)
            owner.update({c.id: p.id for c in chunk})
    runs = [dataclasses.replace(r, deps=[owner.get(d, d) for d in r.deps]) for r in runs]
    return packs, runs


def run_sweep(spec: SweepSpec, log=print) -> tuple[Plan, dict]:
    """Launch what is missing of a sweep; returns (plan, {job id: result})."""
    from bench.core import store
    from bench.app.jobs import is_complete, job_state
    from bench.app.launchers import run_jobs
    if isinstance(spec.pack, bool) or not isinstance(spec.pack, int) or spec.pack < 1:
        raise ValueError(f"--pack must be an integer >= 1, got {spec.pack!r}")
    plan = plan_sweep(spec)
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
        if state == "running" and not spec.force:
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
    store.atomic_write_json(log_dir / "plan.json", {"argv": sys.argv, "spec": dataclasses.asdict(spec),
                                                    "jobs": [s.to_dict() for s in plan.specs]})
    launcher = _launcher(spec, plan, log_dir)
    log(f"[sweep] launcher: {launcher.describe()}")
    results = run_jobs(split_training(todo, int(spec.pack)), launcher, done=done, log=log)
    results = {k: v for k, v in results.items() if not k.endswith(TRAIN_SUFFIX)}  # reported through their runs
    _device_check(plan, log)
    return plan, results


def summarize(plan: Plan, results: dict, log=print) -> int:
    failed = [r for r in results.values() if r.get("state") != "done"]
    ran = [r for r in results.values() if r.get("state") == "done" and not r.get("skipped")]
    skipped = [r for r in results.values() if r.get("skipped")]
    log(f"[sweep] {len(ran)} ran, {len(skipped)} were already complete, {len(failed)} failed")
    for r in failed:
        log(f"[sweep]   FAILED {r['id']}: {r.get('error')}\n           log: {r.get('log')}")
    if failed:
        log("[sweep] re-run the same command to retry only what is missing")
    return 1 if failed else 0
