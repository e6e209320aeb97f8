"""Launchers: where sweep jobs run. Each wraps an existing engine; the project only adds the
dependency order (surrogates before the evaluations that use them) and the failure bookkeeping.

* `local`: sequential in this process (1 worker), or N worker processes
  (concurrent.futures with the spawn start method): one per GPU (each pinned with
  CUDA_VISIBLE_DEVICES), or N CPU processes with `torch.set_num_threads(cores // N)`.
* `ray`: Ray tasks, on a cluster (`--ray-address`, as `ray.init(address=...)`) or on a local Ray
  started here; each task asks for one GPU when the cluster has any.
* `slurm`: submitit (SLURM; its LocalExecutor with `--slurm-cluster local` for tests and laptops).
  The jobs ready at once go out as one SLURM job array (submitit's `executor.batch()`: one sbatch,
  at most `slurm_array_parallelism` of them running, `--workers` by default); `--no-slurm-array`
  submits one sbatch per job. A preempted or timed-out job is requeued by submitit (`checkpoint()`
  returns the same call) and resumes from its run's checkpoint.pt, because
  `bench.engine.trainer.train` resumes by itself.

All launchers share `run_jobs`, a small dependency-aware scheduler: it submits a job once its
dependencies finished (all the jobs ready in one pass with one `submit_many`), never submits a job
whose dependency failed (it is reported failed with the reason), and reports every job's result while
the others go 

The launchers live one per module (`bench.app.launch_local`, `bench.app.launch_ray`, `bench.app.launch_slurm`)
on the interface of `bench.app.launcher_base`; this module names them (`make_launcher`) and schedules
(`run_jobs`). Their classes are importable from here too.
"""
from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from pathlib import Path
from typing import Callable

from bench.app.jobs import JobSpec
from bench.app.launch_local import LocalLauncher
from bench.app.launch_ray import RayLauncher
from bench.app.launch_slurm import SubmititLauncher
from bench.app.launcher_base import Launcher, Terminated, failed_result
from bench.core.device import worker_devices

LAUNCHERS = ("local", "ray", "slurm")


def make_launcher(name: str, *, workers: int | None = None, threads: int | None = None, device: str = "auto",
                  ray_address: str | None = None, slurm_cluster: str | None = None,
                  slurm_params: dict | None = None, log_dir: str | Path = "results/.sweeps",
                  gpus_per_job: float | None = None, slurm_array: bool = True) -> Launcher:
    """A launcher by name. `gpus_per_job` (Ray): a fraction packs several jobs on one GPU (0.25: four);
    `threads` (Ray): CPUs per job, also the job's torch threads; `slurm_array`: the jobs ready at once
    go out as one SLURM job array."""
    if name == "local":
        gpus = []
        if device in ("auto", "cuda"):
            import torch
            if torch.cuda.is_available():
                gpus = worker_devices(os.environ.get("CUDA_VISIBLE_DEVICES"), torch.cuda.device_count())
        return LocalLauncher(workers=workers, threads=threads, gpus=gpus)
    if name == "ray":
        return RayLauncher(address=ray_address, workers=workers, gpus_per_job=gpus_per_job,
                           cpus_per_job=threads or 1)
    if name == "slurm":
        return SubmititLauncher(log_dir, cluster=slurm_cluster, params=slurm_params, workers=workers,
                                array=slurm_array)
    raise ValueError(f"unknown launcher {name!r}; valid launchers: {', '.join(LAUNCHERS)}")


def _ready_jobs(pending: list, running: dict, results: dict, launcher: Launcher, log) -> list:
    """The pending jobs that can start now (deps done, within the launcher's capacity), in order, taken off
    `pending`; a job whose dependency failed is recorded as skipped instead."""
    ready = []
    for s in list(pending):
        bad = [d for d in s.deps if d in results and results[d]["state"] != "done"]
        if bad:
            pending.remove(s)
            r = failed_result(s, f"not run: dependency {bad[0]} failed (log: {results[bad[0]].get('log')})")
            results[s.id] = r
            log(f"[sweep] SKIPPED {s.label()}: {r['error']}")
            continue
        if launcher.capacity is not None and len(running) + len(ready) >= launcher.capacity:
            break
        if all(d in results for d in s.deps):
            pending.remove(s)
            ready.append(s)
    return ready


def _log_result(s: JobSpec, res: dict, t_start: float, log) -> None:
    if res.get("state") == "done":
        log(f"[sweep] done  {s.label()} in {res.get('seconds', '?')} s  [{(time.time() - t_start) / 60:.1f} min]")
    else:
        extra = f"; engine log: {res['engine_log']}" if res.get("engine_log") else ""
        log(f"[sweep] FAILED {s.label()}: {res.get('error')}\n        log: {res.get('log')}{extra}")


def run_jobs(specs: list[JobSpec], launcher: Launcher, done: dict | None = None,
             log: Callable[[str], None] = print, poll_s: float = 1.0) -> dict[str, dict]:
    """Run `specs` (in order, each after its `deps`) on a launcher; returns {id: result}. Each pass submits
    every job it can start with one `launcher.submit_many` (a SLURM job array).
    `done` holds results of jobs that need no run (already complete), so dependents may start.
    SIGTERM or SIGINT stops the launcher's workers at once and raises `Terminated` (one line, non-zero exit)."""
    results: dict[str, dict] = dict(done or {})
    known = set(results) | {s.id for s in specs}
    for s in specs:
        missing = [d for d in s.deps if d not in known]
        if missing:
            raise ValueError(f"job {s.id} depends on unknown job(s) {missing}")
    pending, running = list(specs), {}
    total, started, t_start = len(specs), 0, time.time()
    stopped = False
    restore = _raise_on_signals()
    try:
        while pending or running:
            ready = _ready_jobs(pending, running, results, launcher, log)
            for s in ready:
                started += 1
                log(f"[sweep] start {s.label()} ({started}/{total}) -> {s.run_dir}")
            if ready:
                handles = launcher.submit_many(ready)
                if len(handles) != len(ready):
                    raise RuntimeError(f"{type(launcher).__name__}.submit_many returned {len(handles)} handles "
                                       f"for {len(ready)} jobs")
                running.update(zip(handles, ready))
            if not running:
                if pending:  # only possible with a dependency cycle
                    raise RuntimeError(f"jobs can never start (dependency cycle?): {[s.id for s in pending]}")
                break
            for h, res in launcher.wait(list(running), timeout=poll_s):
                s = running.pop(h)
                results[s.id] = res
                _log_result(s, res, t_start, log)
    except KeyboardInterrupt as e:  # SIGTERM / SIGINT (Ctrl-C): stop the pool now, never leave it running
        stopped = True
        raise _stop(launcher, int(getattr(e, "signum", signal.SIGINT))) from None
    finally:
        restore()
        if not stopped:
            launcher.close()
    return results


def _stop(launcher: Launcher, sig: int) -> Terminated:
    """Stop the launcher's workers after signal `sig`; the `Terminated` that says so in one line."""
    n = 0
    with contextlib.suppress(BaseException):
        n = launcher.stop()
    what = f" and its {n} worker process(es)" if n else ""
    return Terminated(sig, f"{signal.Signals(sig).name}: stopped the sweep{what}; re-run the same command to resume")


def _raise_on_signals():
    """While a sweep runs (main thread only): SIGTERM and SIGINT raise `Terminated`, so the pool is stopped
    instead of being left running under PID 1. Returns the function that puts the previous handlers back."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def handler(signum, frame):
        raise Terminated(signum)
    old = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}

    def restore():
        for sig, h in old.items():
            signal.signal(sig, h)
    return restore
