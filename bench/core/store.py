"""File primitives of the run records (`bench.core.records.Record` is the type that uses them): record
folder names, atomic writes, strict JSON, weights-only loads, locks. One directory per (config, seed),
named by the config's hash:

    <out>/<regularizer>-<dataset>-s<seed>-<hash>/
        config.json       the full resolved config + versions, device, git commit
        model.pt          plain state_dict of the selected model (load with weights_only=True)
        regularizer.pt    the regularizer's state (layer weights, running means), if any
        checkpoint.pt     last training checkpoint (removed once the run is done)
        train_log.jsonl   one JSON line per logged step / epoch
        metrics.json      train costs + one entry per suite test; written atomically

Files are written to a temporary name in the same folder and renamed (atomic on POSIX), so a
reader never sees half a file and many jobs on many machines never need a lock, except for
merges into one run's metrics.json, which take an fcntl lock on that run's folder (`.lock`), and
a whole `bench run` (train + evaluate), which holds the run lock (`.run.lock`, re-entrant within a
process) so that two identical commands never train or evaluate the same record twice.

JSON is strict: a non-finite float (NaN, +-Infinity) is written as `null` and its value is
recorded, by JSON pointer, under the top-level key `"_nonfinite"`; `read_json` restores it (and
still reads old files with bare `NaN`/`Infinity` tokens). Files follow the process umask.
"""
from __future__ import annotations

import contextlib
import fcntl
import io
import json
import math
import os
import platform
import re
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import torch


class CorruptCheckpoint(RuntimeError, ValueError):
    """A checkpoint file exists but is not a loadable state dict (a ValueError too: the CLI reports
    it in one line)."""


class DamagedRecord(ValueError):
    """A record file (config.json, metrics.json, ...) exists but is not valid JSON."""

    def __init__(self, path, detail: str = ""):
        self.path = Path(path)
        self.detail = detail
        msg = f"damaged record file {self.path}: {detail}" if detail else f"damaged record file {self.path}"
        if self.path.name in ("config.json", "metrics.json") and "--force" not in msg:
            msg += (f"; to redo this record rerun `python -m bench run` with the same arguments and --force, or move "
                    f"the folder {self.path.parent} away")
        super().__init__(msg)


_SLUG_BAD = re.compile(r"[^A-Za-z0-9_.+=:-]")


def safe_slug(text: str, max_len: int = 80) -> str:
    """A file-name-safe form of `text`: characters other than letters, digits and `_ . + = : -`
    become `_`, a leading dot becomes `_.` (no hidden or `..` names), at most `max_len` characters.
    Ordinary names (`pixel_sim`, `fashion_mnist`) are unchanged."""
    s = _SLUG_BAD.sub("_", str(text))
    if not s or s.startswith("."):
        s = "_" + s
    return s[:max_len]


def run_dir_for(cfg) -> Path:
    """`<out>/<regularizer>-<dataset>-s<seed>-<hash>`, every part a safe slug, always directly
    inside `out` (whatever the regularizer or dataset name holds)."""
    out = Path(cfg.out).expanduser().resolve()
    ds = str(cfg.dataset)
    ds = "npz-" + ds[len("npz:sha256="):][:12] if ds.startswith("npz:sha256=") else ds  # array file: its content
    ds = safe_slug(ds.replace(":", "_").replace("/", "_"))
    name = f"{safe_slug(cfg.regularizer)}-{ds}-s{cfg.seed}-{cfg.hash()}"
    path = out / name
    if path.parent != out or name in (".", ".."):  # cannot happen with a slug; a last guard
        raise ValueError(f"record name {name!r} would leave the results folder {out}")
    return path


def _umask() -> int:
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    with _UMASK_LOCK:
        m = os.umask(0o022)
        os.umask(m)
    return m


_UMASK_LOCK = threading.Lock()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary name in the same folder, fsync, rename: a reader sees the old file or the new
    one, never half of one, and a failed write (a full disk, ...) leaves neither a temporary file nor a
    damaged target. An OSError names `path` (not the temporary name)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name[:200]}.", suffix=".tmp")
    except OSError as e:
        raise _named(e, path) from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.chmod(f.fileno(), 0o666 & ~_umask())  # mkstemp makes 0600; a shared folder needs the umask's mode
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise _named(e, path) from None
        raise


def _named(e: OSError, path: Path) -> OSError:
    """The same error, naming the file the caller meant to write (or the folder that could not be made)."""
    if e.filename is not None and not str(e.filename).endswith(".tmp"):
        return e
    return type(e)(e.errno, e.strerror or str(e), str(path))


NONFINITE_KEY = "_nonfinite"


def _nonfinite_text(x: float) -> str:
    return "NaN" if math.isnan(x) else ("Infinity" if x > 0 else "-Infinity")


def _ptr_escape(k) -> str:
    return str(k).replace("~", "~0").replace("/", "~1")


