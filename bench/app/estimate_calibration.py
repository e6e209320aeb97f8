"""The per-device calibration cache of `bench estimate`: measured rates (train step time, eval forward rate,
forward counts, data sizes) keyed by the run settings that set them and by a fingerprint of the device, in
`$XDG_CACHE_HOME/regbench/calibration.json` (default `~/.cache/regbench/`).

Kept apart from the measurements (`bench.app.estimate_measure`) and the estimate's arithmetic
(`bench.app.estimate`): the cache decides *whether* to measure, so a warm estimate takes seconds.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import time
from pathlib import Path

import torch

CALIBRATION_VERSION = 1
# RunConfig fields that set the cost of a train step / an eval forward (the calibration keys)
STEP_FIELDS = ("dataset", "color", "image_size", "arch", "width", "input_scaling", "batch_size", "regularizer",
               "reg_params", "reg_forward", "augment", "compile", "device")
FORWARD_FIELDS = ("dataset", "color", "image_size", "arch", "width", "input_scaling", "device")
DATA_FIELDS = ("dataset", "color", "image_size", "n_train", "n_test", "val_fraction", "data_seed", "data_dir")


def cache_dir() -> Path:
    """The user's cache folder for regbench: $XDG_CACHE_HOME/regbench, else ~/.cache/regbench."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "regbench"


def cpu_name() -> str:
    """The CPU's model name (from /proc/cpuinfo where there is one)."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return cpu


def device_fingerprint(device) -> str:
    """One line naming what a rate was measured on: the device, its model, cores and torch threads."""
    device = torch.device(device)
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}|torch {torch.__version__}"
    return f"cpu:{cpu_name()}|{os.cpu_count()} cores|{torch.get_num_threads()} threads|torch {torch.__version__}"


class Calibration:
    """Measured rates and counts, cached per device in `calibration.json`: `get(kind, key, measure,
    what)` returns the cached value, or runs `measure()` (printing what it calibrates and how long it
    took), stores and returns it. `refresh=True` measures every key again once. `measured` lists what
    this instance measured (empty on a warm cache)."""

    def __init__(self, path: Path | None = None, refresh: bool = False, log=print):
        self.path = Path(path) if path is not None else cache_dir() / "calibration.json"
        self.refresh = refresh
        self.log = log
        self.measured: list[str] = []
        self.hits: list[str] = []
        self._refreshed: set[str] = set()
        try:
            data = json.loads(self.path.read_text())
            self.entries = data.get("entries", {}) if data.get("version") == CALIBRATION_VERSION else {}
        except (OSError, ValueError):
            self.entries = {}

    @staticmethod
    def key(kind: str, parts: dict) -> str:
        blob = json.dumps(parts, sort_keys=True, default=str)
        return f"{kind}:{hashlib.sha1(blob.encode()).hexdigest()[:16]}"

    def get(self, kind: str, parts: dict, measure, what: str):
        k = self.key(kind, parts)
        hit = self.entries.get(k)
        if hit is not None and not (self.refresh and k not in self._refreshed):
            self.hits.append(what)
            return hit["value"]
        self.log(f"[estimate] calibrating {what} (measured once per device, cached in {self.path}) ...")
        t0 = time.perf_counter()
        value = measure()
        dt = time.perf_counter() - t0
        self.log(f"[estimate]   done in {dt:.1f} s")
        self.entries[k] = {"value": value, "what": what, "parts": parts, "measured_s": round(dt, 3),
                           "when": time.strftime("%Y-%m-%d %H:%M:%S")}
        self._refreshed.add(k)
        self.measured.append(what)
        self.save()
        return value

    def save(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(f".tmp{os.getpid()}")
            tmp.write_text(json.dumps({"version": CALIBRATION_VERSION, "entries": self.entries}, indent=1,
                                      default=str))
            os.replace(tmp, self.path)
        except OSError as e:  # a read-only home still gives an estimate
            self.log(f"[estimate] could not write the calibration cache {self.path}: {e}")


def calibration_parts(cfg, fields, device=None) -> dict:
    d = {f: getattr(cfg, f, None) for f in fields}
    if device is not None:
        d["device"] = device_fingerprint(device)
    return d
