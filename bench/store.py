"""Run records on disk: one directory per (config, seed), named by the config's hash.

    <out>/<regularizer>-<dataset>-s<seed>-<hash>/
        config.json       the full resolved config + versions, device, git commit
        model.pt          plain state_dict of the selected model (load with weights_only=True)
        regularizer.pt    the regularizer's state (layer weights, running means), if any
        checkpoint.pt     last training checkpoint (removed once the run is done)
        train_log.jsonl   one JSON line per logged step / epoch
        metrics.json      train costs + one entry per suite test; written atomically

Files are written to a temporary name in the same folder and renamed (atomic on POSIX), so a
reader never sees half a file and many jobs on many machines never need a lock, except for
merges into one run's metrics.json, which take an fcntl lock on that run's folder.
"""
from __future__ import annotations

import contextlib
import fcntl
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch


class CorruptCheckpoint(RuntimeError):
    """A checkpoint file exists but is not a loadable state dict."""


def run_dir_for(cfg) -> Path:
    name = f"{cfg.regularizer}-{cfg.dataset.replace(':', '_').replace('/', '_')}-s{cfg.seed}-{cfg.hash()}"
    return Path(cfg.out).expanduser().resolve() / name


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n").encode())


def _json_default(o):
    if isinstance(o, torch.Tensor):
        return o.item() if o.numel() == 1 else o.tolist()
    if hasattr(o, "item"):
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def atomic_torch_save(path: Path, obj: Any) -> None:
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_state(path: Path, map_location="cpu") -> Any:
    """torch.load with weights_only=True; a damaged file is reported as a corrupt checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:
        head = path.read_bytes()[:64]
        what = " (it looks like an HTML page, e.g. a failed download)" if head.lstrip().lower().startswith((b"<!doctype", b"<html")) else ""
        raise CorruptCheckpoint(f"corrupt checkpoint {path}{what}: {type(e).__name__}: {str(e)[:200]}") from e


def read_json(path: Path, default=None):
    path = Path(path)
    if not path.is_file():
        return default
    with open(path) as f:
        return json.load(f)


@contextlib.contextmanager
def locked(run_dir: Path):
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / ".lock", "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def merge_metrics(run_dir: Path, updates: dict) -> dict:
    """Merge top-level keys into metrics.json atomically (read-modify-rename under a lock)."""
    run_dir = Path(run_dir)
    with locked(run_dir):
        m = read_json(run_dir / "metrics.json", {}) or {}
        m.update(updates)
        atomic_write_json(run_dir / "metrics.json", m)
    return m


def append_log(path: Path, obj: dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(obj, default=_json_default) + "\n")


def git_commit() -> str | None:
    try:
        here = Path(__file__).resolve().parent.parent
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        if out.returncode == 0:
            dirty = subprocess.run(["git", "status", "--porcelain"], cwd=here, capture_output=True, text=True, timeout=5)
            return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except Exception:
        pass
    return None


def versions() -> dict:
    v = {"python": sys.version.split()[0], "platform": platform.platform(), "torch": torch.__version__}
    from importlib.metadata import PackageNotFoundError, version
    # read from the installed metadata: importing robustbench or foolbox here would cost seconds
    for dist in ("torchvision", "numpy", "torchattacks", "foolbox", "pandas", "robustbench", "regbench"):
        try:
            v[dist] = version(dist)
        except PackageNotFoundError:
            pass
    return v


def device_info(device: torch.device) -> dict:
    d = {"type": device.type, "threads": torch.get_num_threads()}
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        d.update(name=p.name, memory_gb=round(p.total_memory / 2**30, 1))
    else:
        d["name"] = platform.processor() or platform.machine()
        with contextlib.suppress(Exception):
            for line in open("/proc/cpuinfo"):
                if line.startswith("model name"):
                    d["name"] = line.split(":", 1)[1].strip()
                    break
        d["cpus"] = os.cpu_count()
    return d


def find_records(*roots) -> list[Path]:
    """Every run directory (one with a config.json) under the given roots."""
    out = []
    for r in roots:
        r = Path(r)
        if (r / "config.json").is_file():
            out.append(r)
            continue
        out += sorted(p.parent for p in r.glob("**/config.json"))
    return out
