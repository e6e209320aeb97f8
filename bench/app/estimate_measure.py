"""What `bench estimate` measures on this device: a run's data (real, or random images of its shape), the
seconds of a train step with the real trainer, the eval forward rate of a model, and the forward images each
suite test spends per attacked image (from records of the same protocol, else a tiny measured run).

Kept apart from the calibration cache (`bench.app.estimate_calibration`, which calls these only on a miss)
and from the estimate's arithmetic (`bench.app.estimate`).
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

from bench.app.estimate_calibration import Calibration

# tests whose counted forwards each come with a backward through the evaluated model
GRAD_TESTS = {"min_perturbation": 3.0, "pgd": 3.0, "autoattack": 3.0}
GRAD_FACTOR = 3.0  # forward + backward, in forward-equivalents
# training-set sizes (train split, test split) when the data are not on disk
DATASET_SIZES = {"cifar10": (50000, 10000), "cifar100": (50000, 10000), "fashion_mnist": (60000, 10000),
                 "mnist": (60000, 10000)}


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


class LazyData:
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


def images_of(test, n_available: int) -> int:
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
            used = images_of(t, int(n_ex))
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
        used = images_of(t, len(x))
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

