"""`python -m bench estimate`: the predicted device time of a sweep (train + suite), before launching it.

Takes the same arguments as `bench sweep` (the job list comes from `bench.sweep.plan_sweep`) and
measures on the current machine:

* train: seconds per step of each (dataset, regularizer) with the real trainer (`bench.train.train`)
  on its real model and regularizer, in a temporary folder: two short runs of `w` and `w + k` steps,
  step time = (device_s difference) / k, so start-up (first-step allocations, torch.compile) is not
  counted. Real data when it is on disk, else random uint8 images of the right shape (said in the
  output). A job's train time = its step budget x step time; surrogates count as `none` jobs.
* suite: forward images each test spends per attacked image, from records of the same suite
  protocol under --out when there are any, else from a tiny measured run (the suite's protocol on a
  randomly initialised model of the same architecture at width <= 0.125 over `--suite-images` test
  images, with a same-architecture surrogate: forward counts do not depend on width), times the planned
  number of images, divided by the measured eval forward rate (images/s) of the model. Tests that
  back-propagate through the evaluated model (min_perturbation, pgd, autoattack) count 3 forward
  equivalents per forward (forward + backward); other gradients (the transfer surrogate's) are small
  and not counted. A tiny model may stop some attacks early (e.g. no boundary start), so the suite
  part is an estimate within a small factor, not a promise.
Everything printed is `jobs x steps x step time` and `jobs x suite seconds`, with the parts shown.
"""
from __future__ import annotations

import contextlib
import io
import json
import math
import shutil
import tempfile
import time
from pathlib import Path

import torch

# tests whose counted forwards each come with a backward through the evaluated model
GRAD_TESTS = {"min_perturbation": 3.0, "pgd": 3.0, "autoattack": 3.0}
# training-set sizes (train split, test split) when the data are not on disk
DATASET_SIZES = {"cifar10": (50000, 10000), "cifar100": (50000, 10000), "fashion_mnist": (60000, 10000),
                 "mnist": (60000, 10000)}


# ----------------------------------------------------------------------------- data
def data_for(cfg, log=print):
    """(DataBundle, source): the run's real data when present, else random uint8 tensors of the
    shape the run would see (train size from n_train or the dataset's known size)."""
    from . import data as bdata
    from .train import load_task_data
    try:
        return load_task_data(cfg.replace(download=False)), "real"
    except bdata.DatasetNotFound:
        pass
    n_total, n_test_total = DATASET_SIZES.get(cfg.dataset, (50000, 10000))
    n_val = max(1, math.ceil(cfg.val_fraction * (cfg.n_train or n_total)))
    n_train = min(cfg.n_train, n_total - n_val) if cfg.n_train else n_total - n_val
    n_test = min(cfg.n_test or n_test_total, n_test_total)
    c = 1 if cfg.color == "gray" else 3
    s = cfg.image_size
    g = torch.Generator().manual_seed(0)
    k = bdata.NUM_CLASSES.get(cfg.dataset, 10)

    def imgs(n):
        return torch.randint(0, 256, (n, c, s, s), generator=g, dtype=torch.uint8)

    def labels(n):
        return torch.randint(0, k, (n,), generator=g)

    log(f"[estimate] {cfg.dataset}: data not on disk, timing with random uint8 images of the same shape "
        f"({n_train} train, {c}x{s}x{s})")
    return bdata.DataBundle(name=cfg.dataset, color=cfg.color, num_classes=k, train_x=imgs(n_train),
                            train_y=labels(n_train), val_x=imgs(n_val), val_y=labels(n_val),
                            test_x=imgs(n_test), test_y=labels(n_test)), "random"


# ----------------------------------------------------------------------------- measurements
def measure_step_seconds(cfg, data, warmup: int = 2, steps: int = 6, workdir: Path | None = None) -> dict:
    """Seconds per train step of `cfg` (its model, regularizer, batch, device path) with the real
    trainer: (device_s of a w+k-step run - device_s of a w-step run) / k."""
    from .train import train
    tmp = Path(tempfile.mkdtemp(prefix="regbench-estimate-", dir=workdir))
    try:
        ds = []
        for n in (warmup, warmup + steps):
            c = cfg.replace(epochs=1, steps_per_epoch=n, out=str(tmp / f"s{n}"), progress=False, select="last",
                            budget_seconds=None, ckpt_every=10 ** 9)
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


