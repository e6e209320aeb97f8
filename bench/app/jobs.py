"""One sweep job = one run: train a (regularizer, seed, dataset) config, then evaluate it with the suite.

A job is a small picklable `JobSpec` (the resolved config as a dict, its run folder, what it depends
on), so the same `run_job(spec)` runs in-process, in a worker process, as a Ray task or as a SLURM job
through submitit. A job never raises for an ordinary error: it returns a result dict and leaves in its
run folder

    job.log           the job's stdout/stderr (appended, one header per attempt)
    job_status.json   {"state": "running"|"done"|"failed"|"interrupted", pid, host, start, heartbeat,
                       error, log}, written atomically (bench.core.store.atomic_write_json)

so `bench sweep --status` can tell done / running / failed from files alone, on any machine that
sees the results folder. Records are one folder per run: jobs on many machines never share a file,
so no lock is needed (the one shared write, metrics.json, is merged under its own folder's lock).

Surrogate jobs (regularizer `none`, seed `cfg.surrogate_seed`) only train: they are the transfer
attack's source model, found later by `bench.app.pipeline.provide_surrogate`. The sweep finishes them
before the evaluations that use them, so two evaluations never race to train the same surrogate.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import os
import socket
import sys
import threading
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench.core import store
from bench.core.records import Record

STATUS_FILE = "job_status.json"
LOG_FILE = "job.log"
HEARTBEAT_S = 30.0  # a running job rewrites its status this often
STALE_AFTER_S = 180.0  # a "running" job on another host with no heartbeat for this long is presumed dead


@dataclass
class JobSpec:
    """What a worker needs to run one job; plain data so it pickles to any launcher."""
    id: str  # e.g. "pixel_sim/fashion_mnist/s0"
    kind: str  # "run" (train + suite) | "surrogate" (train only) | "train" (a run's training, launched apart)
    #            | "pack" (several runs' training, packed on one device)
    config: dict  # RunConfig.to_dict()
    run_dir: str
    deps: list = field(default_factory=list)  # ids of jobs that must finish first
    plugins: list = field(default_factory=list)  # modules that register regularizers
    suites: dict = field(default_factory=dict)  # a study file's own suites: registered before the job runs
    threads: int | None = None  # torch.set_num_threads in the job (None: leave as is)
    evaluate: bool = True  # False: train only (a later sweep without --train-only evaluates)
    pack: list = field(default_factory=list)  # kind "pack": the configs trained together (bench.engine.packed)

    @property
    def log_path(self) -> Path:
        return Path(self.run_dir) / LOG_FILE

    @property
    def status_path(self) -> Path:
        return Path(self.run_dir) / STATUS_FILE

    def label(self) -> str:
        c = self.config
        role = {"surrogate": " (surrogate)", "train": " (training)",
                "pack": f" (training, packed with {len(self.pack) - 1} more)"}.get(self.kind, "")
        return f"{c['regularizer']} {c['dataset']} s{c['seed']}{role}"

    def to_dict(self) -> dict:
        return asdict(self)


def _now() -> str:
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")


def is_complete(spec: JobSpec) -> bool:
    """Nothing left to do for this job: trained, and (for a run) every suite test current in the record
    (`Record.is_current`, the rule the suite itself uses). A run whose record holds a finished training and
    every current suite result is complete even without its weights: studies commit configs and metrics,
    not weights, and a later sweep must not retrain them."""
    import attacks
    from bench.core.config import RunConfig
    record = Record(spec.run_dir)
    if not record.is_trained():
        if spec.kind != "run" or not spec.evaluate or record.model_path.exists() or not record.finished_training():
            return False
    if spec.kind == "surrogate" or not spec.evaluate:
        return True
    cfg = RunConfig.from_dict(spec.config)
    return record.all_current(attacks.build_suite(cfg.suite), cfg.dataset, cfg.seed)


def read_status(run_dir: Path) -> dict | None:
    try:
        return store.read_json(Path(run_dir) / STATUS_FILE)
    except ValueError:  # half-written by a non-atomic writer: treat as absent
        return None


def _pid_alive(pid: int) -> bool:
    """The process exists and is not a zombie: a killed worker whose parent died first is re-parented, and
    where nothing reaps it (PID 1 of a container that is no init) it stays a zombie that `kill(pid, 0)` still
    finds, which would make its job look running for ever."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{int(pid)}/stat") as f:
            return f.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except (OSError, IndexError):  # no /proc (macOS) or the process just went: kill() said it exists
        return True


def is_live(status: dict | None) -> bool:
    """A "running" status whose process still exists (same host: by pid; other host: recent heartbeat)."""
    if not status or status.get("state") != "running":
        return False
    if status.get("host") == socket.gethostname():
        return bool(status.get("pid")) and _pid_alive(int(status["pid"]))
    return time.time() - float(status.get("heartbeat_ts", 0)) < STALE_AFTER_S


