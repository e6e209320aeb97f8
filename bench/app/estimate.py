"""`python -m bench estimate`: the predicted device time of a sweep (train + suite), before launching it.

Takes the same arguments as `bench sweep` (a `SweepSpec`; the job list comes from `bench.app.sweep.plan_sweep`). The
answer comes from a **per-device calibration, measured once and cached** in
`$XDG_CACHE_HOME/regbench/calibration.json` (default `~/.cache/regbench/`; `--recalibrate` measures
again), so a warm estimate takes seconds:

* train: seconds per step of each (model, data shape, batch, regularizer) with the real trainer
  (`bench.engine.trainer.train`) in a temporary folder: two short runs of `w` and `w + k` steps, step time =
  (device_s difference) / k, so start-up (first-step allocations, torch.compile) is not counted.
  Real data when it is on disk, else random uint8 images of the right shape (said in the output).
  A job's train time = its step budget x step time; surrogates count as `none` jobs.
* suite: forward images each test spends per attacked image (its protocol's forward count), from
  records of the same protocol under --out when there are any, else from the cache, else from a tiny
  measured run (the protocol on a randomly initialised model of the same architecture at width
  <= 0.125 over `--suite-images` test images, with a same-architecture surrogate: forward counts do
  not depend on width), times the planned number of images, divided by the eval forward rate
  (images/s) of the model measured on this device. A forward that comes with a backward counts 3
  (min_perturbation, pgd, autoattack through the evaluated model; the transfer tests' gradient side:
  the surrogate forward, the evaluated model reverse).
Every line printed is `jobs x steps x step time` and `jobs x suite seconds`, with the parts and the
assumptions shown. `estimate_run_seconds(cfg)` is the same arithmetic for one run.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import torch

# tests whose counted forwards each come with a backward through the evaluated model
GRAD_TESTS = {"min_perturbation": 3.0, "pgd": 3.0, "autoattack": 3.0}
GRAD_FACTOR = 3.0  # forward + backward, in forward-equivalents
# training-set sizes (train split, test split) when the data are not on disk
DATASET_SIZES = {"cifar10": (50000, 10000), "cifar100": (50000, 10000), "fashion_mnist": (60000, 10000),
                 "mnist": (60000, 10000)}
CALIBRATION_VERSION = 1
# RunConfig fields that set the cost of a train step / an eval forward (the calibration keys)
STEP_FIELDS = ("dataset", "color", "image_size", "arch", "width", "input_scaling", "batch_size", "regularizer",
               "reg_params", "reg_forward", "augment", "compile", "device")
FORWARD_FIELDS = ("dataset", "color", "image_size", "arch", "width", "input_scaling", "device")
DATA_FIELDS = ("dataset", "color", "image_size", "n_train", "n_test", "val_fraction", "data_seed", "data_dir")


# ----------------------------------------------------------------------------- the calibration cache
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


def _parts(cfg, fields, device=None) -> dict:
    d = {f: getattr(cfg, f, None) for f in fields}
    if device is not None:
        d["device"] = device_fingerprint(device)
    return d


# ----------------------------------------------------------------------------- data
def data_for(cfg, log=print):
    """(DataBundle, source): the run's real data when present, else random uint8 tensors of the
    shape the run would see (train size from n_train or the dataset's known size)."""
    from bench.core import data as bdata
    try:
        return bdata.load_for_config(cfg.replace(download=False)), "real"
    except bdata.DatasetNotFound:
        pass
    n_total, n_test_total = DATASET_SIZES.get(cfg.dataset, (50000, 10000))
    n_val = max(1, math.ceil(cfg.val_fraction * (cfg.n_train or n_total)))
    n_train = min(cfg.n_train, n_total - n_val) if cfg.n_train else n_total - n_val
    n_test = min(cfg.n_test or n_test_total, n_test_total)
    c = 1 if cfg.color == "gray" else 3
    s = cfg.image_size
    g = torch.Generator().manual_seed(0)
    k = bdata.num_classes(cfg.dataset, 10)

    def imgs(n):
        return torch.randint(0, 256, (n, c, s, s), generator=g, dtype=torch.uint8)

    def labels(n):
        return torch.randint(0, k, (n,), generator=g)

    log(f"[estimate] {cfg.dataset}: data not on disk, timing with random uint8 images of the same shape "
        f"({n_train} train, {c}x{s}x{s})")
    return bdata.DataBundle(name=cfg.dataset, color=cfg.color, num_classes=k, train_x=imgs(n_train),
                            train_y=labels(n_train), val_x=imgs(n_val), val_y=labels(n_val),
                            test_x=imgs(n_test), test_y=labels(n_test)), "random"


class _LazyData:
    """The run's data, loaded only when a measurement needs the images (a warm estimate needs sizes only,
    which are cached with the calibration)."""

    def __init__(self, cfg, log):
        self.cfg, self.log, self._d = cfg, log, None
        self.source = None

    def get(self):
        if self._d is None:
            self._d, self.source = data_for(self.cfg, self.log)
        return self._d

    def meta(self) -> dict:
        d = self.get()
        return {"n_train": len(d.train_x), "n_test": len(d.test_x), "shape": list(d.test_x.shape[1:]),
                "channels": int(d.channels), "num_classes": int(d.num_classes), "source": self.source}


# ----------------------------------------------------------------------------- measurements
def measure_step_seconds(cfg, data, warmup: int = 2, steps: int = 6, workdir: Path | None = None) -> dict:
    """Seconds per train step of `cfg` (its model, regularizer, batch, device path) with the real
    trainer: (device_s of a w+k-step run - device_s of a w-step run) / k."""
    from bench.engine.trainer import train
    tmp = Path(tempfile.mkdtemp(prefix="regbench-estimate-", dir=workdir))
    try:
        ds = []
        for n in (warmup, warmup + steps):
            c = cfg.replace(epochs=1, steps_per_epoch=n, out=str(tmp / f"s{n}"), progress=False, select="last",
                            budget_seconds=None, ckpt_every=None, ckpt_minutes=1e6)
            run = train(c, log=lambda *a: None, data=data)
            m = json.loads((run / "metrics.json").read_text())["train"]
            ds.append(m)
        step_s = max(ds[1]["device_s"] - ds[0]["device_s"], 0.0) / steps
        if step_s <= 0:  # a clock too coarse for the difference: fall back to the long run's mean
            step_s = ds[1]["device_s"] / ds[1]["steps"]
        return {"step_s": step_s, "measured_steps": steps, "warmup_steps": warmup,
                "fast_path": ds[1].get("fast_path"), "device": ds[1].get("device")}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@torch.no_grad()
def forward_rate(model, shape, device, batch: int | None = None, repeats: int = 3) -> float:
    """Eval-mode forward images per second of `model` at `batch` ([0, 1] inputs of `shape`; default
    256 on a GPU, 64 on a CPU, where the rate no longer grows with the batch)."""
    batch = batch or (256 if device.type == "cuda" else 64)
    model = model.to(device).eval()
    x = torch.rand((batch,) + tuple(shape), device=device)
    model(x)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    for _ in range(repeats):
        model(x)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return batch * repeats / (time.perf_counter() - t0)


def _images_of(test, n_available: int) -> int:
    p = test.params
    n = getattr(p, "n", None)
    if n is None:
        n = getattr(p, "n_examples", None)
    return n_available if n is None else min(int(n), n_available)


def _protocol(test, dataset):
    try:
        return test.protocol(dataset)
    except TypeError:  # a test written before protocols took the dataset
        return test.protocol()


def _forward_equivalents(name: str, result: dict) -> float:
    """Forward-equivalents a test's record spent: its counted forwards (x3 where each came with a
    backward), plus the transfer surrogate's forwards (x3 on the gradient side)."""
    cost = result.get("cost") or {}
    fwd = float(cost.get("forward_images") or 0.0)
    details = (result.get("result") or {}).get("details") or {}
    sur = float(((details.get("surrogate") or {}).get("forward_images")) or 0.0) if isinstance(details, dict) else 0.0
    if name in GRAD_TESTS:
        return fwd * GRAD_TESTS[name]
    if name.startswith("transfer_fgsm"):
        reverse = details.get("direction") == "reverse" if isinstance(details, dict) else name.endswith("reverse")
        # the attacker's forwards come with a backward; the target's are plain
        return fwd * GRAD_FACTOR + sur if reverse else fwd + sur * GRAD_FACTOR
    return fwd


def _forwards_from_records(tests, cfg, out: Path | None) -> dict[str, tuple[float, str]]:
    """{test: (forward-equivalents per attacked image, "record NAME")} from records of the same protocol."""
    from bench.core.records import Record
    found: dict[str, tuple[float, str]] = {}
    if out is None or not Path(out).is_dir():
        return found
    for record in Record.find(out):
        results = record.results()
        for t in tests:
            r = results.get(t.name)
            if t.name in found or not r or r.get("protocol") != _protocol(t, cfg.dataset):
                continue
            cost, n_ex = r.get("cost") or {}, r.get("n_examples")
            if cost.get("forward_images") is None or not n_ex:
                continue
            used = _images_of(t, int(n_ex))
            if used > 0 and "skipped" not in ((r.get("result") or {}).get("details") or {}):
                found[t.name] = (_forward_equivalents(t.name, r) / used, f"record {record.name}")
    return found


def forward_images_per_image(suite: str, cfg, data, out: Path | None, images: int = 16, log=print,
                             calibration: Calibration | None = None) -> dict:
    """{test: (forward-equivalents per attacked image, source)} for the tests of `suite`: from records of
    the same protocol under `out`, else the calibration cache, else a tiny measured run (then cached).
    `data` is a DataBundle or a callable returning one (called only for a tiny run)."""
    import attacks
    tests = attacks.build_suite(suite)
    found = _forwards_from_records(tests, cfg, out)
    missing = [t for t in tests if t.name not in found]
    if not missing:
        return {t.name: found[t.name] for t in tests}

    def tiny_run(t):
        from attacks.base import EvalContext, Surrogate
        from bench.core import data as bdata
        from bench.core.models import model_from_config
        d = data() if callable(data) else data
        torch.manual_seed(0)
        dev = torch.device("cpu")
        narrow = cfg.replace(width=min(cfg.width, 0.125))  # counts, not speed: a narrow model will do
        model = model_from_config(narrow, d.channels, d.num_classes).eval()
        surrogate = model_from_config(narrow, d.channels, d.num_classes).eval()
        x = bdata.to_float(d.test_x[:images])
        ctx = EvalContext(model=model, x=x, y=d.test_y[:images], config=cfg, device=dev, seed=0,
                          num_classes=d.num_classes, progress=False,
                          surrogate=Surrogate(model=surrogate, seed=cfg.effective_surrogate_seed))
        with contextlib.redirect_stdout(io.StringIO()):
            r = t(ctx)
        used = _images_of(t, len(x))
        details = (r.get("result") or {}).get("details") or {}
        note = " (skipped there)" if "skipped" in details else ""
        no_start = (details.get("starting_points") or {}).get("no_start") if isinstance(details, dict) else None
        if no_start:  # an untrained model gave some images no adversarial start: they cost nothing
            note = (f" (lower bound: the untrained model left {no_start} image-repeats of {used} images without an "
                    f"adversarial start; a trained model's record counts them)")
        return [_forward_equivalents(t.name, r) / max(used, 1), f"tiny run on {used} images{note}"]

    for t in missing:
        parts = {"test": t.name, "protocol": _protocol(t, cfg.dataset), "arch": cfg.arch, "dataset": cfg.dataset,
                 "color": cfg.color, "images": images}
        if calibration is None:
            log(f"[estimate] counting the forwards of {t.name} on a tiny run ...")
            fpi, how = tiny_run(t)
        else:
            fpi, how = calibration.get("forwards", parts, lambda t=t: tiny_run(t), f"forward count of {t.name}")
        found[t.name] = (float(fpi), how)
    return {t.name: found[t.name] for t in tests}


# ----------------------------------------------------------------------------- the estimate
class _Estimator:
    """The shared arithmetic of `estimate` (a sweep) and `estimate_run_seconds` (one run)."""

    def __init__(self, log=print, measure_steps: int = 6, warmup_steps: int = 2, suite_images: int = 16,
                 refresh: bool = False, calibration: Calibration | None = None, out: Path | None = None):
        self.log = log
        self.measure_steps, self.warmup_steps, self.suite_images = measure_steps, warmup_steps, suite_images
        self.cal = calibration or Calibration(refresh=refresh, log=log)
        self.out = out
        self.suite_cache: dict[tuple, dict] = {}
        self.step_cache: dict[tuple, dict] = {}

    def suite_part(self, cfg) -> dict:
        from bench.core.models import model_from_config
        from bench.core.device import resolve_device
        from bench.engine.epoch_plan import steps_per_epoch
        import attacks
        key = (cfg.dataset, cfg.suite, json.dumps(_parts(cfg, DATA_FIELDS + FORWARD_FIELDS), sort_keys=True,
                                                 default=str))
        if key in self.suite_cache:
            return self.suite_cache[key]
        lazy = _LazyData(cfg, self.log)
        device = resolve_device(cfg.device)
        meta = self.cal.get("data", _parts(cfg, DATA_FIELDS), lazy.meta, f"data sizes of {cfg.dataset}")

        def rate():
            model = model_from_config(cfg, meta["channels"], meta["num_classes"])
            return forward_rate(model, meta["shape"], device)

        fwd_rate = self.cal.get("forward_rate", _parts(cfg, FORWARD_FIELDS, device), rate,
                                f"eval forward rate of {cfg.arch} (width {cfg.width}) on {cfg.dataset}")
        per_img = forward_images_per_image(cfg.suite, cfg, lazy.get, self.out, images=self.suite_images,
                                           log=self.log, calibration=self.cal)
        tests = {t.name: t for t in attacks.build_suite(cfg.suite)}
        suite = {}
        for name, (fpi, how) in per_img.items():
            imgs = _images_of(tests[name], meta["n_test"])
            fwd = fpi * imgs
            suite[name] = {"forward_images_per_image": fpi, "images": imgs,
                           "grad_factor": GRAD_TESTS.get(name, GRAD_FACTOR if name.startswith("transfer") else 1.0),
                           "forward_images": fwd, "seconds": fwd / fwd_rate, "source": how}
        sc = {"dataset": cfg.dataset, "lazy": lazy, "meta": meta, "forward_rate": fwd_rate, "tests": suite,
              "seconds": sum(v["seconds"] for v in suite.values()),
              "spe": steps_per_epoch(cfg, meta["n_train"]), "device": device}
        self.suite_cache[key] = sc
        return sc

    def step_part(self, cfg, sc) -> dict:
        key = json.dumps(_parts(cfg, STEP_FIELDS), sort_keys=True, default=str)
        if key not in self.step_cache:
            what = (f"train step time of {cfg.regularizer} on {cfg.dataset} "
                    f"({self.warmup_steps} + {self.measure_steps} steps)")
            self.step_cache[key] = self.cal.get(
                "step", {**_parts(cfg, STEP_FIELDS, sc["device"]), "measure_steps": self.measure_steps,
                         "warmup_steps": self.warmup_steps},
                lambda: measure_step_seconds(cfg, sc["lazy"].get(), self.warmup_steps, self.measure_steps), what)
        return self.step_cache[key]


def assumptions(est: dict | None = None) -> list[str]:
    return [
        "train time = step budget x seconds per step, measured with the real trainer after warm-up steps "
        "(data loading outside the step, checkpoint writes and evaluation of the validation split not counted)",
        "suite time = forward-equivalents / the eval forward rate measured at one batch size on this device; "
        "a forward with a backward counts 3 (white-box attacks, the gradient side of transfer FGSM)",
        "forward counts per image come from records of the same protocol, else from a tiny run on a randomly "
        "initialised model: early-stopping attacks (min_perturbation) and start searches may use other step "
        "counts on a trained model",
        "surrogates (transfer attacks) are trained once per dataset and count as `none` jobs; jobs already "
        "in the records are not subtracted",
        "rates were measured once per device and cached (--recalibrate measures again); a machine busier or "
        "idler than at calibration time runs slower or faster",
    ]


def estimate(spec, log=print, measure_steps: int = 6, warmup_steps: int = 2, suite_images: int = 16,
             refresh: bool = False, calibration: Calibration | None = None) -> dict:
    """The estimate of a sweep's (`SweepSpec`) device time: a dict with every part (what `bench estimate`
    prints); `refresh` measures this device's rates again instead of using the cached calibration."""
    from bench.core.config import RunConfig
    from bench.app.sweep import plan_sweep
    from bench.core.device import resolve_device
    t0 = time.perf_counter()
    plan = plan_sweep(spec)
    E = _Estimator(log, measure_steps, warmup_steps, suite_images, refresh, calibration, plan.out)
    groups: dict[tuple, dict] = {}
    sources: dict[str, str] = {}
    for spec in plan.specs:
        cfg = RunConfig.from_dict(spec.config)
        ds = cfg.dataset
        sc = E.suite_part(cfg)
        sources[ds] = sc["meta"].get("source") or "?"
        step = E.step_part(cfg, sc)
        gkey = (spec.kind, ds, cfg.regularizer)
        g = groups.setdefault(gkey, {"kind": spec.kind, "dataset": ds, "regularizer": cfg.regularizer,
                                     "jobs": 0, "steps": cfg.epochs * sc["spe"], "step_s": step["step_s"],
                                     "suite_s": sc["seconds"] if spec.kind == "run" else 0.0})
        g["jobs"] += 1
    rows = []
    for g in groups.values():
        g["train_s"] = g["jobs"] * g["steps"] * g["step_s"]
        g["suite_total_s"] = g["jobs"] * g["suite_s"]
        g["total_s"] = g["train_s"] + g["suite_total_s"]
        rows.append(g)
    total_train = sum(r["train_s"] for r in rows)
    total_suite = sum(r["suite_total_s"] for r in rows)
    suites = {sc["dataset"]: {"forward_rate": sc["forward_rate"], "seconds_per_run": sc["seconds"], "tests": sc["tests"]}
              for sc in E.suite_cache.values()}
    return {"rows": rows, "train_s": total_train, "suite_s": total_suite, "total_s": total_train + total_suite,
            "jobs": sum(r["jobs"] for r in rows), "data_source": sources,
            "steps_measured": {k: v for k, v in E.step_cache.items()},
            "suite": suites,
            "device": str(resolve_device(RunConfig.from_dict(plan.specs[0].config).device)) if plan.specs else None,
            "calibration": {"path": str(E.cal.path), "measured": list(E.cal.measured), "cached": len(E.cal.hits)},
            "assumptions": assumptions(None), "seconds_to_estimate": time.perf_counter() - t0}


def estimate_run_seconds(cfg, log=None, calibration: Calibration | None = None, measure_steps: int = 6,
                         warmup_steps: int = 2, suite_images: int = 16) -> float:
    """Predicted device seconds of one run (`cfg`: a RunConfig): its train steps x the calibrated step time
    + its suite's forward-equivalents / the calibrated forward rate. Uses (and fills) the per-device
    calibration cache, so after the first call it answers without measuring. Records under `cfg.out`
    are not read (a fresh run's cost)."""
    log = log or (lambda *a: None)
    E = _Estimator(log, measure_steps, warmup_steps, suite_images, False, calibration, None)
    sc = E.suite_part(cfg)
    step = E.step_part(cfg, sc)
    return cfg.epochs * sc["spe"] * step["step_s"] + sc["seconds"]


def _hms(s: float) -> str:
    s = float(s)
    if s < 120:
        return f"{s:.1f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.2f} h"


def format_estimate(est: dict) -> str:
    lines = [f"device: {est['device']}; data: " + ", ".join(f"{d} ({s})" for d, s in est["data_source"].items()), ""]
    lines.append("train (per group): jobs x steps x step time = seconds")
    for r in est["rows"]:
        label = f"{r['regularizer']}/{r['dataset']}" + (" (surrogate)" if r["kind"] == "surrogate" else "")
        lines.append(f"  {label:<32} {r['jobs']} x {r['steps']} x {r['step_s']:.6f} s = {r['train_s']:.3f} s")
    lines.append("suite (per group): jobs x suite seconds = seconds")
    for r in est["rows"]:
        if r["kind"] == "run":
            label = f"{r['regularizer']}/{r['dataset']}"
            lines.append(f"  {label:<32} {r['jobs']} x {r['suite_s']:.3f} s = {r['suite_total_s']:.3f} s")
    for ds, s in est["suite"].items():
        lines.append(f"  suite of one {ds} run ({s['forward_rate']:.0f} forward images/s):")
        for name, t in s["tests"].items():
            lines.append(f"    {name:<24} {t['forward_images_per_image']:.1f} fwd-eq/img x {t['images']} img"
                         f" = {t['forward_images']:.0f} fwd-eq -> {t['seconds']:.3f} s  [{t['source']}]")
    lines.append("")
    cal = est.get("calibration") or {}
    if cal:
        measured = cal.get("measured") or []
        lines.append(f"calibration: {cal.get('path')} ({'measured now: ' + ', '.join(measured) if measured else 'all cached'}"
                     f"; {cal.get('cached', 0)} cached values used; --recalibrate measures again)")
    lines.append("assumptions:")
    lines += [f"  - {a}" for a in (est.get("assumptions") or assumptions())]
    lines.append("")
    lines.append(f"total train: {est['train_s']:.3f} s ({_hms(est['train_s'])})")
    lines.append(f"total suite: {est['suite_s']:.3f} s ({_hms(est['suite_s'])})")
    lines.append(f"total: {est['total_s']:.3f} s ({_hms(est['total_s'])}) of device time for {est['jobs']} jobs")
    if est["train_s"] > 0:
        lines.append(f"suite / train: {est['suite_s'] / est['train_s']:.3f}")
    return "\n".join(lines)


__all__ = ["estimate", "estimate_run_seconds", "format_estimate", "measure_step_seconds", "forward_rate",
           "forward_images_per_image", "data_for", "GRAD_TESTS", "Calibration", "cache_dir", "assumptions"]