def forward_images_per_image(suite: str, cfg, data, out: Path | None, images: int = 16, log=print) -> dict:
    """{test: (forward images per attacked image, source)} for the tests of `suite`."""
    import attacks
    from attacks.base import EvalContext
    from . import data as bdata
    from . import store
    from .models import model_from_config
    tests = attacks.build_suite(suite)
    found: dict[str, tuple[float, str]] = {}
    if out is not None and Path(out).is_dir():  # records of the same protocol
        for mpath in sorted(Path(out).glob("*/metrics.json")):
            m = store.read_json(mpath, {}) or {}
            for t in tests:
                r = (m.get("suite") or {}).get(t.name)
                if t.name in found or not r or r.get("protocol") != t.protocol():
                    continue
                cost, n_ex = r.get("cost") or {}, r.get("n_examples")
                if cost.get("forward_images") is None or not n_ex:
                    continue
                used = _images_of(t, int(n_ex))
                if used > 0 and "skipped" not in ((r.get("result") or {}).get("details") or {}):
                    found[t.name] = (cost["forward_images"] / used, f"record {mpath.parent.name}")
    missing = [t for t in tests if t.name not in found]
    if missing:  # a tiny measured run of the same protocol on `images` test images
        torch.manual_seed(0)
        dev = torch.device("cpu")
        narrow = cfg.replace(width=min(cfg.width, 0.125))  # counts, not speed: a narrow model will do
        model = model_from_config(narrow, data.channels, data.num_classes).eval()
        surrogate = model_from_config(narrow, data.channels, data.num_classes).eval()
        x = bdata.to_float(data.test_x[:images])
        ctx = EvalContext(model=model, x=x, y=data.test_y[:images], config=cfg, device=dev, seed=0,
                          num_classes=data.num_classes, progress=False,
                          extras={"surrogate": surrogate, "surrogate_seed": cfg.surrogate_seed})
        for t in missing:
            with contextlib.redirect_stdout(io.StringIO()):
                r = t(ctx)
            used = _images_of(t, len(x))
            details = (r.get("result") or {}).get("details") or {}
            note = " (skipped there)" if "skipped" in details else ""
            no_start = (details.get("starting_points") or {}).get("no_start") if isinstance(details, dict) else None
            if no_start:  # an untrained model gave some images no adversarial start: they cost nothing
                note = f" (lower bound: {no_start} of {used} images had no adversarial start)"
            found[t.name] = (r["cost"]["forward_images"] / max(used, 1), f"tiny run on {used} images{note}")
    return {t.name: found[t.name] for t in tests}