def job_state(spec: JobSpec) -> tuple[str, dict]:
    """(state, status dict) for `--status`: done | trained (suite incomplete) | running | stale
    (was running, its process is gone) | failed | interrupted | pending."""
    st = read_status(Path(spec.run_dir)) or {}
    if is_complete(spec):
        return "done", st
    s = st.get("state")
    if s == "running":
        return ("running" if is_live(st) else "stale"), st
    if s in ("failed", "interrupted"):
        return s, st
    if Record(spec.run_dir).is_trained():
        return "trained", st
    return "pending", st


class _Heartbeat(threading.Thread):
    """Rewrites the running status every HEARTBEAT_S so other machines can tell a live job from a dead one."""

    def __init__(self, write):
        super().__init__(daemon=True)
        self._write = write
        self._stop_evt = threading.Event()

    def run(self):
        while not self._stop_evt.wait(HEARTBEAT_S):
            with contextlib.suppress(Exception):
                self._write()

    def stop(self):
        self._stop_evt.set()
        if self.is_alive() and self is not threading.current_thread():
            self.join(timeout=10)  # never let a late heartbeat overwrite the final status


def _work(spec: JobSpec, run_dir: Path, log) -> None:
    """What a job does: train (and evaluate, for kind "run"), or train a pack of runs together."""
    if spec.plugins:
        import regularizers
        for mod in spec.plugins:
            regularizers.load_plugin(mod)
    if spec.suites:  # a spawned worker (or another machine) knows only the built-in and entry-point suites
        import attacks
        for name, tests in spec.suites.items():
            attacks.register_suite(name, tests)
    from bench.app.pipeline import run_and_evaluate
    from bench.core.config import RunConfig
    cfg = RunConfig.from_dict(spec.config)
    if Record.for_config(cfg) != Record(run_dir):
        raise RuntimeError(f"job {spec.id} would write {Record.for_config(cfg).path}, expected {run_dir} "
                           "(config changed in flight?)")
    if spec.kind == "pack":  # members that fail are marked in their records; their run jobs report it
        from bench.engine.packed import train_packed
        res = train_packed([RunConfig.from_dict(c) for c in spec.pack], log=log)
        if all(v is not None for v in res.values()):
            raise RuntimeError(f"every run of the pack failed: {next(iter(res.values()))}")
    else:
        run_and_evaluate(cfg, evaluate=spec.kind == "run" and spec.evaluate, log=log)


def run_job(spec: JobSpec | dict) -> dict:
    """Run one job (train, then the suite for kind "run"); returns
    {"id", "state": "done"|"failed", "run_dir", "log", "seconds", "error"?}. Ordinary errors are
    caught, recorded in the status file and the log, and returned; KeyboardInterrupt/SystemExit (a
    preempted SLURM job, a killed sweep) mark the job interrupted and propagate."""
    if isinstance(spec, dict):
        spec = JobSpec(**spec)
    run_dir = Path(spec.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    base = {"id": spec.id, "kind": spec.kind, "pid": os.getpid(), "host": socket.gethostname(),
            "start": _now(), "start_ts": t0, "log": str(spec.log_path)}

    def write(state, **extra):
        st = dict(base, state=state, updated=_now(), heartbeat_ts=time.time(), **extra)
        store.atomic_write_json(spec.status_path, st)

    write("running")
    hb = _Heartbeat(lambda: write("running"))
    hb.start()
    result = {"id": spec.id, "run_dir": str(run_dir), "log": str(spec.log_path)}
    with open(spec.log_path, "a", buffering=1) as fh:
        fh.write(f"\n===== {spec.label()} | {_now()} | pid {os.getpid()} on {socket.gethostname()} =====\n")
        try:
            with contextlib.redirect_stdout(fh), contextlib.redirect_stderr(fh):
                def log(msg):
                    print(msg, flush=True)
                if spec.threads:
                    import torch
                    torch.set_num_threads(int(spec.threads))
                _work(spec, run_dir, log)
        except (KeyboardInterrupt, SystemExit) as e:
            hb.stop()
            fh.write(f"interrupted: {type(e).__name__}\n")
            write("interrupted", error=type(e).__name__)
            raise
        except BaseException as e:  # noqa: BLE001 - every failure is reported, the sweep goes on
            hb.stop()
            fh.write(traceback.format_exc())
            err = f"{type(e).__name__}: {e}"
            write("failed", error=err, seconds=round(time.time() - t0, 1))
            result.update(state="failed", error=err, seconds=round(time.time() - t0, 1))
            return result
        hb.stop()
        secs = round(time.time() - t0, 1)
        fh.write(f"done in {secs} s\n")
    # a run's training launched apart ("train") leaves the status "trained": the run's own job is not done yet
    write("trained" if spec.kind in ("train", "pack") else "done", seconds=secs, finished=_now())
    result.update(state="done", seconds=secs)
    return result


def main(argv=None) -> int:
    """`python -m bench.app.jobs SPEC.json`: run one job from a spec file (for custom launchers)."""
    import json
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) != 1:
        print("usage: python -m bench.app.jobs SPEC.json", file=sys.stderr)
        return 2
    spec = JobSpec(**json.loads(Path(argv[0]).read_text()))
    res = run_job(spec)
    print(json.dumps(res))
    return 0 if res["state"] == "done" else 1


if __name__ == "__main__":
    sys.exit(main())
