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
the others go on.
"""
from __future__ import annotations

import concurrent.futures as cf
import contextlib
import os
import signal
import threading
import time
from pathlib import Path
from typing import Callable

from bench.app.jobs import JobSpec, run_job
from bench.core.device import SHARED_ENV, worker_devices

LAUNCHERS = ("local", "ray", "slurm")
PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _export_project_path() -> None:
    """Let worker processes started by Ray / submitit import the project even when it is not
    pip-installed (they inherit this process's environment)."""
    parts = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if PROJECT_ROOT not in parts:
        os.environ["PYTHONPATH"] = os.pathsep.join([PROJECT_ROOT] + parts)


def _failed(spec: JobSpec, error: str) -> dict:
    return {"id": spec.id, "state": "failed", "error": error, "run_dir": spec.run_dir, "log": str(spec.log_path)}


class Launcher:
    """submit(spec) -> handle; submit_many(specs) -> [handle]; wait(handles, timeout) -> [(handle, result)];
    close()."""
    name = "?"
    capacity: int | None = None  # at most this many jobs in flight (None: the engine queues)

    def describe(self) -> str:
        return self.name

    def submit(self, spec: JobSpec):
        raise NotImplementedError

    def submit_many(self, specs: list[JobSpec]) -> list:
        """The jobs ready at once, one handle each, in order. One `submit` each here; an engine that can
        queue them as one unit (a SLURM job array) overrides it."""
        return [self.submit(s) for s in specs]

    def wait(self, handles: list, timeout: float) -> list:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def stop(self) -> int:
        """Stop at once (SIGTERM/SIGINT): end the jobs in flight; returns how many workers were stopped."""
        self.close()
        return 0


# ----------------------------------------------------------------------------- dying with the parent
class Terminated(KeyboardInterrupt):
    """SIGTERM / SIGINT reached a sweep: its workers were stopped (the CLI prints `message` and exits with
    128 + signum)."""

    def __init__(self, signum: int, message: str | None = None):
        super().__init__(signum)
        self.signum, self.message = int(signum), message


PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent(parent_pid: int | None) -> None:
    """In a worker: be killed when the process that started it dies, even by SIGKILL (Linux: the
    parent-death signal, set with prctl through ctypes; elsewhere a daemon thread that polls the parent
    pid). If the parent is already gone (it died before this ran), exit at once."""
    import sys
    armed = False
    if sys.platform.startswith("linux"):
        try:
            import ctypes
            libc = ctypes.CDLL(None, use_errno=True)
            armed = libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
        except (OSError, AttributeError):
            armed = False
    if parent_pid is not None and os.getppid() != parent_pid:  # orphaned before the signal was armed
        os._exit(1)
    if not armed and parent_pid is not None:
        def watch():
            while os.getppid() == parent_pid:
                time.sleep(1.0)
            os._exit(1)
        threading.Thread(target=watch, daemon=True, name="regbench-parent-watch").start()


# ----------------------------------------------------------------------------- local
def _init_worker(device_queue, threads, pythonpath, parent_pid=None):
    """Runs first in each spawned worker: die with the sweep's process, pin one GPU (a token of the parent's
    CUDA_VISIBLE_DEVICES, with how many workers share it), set the thread count."""
    die_with_parent(parent_pid)
    dev = None
    if device_queue is not None:
        dev, shared_by = device_queue.get()
        os.environ["CUDA_VISIBLE_DEVICES"] = str(dev)
        os.environ[SHARED_ENV] = str(shared_by)
    if threads:
        os.environ["OMP_NUM_THREADS"] = str(threads)
        import torch
        torch.set_num_threads(int(threads))


class LocalLauncher(Launcher):
    name = "local"

    def __init__(self, workers: int | None = None, threads: int | None = None, gpus: list | None = None):
        if gpus is None:
            gpus = []
        self.gpus = [str(g) for g in gpus]  # CUDA_VISIBLE_DEVICES tokens (index, GPU-/MIG- UUID)
        if workers is None:
            workers = max(1, len(self.gpus))
        if workers < 1:
            raise ValueError("--workers must be >= 1")
        self.workers = workers
        if threads is None:  # GPU workers too: each feeds its device from the host, cores split evenly
            threads = max(1, (os.cpu_count() or 1) // workers)
        self.threads = threads
        self.capacity = workers
        self.pool = None
        self._done: dict[int, dict] = {}
        self._next = 0

    def describe(self) -> str:
        if self.workers == 1 and len(self.gpus) <= 1:
            return f"local, sequential in this process ({self.threads or 'default'} threads)"
        per = f"GPUs {self.gpus}" if self.gpus else f"{self.threads} thread(s) each"
        return f"local, {self.workers} worker processes ({per})"

    def assignments(self) -> list[tuple[str, int]]:
        """(CUDA_VISIBLE_DEVICES token, workers on that device) per worker, round-robin over the GPUs."""
        devs = [self.gpus[i % len(self.gpus)] for i in range(self.workers)] if self.gpus else []
        return [(d, devs.count(d)) for d in devs]

    def _make_pool(self):
        import multiprocessing as mp
        ctx = mp.get_context("spawn")
        q = None
        if self.gpus:
            q = ctx.Queue()
            for dev, shared_by in self.assignments():
                q.put((dev, shared_by))
        _export_project_path()
        return cf.ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx, initializer=_init_worker,
                                      initargs=(q, self.threads, PROJECT_ROOT, os.getpid()))

    def submit(self, spec: JobSpec):
        if self.workers == 1 and len(self.gpus) <= 1:
            # Sequential: run now, in this process.
            if self.threads:
                import torch
                torch.set_num_threads(int(self.threads))
            h = self._next
            self._next += 1
            self._done[h] = run_job(spec)
            return h
        if self.pool is None:
            self.pool = self._make_pool()
        fut = self.pool.submit(run_job, spec)
        fut.spec = spec
        return fut

    def wait(self, handles, timeout):
        if self.pool is None:
            return [(h, self._done.pop(h)) for h in handles if h in self._done]
        done, _ = cf.wait(handles, timeout=timeout, return_when=cf.FIRST_COMPLETED)
        out, broken = [], False
        for f in done:
            try:
                out.append((f, f.result()))
            except cf.process.BrokenProcessPool:
                broken = True
                out.append((f, _failed(f.spec, "worker process died (killed, or out of memory?); "
                                               "re-run the sweep to resume it")))
            except Exception as e:  # pickling errors and the like
                out.append((f, _failed(f.spec, f"{type(e).__name__}: {e}")))
        if broken:  # a dead worker breaks the whole pool: start a fresh one for what is left
            self.pool.shutdown(wait=False, cancel_futures=True)
            self.pool = None
        return out

    def close(self):
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None

    def stop(self) -> int:
        """Stop now (a signal): terminate the worker processes, wait for them briefly; returns how many."""
        if self.pool is None:
            return 0
        procs = list((getattr(self.pool, "_processes", None) or {}).values())
        for pr in procs:
            with contextlib.suppress(Exception):
                pr.terminate()
        for pr in procs:
            with contextlib.suppress(Exception):
                pr.join(timeout=5)
                if pr.is_alive():
                    pr.kill()
                    pr.join(timeout=5)
        with contextlib.suppress(Exception):
            self.pool.shutdown(wait=False, cancel_futures=True)
        self.pool = None
        return len(procs)


# ----------------------------------------------------------------------------- ray
def _ray_entry(spec, shared_by: int = 1):
    os.environ[SHARED_ENV] = str(shared_by)  # a fractional GPU: the cost columns say it was shared
    return run_job(spec)


def _require(module: str, what: str, extra: str, pip_name: str):
    """An optional engine's module, or a one-line ImportError saying which extra installs it."""
    import importlib
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(f"{what}: pip install '{extra}' (or: pip install '{pip_name}')") from e


class RayLauncher(Launcher):
    name = "ray"

    def __init__(self, address: str | None = None, workers: int | None = None, cpus_per_job: float = 1,
                 gpus_per_job: float | None = None, max_retries: int = 2):
        ray = _require("ray", "the ray launcher needs Ray", "regbench[ray]", "ray[default]")
        self.ray = ray
        _export_project_path()
        self._started = not ray.is_initialized()
        if self._started:
            kw = dict(include_dashboard=False, log_to_driver=False, ignore_reinit_error=True,
                      runtime_env={"env_vars": {"PYTHONPATH": os.environ["PYTHONPATH"]}})
            if address:
                ray.init(address=address, **kw)
            else:
                ray.init(num_cpus=workers or os.cpu_count() or 1, **kw)
        res = ray.cluster_resources()
        if gpus_per_job is None:
            gpus_per_job = 1 if res.get("GPU", 0) > 0 else 0
        self.cpus_per_job, self.gpus_per_job = cpus_per_job, gpus_per_job
        self.resources = res
        self.remote = ray.remote(_ray_entry).options(num_cpus=cpus_per_job, num_gpus=gpus_per_job,
                                                     max_retries=max_retries)
        self._specs = {}

    def describe(self) -> str:
        r = self.resources
        return (f"ray ({int(r.get('CPU', 0))} CPUs, {int(r.get('GPU', 0))} GPUs; per job "
                f"{self.cpus_per_job} CPU, {self.gpus_per_job} GPU)")

    def submit(self, spec):
        if spec.threads is None:
            spec.threads = max(1, int(self.cpus_per_job))
        g = float(self.gpus_per_job or 0)
        ref = self.remote.remote(spec, max(1, int(1 / g)) if 0 < g < 1 else 1)
        self._specs[ref] = spec
        return ref

    def wait(self, handles, timeout):
        ready, _ = self.ray.wait(handles, num_returns=1, timeout=timeout)
        out = []
        for ref in ready:
            spec = self._specs.pop(ref)
            try:
                out.append((ref, self.ray.get(ref)))
            except Exception as e:  # RayTaskError, WorkerCrashedError, ...
                out.append((ref, _failed(spec, f"{type(e).__name__}: {str(e).splitlines()[0][:300]}")))
        return out

    def close(self):
        if self._started:
            self.ray.shutdown()


# ----------------------------------------------------------------------------- slurm (submitit)
class SubmititJob:
    """The callable submitit pickles. `checkpoint` is submitit's requeue hook: on preemption or
    timeout it resubmits the same job, which resumes from the run's checkpoint.pt."""

    def __call__(self, spec):
        return run_job(spec)

    def checkpoint(self, spec):
        import submitit
        return submitit.helpers.DelayedSubmission(SubmititJob(), spec)


class SubmititLauncher(Launcher):
    name = "slurm"

    def __init__(self, folder: str | Path, cluster: str | None = None, params: dict | None = None,
                 workers: int | None = None, poll_s: float = 2.0, array: bool = True):
        self.submitit = submitit = _require("submitit", "the slurm launcher needs submitit", "regbench[slurm]",
                                            "submitit")
        _export_project_path()
        self.folder = Path(folder)
        self.executor = submitit.AutoExecutor(folder=str(self.folder / "%j"), cluster=cluster)
        p = {"timeout_min": 240, "name": "regbench"}
        if self.executor.cluster == "slurm":
            p.update(gpus_per_node=1, cpus_per_task=8, slurm_signal_delay_s=120)
            if array and workers:  # an array runs at most this many of its jobs at once
                p["slurm_array_parallelism"] = workers
        p.update(params or {})
        self.executor.update_parameters(**p)
        self.params = p
        # The local executor starts every job at once: cap it. On SLURM, job arrays hand the cap to the scheduler
        # (`%workers` in the array): every job ready at once goes out in one array, however many there are.
        if self.executor.cluster in ("local", "debug"):
            self.capacity = workers or 1
        else:
            self.capacity = None if array else workers
        self.poll_s = poll_s
        self.array = array
        self._specs = {}

    def describe(self) -> str:
        arrays = ", job arrays" if self.array and self.executor.cluster == "slurm" else ""
        return f"submitit ({self.executor.cluster}{arrays}; logs in {self.folder})"

    def _set_threads(self, spec) -> None:
        if spec.threads is None:  # local processes share this machine's cores; SLURM gives cpus_per_task
            cpus = self.params.get("cpus_per_task")
            spec.threads = int(cpus) if cpus else max(1, (os.cpu_count() or 1) // (self.capacity or 1))

    def submit(self, spec):
        self._set_threads(spec)
        job = self.executor.submit(SubmititJob(), spec)
        self._specs[job.job_id] = spec
        return job

    def submit_many(self, specs):
        """Inside `executor.batch()`: on SLURM one array job (one sbatch, one queue entry, however many
        jobs are ready) instead of one sbatch each; submitit's local executor still starts one process each."""
        if not self.array or len(specs) < 2:
            return super().submit_many(specs)
        for s in specs:
            self._set_threads(s)
        with self.executor.batch():
            jobs = [self.executor.submit(SubmititJob(), s) for s in specs]
        for job, s in zip(jobs, specs):  # job ids exist once the batch is submitted (`4242_0`, `4242_1`, ...)
            self._specs[job.job_id] = s
        return jobs

    def wait(self, handles, timeout):
        deadline = time.time() + timeout
        while True:
            ready = [j for j in handles if j.done()]
            if ready or time.time() >= deadline:
                break
            time.sleep(min(self.poll_s, max(0.05, deadline - time.time())))
        out = []
        for j in ready:
            spec = self._specs.pop(j.job_id)
            try:
                out.append((j, j.result()))
            except Exception as e:  # FailedJobError, UncompletedJobError (killed, timed out for good)
                res = _failed(spec, f"{type(e).__name__}: {str(e).strip().splitlines()[0][:300]}")
                res["engine_log"] = str(j.paths.stderr)
                out.append((j, res))
        return out


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
            r = _failed(s, f"not run: dependency {bad[0]} failed (log: {results[bad[0]].get('log')})")
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
