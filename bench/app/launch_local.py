"""The `local` launcher: sequential in this process (1 worker), or N spawned worker processes
(concurrent.futures): one per GPU (each pinned with CUDA_VISIBLE_DEVICES), or N CPU processes with
`torch.set_num_threads(cores // N)`.

One module per launcher (`bench.app.launch_ray`, `bench.app.launch_slurm`): each wraps its own engine.
"""
from __future__ import annotations

import concurrent.futures as cf
import contextlib
import os

from bench.app.jobs import JobSpec, run_job
from bench.app.launcher_base import PROJECT_ROOT, Launcher, die_with_parent, export_project_path, failed_result
from bench.core.device import SHARED_ENV


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
        export_project_path()
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
                out.append((f, failed_result(f.spec, "worker process died (killed, or out of memory?); "
                                               "re-run the sweep to resume it")))
            except Exception as e:  # pickling errors and the like
                out.append((f, failed_result(f.spec, f"{type(e).__name__}: {e}")))
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