# ----------------------------------------------------------------------------- the estimate
def estimate(args, log=print, measure_steps: int = 6, warmup_steps: int = 2, suite_images: int = 16) -> dict:
    """The estimate of a sweep's device time: a dict with every part (what `bench estimate` prints)."""
    from .config import RunConfig
    from .models import model_from_config
    from .sweep import plan_sweep
    from .train import resolve_device, steps_per_epoch
    plan = plan_sweep(args)
    step_cache: dict[tuple, dict] = {}
    suite_cache: dict[str, dict] = {}
    groups: dict[tuple, dict] = {}
    sources: dict[str, str] = {}
    for spec in plan.specs:
        cfg = RunConfig.from_dict(spec.config)
        ds = cfg.dataset
        if ds not in suite_cache:
            data, src = data_for(cfg, log)
            sources[ds] = src
            device = resolve_device(cfg.device)
            rate = forward_rate(model_from_config(cfg, data.channels, data.num_classes), data.test_x.shape[1:], device)
            per_img = forward_images_per_image(cfg.suite, cfg, data, plan.out, images=suite_images, log=log)
            import attacks
            tests = {t.name: t for t in attacks.build_suite(cfg.suite)}
            n_test = len(data.test_x)
            suite = {}
            for name, (fpi, how) in per_img.items():
                imgs = _images_of(tests[name], n_test)
                fwd = fpi * imgs * GRAD_TESTS.get(name, 1.0)
                suite[name] = {"forward_images_per_image": fpi, "images": imgs, "grad_factor": GRAD_TESTS.get(name, 1.0),
                               "forward_images": fwd, "seconds": fwd / rate, "source": how}
            suite_cache[ds] = {"data": data, "forward_rate": rate, "tests": suite,
                               "seconds": sum(v["seconds"] for v in suite.values()),
                               "spe": steps_per_epoch(cfg, len(data.train_x))}
        sc = suite_cache[ds]
        key = (ds, cfg.regularizer, json.dumps(cfg.reg_params, sort_keys=True))
        if key not in step_cache:
            log(f"[estimate] timing {cfg.regularizer} on {ds}: {warmup_steps} + {measure_steps} train steps")
            step_cache[key] = measure_step_seconds(cfg, sc["data"], warmup_steps, measure_steps)
        gkey = (spec.kind, ds, cfg.regularizer)
        g = groups.setdefault(gkey, {"kind": spec.kind, "dataset": ds, "regularizer": cfg.regularizer,
                                     "jobs": 0, "steps": cfg.epochs * sc["spe"],
                                     "step_s": step_cache[key]["step_s"],
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
    return {"rows": rows, "train_s": total_train, "suite_s": total_suite, "total_s": total_train + total_suite,
            "jobs": sum(r["jobs"] for r in rows), "data_source": sources,
            "steps_measured": {f"{k[0]}/{k[1]}": v for k, v in step_cache.items()},
            "suite": {ds: {"forward_rate": v["forward_rate"], "seconds_per_run": v["seconds"], "tests": v["tests"]}
                      for ds, v in suite_cache.items()},
            "device": str(resolve_device(RunConfig.from_dict(plan.specs[0].config).device)) if plan.specs else None}


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
            lines.append(f"    {name:<24} {t['forward_images_per_image']:.1f} fwd/img x {t['images']} img"
                         f" x {t['grad_factor']:g} = {t['forward_images']:.0f} fwd -> {t['seconds']:.3f} s  [{t['source']}]")
    lines.append("")
    lines.append(f"total train: {est['train_s']:.3f} s ({_hms(est['train_s'])})")
    lines.append(f"total suite: {est['suite_s']:.3f} s ({_hms(est['suite_s'])})")
    lines.append(f"total: {est['total_s']:.3f} s ({_hms(est['total_s'])}) of device time for {est['jobs']} jobs")
    return "\n".join(lines)


def cmd_estimate(args) -> int:
    est = estimate(args, measure_steps=args.measure_steps, warmup_steps=args.warmup_steps,
                   suite_images=args.suite_images)
    print(format_estimate(est))
    if args.json:
        from .store import atomic_write_json
        atomic_write_json(Path(args.json), {k: v for k, v in est.items()})
        print(f"[estimate] wrote {args.json}")
    return 0


def add_parser(sub) -> None:
    from .sweep import add_sweep_args
    p = sub.add_parser("estimate", help="predict a sweep's device time (train + suite) from rates measured here",
                       description=__doc__.split("\n\n")[0])
    add_sweep_args(p)
    p.add_argument("--measure-steps", type=int, default=6, dest="measure_steps",
                   help="train steps timed per regularizer (after --warmup-steps)")
    p.add_argument("--warmup-steps", type=int, default=2, dest="warmup_steps")
    p.add_argument("--suite-images", type=int, default=16, dest="suite_images",
                   help="test images of the tiny suite run that counts forwards when no record has them")
    p.add_argument("--json", default=None, metavar="FILE", help="also write the estimate as JSON")
    p.set_defaults(func=cmd_estimate)


__all__ = ["estimate", "format_estimate", "measure_step_seconds", "forward_rate", "forward_images_per_image",
           "data_for", "GRAD_TESTS"]
