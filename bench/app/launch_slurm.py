"""The `slurm` launcher: submitit (SLURM; its LocalExecutor with `--slurm-cluster local` for tests and
laptops). The jobs ready at once go out as one SLURM job array; a preempted or timed-out job is requeued by
submitit and resumes from its run's checkpoint.pt.

One module per launcher (`bench.app.launch_local`, `bench.app.launch_ray`): each wraps its own engine.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

from bench.app.jobs import run_job
from bench.app.launcher_base import Launcher, export_project_path, failed_result, require_engine


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
        self.submitit = submitit = require_engine("submitit", "the slurm launcher needs submitit", "regbench[slurm]",
                                            "submitit")
        export_project_path()
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
                res = failed_result(spec, f"{type(e).__name__}: {str(e).strip().splitlines()[0][:300]}")
                res["engine_log"] = str(j.paths.stderr)
                out.append((j, res))
        return out