def strict_json_obj(obj: Any) -> Any:
    """`obj` as plain JSON values with every non-finite float replaced by None; the replaced values
    are listed (JSON pointer -> "NaN" | "Infinity" | "-Infinity") under `_nonfinite` of a top-level
    dict (or returned in a wrapper for other top-level values)."""
    found: dict[str, str] = {}

    def walk(o, ptr):
        if isinstance(o, bool) or o is None or isinstance(o, (str, int)):
            return o
        if isinstance(o, float):
            if math.isfinite(o):
                return o
            found[ptr] = _nonfinite_text(o)
            return None
        if isinstance(o, dict):
            return {str(k): walk(v, f"{ptr}/{_ptr_escape(k)}") for k, v in o.items() if k != NONFINITE_KEY}
        if isinstance(o, (list, tuple)):
            return [walk(v, f"{ptr}/{i}") for i, v in enumerate(o)]
        return walk(_json_default(o), ptr)

    if isinstance(obj, dict):
        out = walk(obj, "")
        if found:
            out[NONFINITE_KEY] = found
        return out
    out = walk(obj, "/" + _WRAPPED)
    return {_WRAPPED: out, NONFINITE_KEY: found} if found else out


_WRAPPED = "_nonfinite_value"  # a non-dict top-level value with non-finite floats inside


def restore_nonfinite(obj: Any) -> Any:
    """Inverse of `strict_json_obj`: put the recorded non-finite floats back (as Python floats)."""
    if not isinstance(obj, dict) or not isinstance(obj.get(NONFINITE_KEY), dict):
        return obj
    found = obj.pop(NONFINITE_KEY)
    for ptr, text in found.items():
        val = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}.get(text)
        parts = [p.replace("~1", "/").replace("~0", "~") for p in str(ptr).split("/")[1:]]
        if val is None or not parts:
            continue
        cur = obj
        try:
            for p in parts[:-1]:
                cur = cur[int(p)] if isinstance(cur, list) else cur[p]
            last = parts[-1]
            if isinstance(cur, list):
                if cur[int(last)] is None:
                    cur[int(last)] = val
            elif isinstance(cur, dict) and cur.get(last, 0) is None:
                cur[last] = val
        except (KeyError, IndexError, ValueError, TypeError):
            continue
    if set(obj) == {_WRAPPED}:
        return obj[_WRAPPED]
    return obj


def dumps_strict(obj: Any, **kw) -> str:
    """JSON text without NaN/Infinity tokens (see `strict_json_obj`)."""
    return json.dumps(strict_json_obj(obj), allow_nan=False, **kw)


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (dumps_strict(obj, indent=2, sort_keys=True) + "\n").encode())


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
        html = head.lstrip().lower().startswith((b"<!doctype", b"<html"))
        what = " (it looks like an HTML page, e.g. a failed download)" if html else ""
        raise CorruptCheckpoint(f"corrupt checkpoint {path}{what}: {type(e).__name__}: {str(e)[:200]}") from e


def sha256_file(path: Path) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB chunks (checkpoints, target files)."""
    import hashlib
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_json(path: Path, default=None):
    """The JSON object in `path` (non-finite values restored), or `default` when there is no file.
    A file that exists but does not parse raises `DamagedRecord` naming the path."""
    path = Path(path)
    if not path.is_file():
        return default
    text = ""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        return restore_nonfinite(json.loads(text))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        what = ("not UTF-8 text" if isinstance(e, UnicodeDecodeError) else "empty file" if not text.strip()
                else f"not valid JSON ({e})" if isinstance(e, json.JSONDecodeError) else type(e).__name__)
        raise DamagedRecord(path, what) from None
    except OSError as e:
        raise DamagedRecord(path, f"cannot be read ({e.strerror or e})") from None


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


_HELD: dict[str, list] = {}  # run-lock path -> [open file, depth] held by this process
_HELD_LOCK = threading.RLock()


@contextlib.contextmanager
def run_lock(run_dir: Path, log=None):
    """The lock of a whole run (train + evaluate) on `run_dir/.run.lock`. Re-entrant within a
    process (a nested `train()` or a surrogate that is this very record takes it again); another
    process waits, after saying once that the run is in progress there. A separate file from
    `.lock` (the metrics merge lock): flock is per open file description, so the two never
    deadlock each other."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    key = str((run_dir / ".run.lock").resolve())
    with _HELD_LOCK:
        held = _HELD.get(key)
        if held is not None:
            held[1] += 1
    if held is not None:
        try:
            yield
        finally:
            with _HELD_LOCK:
                held[1] -= 1
        return
    fh = open(key, "a+")
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if log is not None:
                log(f"[regbench] run in progress in another process ({run_dir}); waiting for it to finish")
            fcntl.flock(fh, fcntl.LOCK_EX)
        with _HELD_LOCK:
            _HELD[key] = [fh, 1]
        try:
            yield
        finally:
            with _HELD_LOCK:
                _HELD.pop(key, None)
            fcntl.flock(fh, fcntl.LOCK_UN)
    finally:
        fh.close()


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
        f.write(dumps_strict(obj) + "\n")


def git_commit() -> str | None:
    try:
        here = Path(__file__).resolve().parent.parent
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        if out.returncode == 0:
            dirty = subprocess.run(["git", "status", "--porcelain"], cwd=here, capture_output=True, text=True,
                                   timeout=5)
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
