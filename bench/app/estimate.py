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

The calibration cache is `bench.app.estimate_calibration`, the measurements `bench.app.estimate_measure`; this
module is the estimate's arithmetic (jobs x steps x step time, jobs x suite seconds) and its printed form.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from bench.app.estimate_calibration import (DATA_FIELDS, FORWARD_FIELDS, STEP_FIELDS, Calibration, cache_dir,
                                            calibration_parts)
from bench.app.estimate_measure import (GRAD_FACTOR, GRAD_TESTS, LazyData, data_for, forward_images_per_image,
                                        forward_rate, images_of, measure_step_seconds)


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
        key = (cfg.dataset, cfg.suite, json.dumps(calibration_parts(cfg, DATA_FIELDS + FORWARD_FIELDS),
                                                 sort_keys=True, default=str))
        if key in self.suite_cache:
            return self.suite_cache[key]
        lazy = LazyData(cfg, self.log)
        device = resolve_device(cfg.device)
        meta = self.cal.get("data", calibration_parts(cfg, DATA_FIELDS), lazy.meta, f"data sizes of {cfg.dataset}")

        def rate():
            model = model_from_config(cfg, meta["channels"], meta["num_classes"])
            return forward_rate(model, meta["shape"], device)

        fwd_rate = self.cal.get("forward_rate", calibration_parts(cfg, FORWARD_FIELDS, device), rate,
                                f"eval forward rate of {cfg.arch} (width {cfg.width}) on {cfg.dataset}")
        per_img = forward_images_per_image(cfg.suite, cfg, lazy.get, self.out, images=self.suite_images,
                                           log=self.log, calibration=self.cal)
        tests = {t.name: t for t in attacks.build_suite(cfg.suite)}
        suite = {}
        for name, (fpi, how) in per_img.items():
            imgs = images_of(tests[name], meta["n_test"])
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
        key = json.dumps(calibration_parts(cfg, STEP_FIELDS), sort_keys=True, default=str)
        if key not in self.step_cache:
            what = (f"train step time of {cfg.regularizer} on {cfg.dataset} "
                    f"({self.warmup_steps} + {self.measure_steps} steps)")
            self.step_cache[key] = self.cal.get(
                "step", {**calibration_parts(cfg, STEP_FIELDS, sc["device"]), "measure_steps": self.measure_steps,
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
    suites = {sc["dataset"]: {"forward_rate": sc["forward_rate"], "seconds_per_run": sc["seconds"],
                              "tests": sc["tests"]}
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
        lines.append(f"calibration: {cal.get('path')} "
                     f"({'measured now: ' + ', '.join(measured) if measured else 'all cached'}"
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
