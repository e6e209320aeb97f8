"""What every launcher shares: the `Launcher` interface, the failed-job result, making the project importable in
workers that an engine starts (`PROJECT_ROOT`), importing an optional engine with a one-line hint, and the
worker side of stopping (`Terminated`, `die_with_parent`).

Kept apart from the launchers themselves (`bench.app.launch_local`, `bench.app.launch_ray`,
`bench.app.launch_slurm`) and from the scheduler (`bench.app.launchers.run_jobs`), which all build on it.
"""
from __future__ import annotations

import os
import signal
import threading
import time

from bench.app.jobs import JobSpec

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repository root


def export_project_path() -> None:
    """Let worker processes started by Ray / submitit import the project even when it is not
    pip-installed (they inherit this process's environment)."""
    parts = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if PROJECT_ROOT not in parts:
        os.environ["PYTHONPATH"] = os.pathsep.join([PROJECT_ROOT] + parts)


def failed_result(spec: JobSpec, error: str) -> dict:
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



def require_engine(module: str, what: str, extra: str, pip_name: str):
    """An optional engine's module, or a one-line ImportError saying which extra installs it."""
    import importlib
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(f"{what}: pip install '{extra}' (or: pip install '{pip_name}')") from e
