"""The `ray` launcher: Ray tasks, on a cluster (`--ray-address`, as `ray.init(address=...)`) or on a local Ray
started here; each task asks for one GPU (or a fraction of one) when the cluster has any.

One module per launcher (`bench.app.launch_local`, `bench.app.launch_slurm`): each wraps its own engine.
"""
from __future__ import annotations

import os

from bench.app.jobs import run_job
from bench.app.launcher_base import Launcher, export_project_path, failed_result, require_engine
from bench.core.device import SHARED_ENV


def _ray_entry(spec, shared_by: int = 1):
    os.environ[SHARED_ENV] = str(shared_by)  # a fractional GPU: the cost columns say it was shared
    return run_job(spec)



class RayLauncher(Launcher):
    name = "ray"

    def __init__(self, address: str | None = None, workers: int | None = None, cpus_per_job: float = 1,
                 gpus_per_job: float | None = None, max_retries: int = 2):
        ray = require_engine("ray", "the ray launcher needs Ray", "regbench[ray]", "ray[default]")
        self.ray = ray
        export_project_path()
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
                out.append((ref, failed_result(spec, f"{type(e).__name__}: {str(e).splitlines()[0][:300]}")))
        return out

    def close(self):
        if self._started:
            self.ray.shutdown()

