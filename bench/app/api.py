"""The Python API, in the spirit of RobustBench's `load_model` / `benchmark`; the CLI only calls it.

    import bench
    cfg = bench.build_config("quick", {"regularizer": "pixel_sim", "seed": 0})
    record = bench.run(cfg)                                   # train + evaluate -> Record
    results = bench.evaluate(record, suite="paper")           # a record ...
    results = bench.evaluate(my_module, suite="quick", dataset="fashion_mnist")  # ... or any nn.Module
    model = bench.load_model(record)
    bench.sweep(bench.SweepSpec(regularizers="none,pixel_sim", seeds="0-2", preset="demo"))
    table = bench.leaderboard("results")                      # pandas DataFrame (tidy: one row per metric)

Every function takes plain values (a `RunConfig`, a `SweepSpec`, paths, modules), never argparse objects.
A dataset may be an array file, `"npz:path/to/arrays.npz"` (bench.core.arrays): `build_config` turns it into
`npz:sha256=<hex>` (records name the bytes, not the path), and `evaluate(module, dataset="npz:...")` reads it.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn as nn

from bench.app import pipeline
from bench.app.sweep import Plan, SweepSpec
from bench.app.sweep_run import run_sweep
from bench.core import data as bdata
from bench.core.config import RunConfig
from bench.core.device import resolve_device
from bench.core.records import Record, as_record


def run(config: RunConfig, *, evaluate: bool = True, force: bool = False, force_eval: bool = False,
        log=print) -> Record:
    """Train the run `config` describes (resuming or skipping a finished record), then evaluate it with
    `config.suite`; returns its record."""
    return pipeline.run_and_evaluate(config, evaluate=evaluate, force=force, force_eval=force_eval, log=log)


def load_model(record, device="cpu") -> nn.Module:
    """A record's selected model (eval mode, [0, 1] inputs), loaded with weights_only=True."""
    return as_record(record).load_model(device)[1]


def evaluate(target, suite: str | None = None, dataset: str | None = None, *, device=None,
             n_examples: int | None = None, seed: int | None = None, surrogate: nn.Module | None = None, only=None,
             force: bool = False, color: str | None = None, image_size: int = 32, data_dir=None,
             download: bool = False, x: torch.Tensor | None = None, y: torch.Tensor | None = None,
             progress: bool = False, log=print, options: dict | None = None) -> dict:
    """Run a suite on a record (a `Record` or its folder: results are stored in it, the surrogate is
    provided) or on any `nn.Module` that maps [0, 1] images to logits. For a module, the images are the
    test images of `dataset` (a seeded subset of `n_examples`, as a config's n_test; the dataset's reference
    strengths apply), or `x`/`y` when given; transfer tests use `surrogate` when given and are skipped otherwise.
    `seed`: the suite's seed (default: the record's own seed, 0 for a module). `suite` and `device` default to the
    record's, or to `quick` and `auto` for a module. `only`: test names as a list, a tuple or the CLI's
    "clean,gaussian_noise". Returns {test: result}.

    A module is checked on a first batch of 8 images before any test runs (each problem a `ValueError`; a module
    that fails on that batch is one naming its shape): images must be float in [0, 1] of shape (N, C, H, W),
    labels integers in [0, classes) with one per image;
    the output must be finite logits of shape (N, classes), classes being the dataset's (or, for `x`/`y`, the
    output's width). A tuple or list output gives its first element as the logits, a dict its `"logits"`
    entry (anything else is refused); a model whose parameters are not float32 gets its inputs cast to its own
    dtype and its logits cast to float32 (said in the log)."""
    if n_examples is not None and (isinstance(n_examples, bool) or not isinstance(n_examples, int) or n_examples < 1):
        raise ValueError(f"n_examples must be a positive number of test images, got {n_examples!r}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= 2**63 - 1):
        raise ValueError(f"seed must be an integer from 0 to {2**63 - 1}, got {seed!r}")
    if isinstance(target, (Record, str, Path)):
        record, rec_suite = Record(target) if not isinstance(target, Record) else target, None
        if record.header() is not None:
            rec_suite = record.config().suite  # every field in its domain, then the hash
            record.check_hash()
        only = _checked_only(only, rec_suite and (suite or rec_suite))  # no record: its own error follows
        return pipeline.evaluate_record(target, suite, device=device, n_examples=n_examples, seed=seed,
                                        only=only, force=force, progress=progress, log=log, options=options)
    if not isinstance(target, nn.Module):
        raise TypeError(f"evaluate() takes a Record, a record folder or an nn.Module, got {type(target).__name__}")
    import attacks
    suite = suite or "quick"
    attacks.SUITES[suite]
    only = _checked_only(only, suite)
    device = resolve_device("auto" if device is None else str(device))
    if x is None:
        if dataset is None:
            raise ValueError("evaluate(module, ...) needs `dataset` (whose test images to use) or `x` and `y`")
        x, y, num_classes, idx = _test_images(target, dataset, n_examples, color, image_size, data_dir, download)
        extras = {"test_indices": idx}  # which test images these are (RobustBench's tests want the first n)
    else:
        extras = {}
        if y is None:
            raise ValueError("evaluate(module, x=...) needs the labels `y` too")
        x, y = x[:n_examples] if n_examples else x, y[:n_examples] if n_examples else y
        num_classes = None  # the model's output width
    source = f"dataset {dataset}" if extras else "the given x"  # where the images of the first batch come from
    target, num_classes = check_model(target.to(device).eval(), x, y, num_classes, device, log=log, source=source)
    model = target
    sur = None if surrogate is None else attacks.Surrogate(model=surrogate.to(device).eval())
    ctx = attacks.EvalContext(model=model, x=x.to(device), y=y.to(device), device=device, seed=seed or 0,
                              num_classes=num_classes, dataset=dataset, surrogate=sur, progress=progress,
                              extras=extras)
    return attacks.evaluate(ctx, suite=suite, only=only, log=log, options=options)


PROBE = 8  # images of the first batch a module is checked on


def _checked_only(only, suite: str | None):
    """`only` as a list of test names of `suite`: a comma-separated str as the CLI's --only takes
    ("clean,gaussian_noise"), a list or a tuple of names. An empty one, or a name that is no test (of the suite,
    when known) is a ValueError listing the valid ones (never silently "all tests" or "nothing")."""
    if only is None:
        return None
    import attacks
    if isinstance(only, str):
        names = [t.strip() for t in only.split(",") if t.strip()]
    elif isinstance(only, (list, tuple, set, frozenset)):
        names = [str(n).strip() for n in only]
    else:
        raise ValueError(f"only= takes test names as a comma-separated str, a list or a tuple, got "
                         f"{type(only).__name__}")
    valid = attacks.suite_tests(suite) if suite else attacks.available_tests()
    if not names or not all(names):
        raise ValueError(f"only= is empty; give test names{f' of suite {suite}' if suite else ''}: {', '.join(valid)}")
    unknown = [n for n in names if n not in attacks.available_tests()]
    if unknown:
        raise ValueError(f"unknown test(s) {', '.join(unknown)} in only=; "
                         f"valid: {', '.join(attacks.available_tests())}")
    outside = [n for n in names if suite and n not in attacks.suite_tests(suite)]
    if outside:
        raise ValueError(f"test(s) {', '.join(outside)} are not in suite {suite} (its tests: "
                         f"{', '.join(attacks.suite_tests(suite))})")
    return names


class _Logits(nn.Module):
    """A module whose output is not plain float32 logits, adapted: inputs cast to its dtype, the logits taken
    from a tuple/list (first element) or a dict (`"logits"`), returned as float32."""

    def __init__(self, model: nn.Module, dtype: torch.dtype):
        super().__init__()
        self.model, self.dtype = model, dtype

    def forward(self, x):
        return _pick_logits(self.model(x.to(self.dtype))).float()


def _pick_logits(out):
    if isinstance(out, (tuple, list)):
        if not out:
            raise ValueError("the model returned an empty tuple; it must return logits (N, classes)")
        out = out[0]
    elif isinstance(out, dict):
        if "logits" not in out:
            raise ValueError(f"the model returned a dict without a 'logits' entry (keys: {', '.join(map(str, out))}); "
                             "return the logits (N, classes), or a dict with 'logits'")
        out = out["logits"]
    if not isinstance(out, torch.Tensor):
        raise ValueError(f"the model must return a tensor of logits (N, classes), got {type(out).__name__}")
    return out


def check_model(model: nn.Module, x: torch.Tensor, y: torch.Tensor, num_classes: int | None, device, log=print,
                source: str = "the given x"):
    """(the module, adapted when its output or dtype need it, and the class count), after checking the images,
    the labels and the module's output on a first batch (see `evaluate`); `source` names where the images
    come from in the error of a module that fails on them."""
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise ValueError("x and y must be torch tensors")
    if x.ndim != 4:
        raise ValueError(f"x must be images of shape (N, C, H, W), got shape {tuple(x.shape)}")
    if y.ndim != 1 or len(y) != len(x):
        raise ValueError(f"x holds {len(x)} images but y has shape {tuple(y.shape)}; give one label per image")
    if len(x) == 0:
        raise ValueError("x holds no images")
    if not x.is_floating_point():
        raise ValueError(f"x must be float images in [0, 1], got {str(x.dtype).replace('torch.', '')} "
                         "(e.g. x.float() / 255)")
    lo, hi = float(x.min()), float(x.max())
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo < -1e-6 or hi > 1 + 1e-6:
        raise ValueError(f"x must be images in [0, 1] (the attacks clamp to that range), got values in "
                         f"[{lo:g}, {hi:g}]" + (" (e.g. x / 255)" if hi > 1.5 else ""))
    if y.is_floating_point() or y.dtype == torch.bool:
        raise ValueError(f"y must hold integer class labels, got {str(y.dtype).replace('torch.', '')}")
    dtypes = {p.dtype for p in model.parameters() if p.is_floating_point()}
    dtype = next(iter(dtypes)) if len(dtypes) == 1 else torch.float32
    raw = _first_batch(model, x[:PROBE].to(device=device, dtype=dtype), source)
    adapted = not isinstance(raw, torch.Tensor) or dtype != torch.float32 or raw.dtype != torch.float32
    out = _pick_logits(raw)
    if out.ndim != 2 or out.shape[0] != min(PROBE, len(x)):
        raise ValueError(f"the model must return logits of shape (N, classes); on {min(PROBE, len(x))} images it "
                         f"returned shape {tuple(out.shape)}")
    classes = out.shape[1]
    if num_classes is not None and classes != num_classes:
        raise ValueError(f"the model returns {classes} logits per image but the dataset has {num_classes} classes")
    if not out.is_floating_point() or not bool(torch.isfinite(out).all()):
        raise ValueError("the model returned non-finite logits (NaN or inf) on the first batch")
    num_classes = classes if num_classes is None else num_classes
    ymin, ymax = int(y.min()), int(y.max())
    if ymin < 0 or ymax >= num_classes:
        raise ValueError(f"labels must be in [0, {num_classes - 1}] ({num_classes} classes), got [{ymin}, {ymax}]")
    if adapted:
        what = ('has ' + str(dtype).replace('torch.', '') + ' parameters' if dtype != torch.float32
                else 'returns ' + type(raw).__name__)
        log(f"[regbench] the model {what}: "
            "evaluated through an adapter (inputs in its dtype, float32 logits"
            + (", the first element / 'logits' entry of its output" if not isinstance(raw, torch.Tensor) else "") + ")")
        model = _Logits(model, dtype).eval()
    return model, num_classes


def _first_batch(model: nn.Module, xb: torch.Tensor, source: str):
    """The module's output on the first batch; its own failure there (a layer sized for other images, a wrong
    channel count, ...) is one ValueError naming the shape it was given and where the images came from."""
    try:
        with torch.no_grad():
            return model(xb)
    except Exception as e:  # noqa: BLE001 -- any failure of user code on valid images, told in one line
        why = " ".join(f"{type(e).__name__}: {e}".split())
        raise ValueError(f"the model failed on the first batch of shape {tuple(xb.shape)} from {source}: {why}") from e


def _test_images(model: nn.Module, dataset: str, n_examples, color, image_size, data_dir, download):
    """([0, 1] test images, labels, classes) of `dataset` in the colour the module takes (from its first
    convolution when `color` is not given)."""
    if color is None:
        conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
        color = "rgb" if conv is not None and conv.in_channels == 3 else "gray"
    d = bdata.load(dataset, color=color, image_size=image_size, n_train=1, n_test=None, data_dir=data_dir,
                   download=download)
    idx = bdata.test_subset(len(d.test_x), n_examples, 0)  # the subset load(n_test=n_examples) draws
    return bdata.to_float(d.test_x[idx]), d.test_y[idx], d.num_classes, idx


def train_packed(configs: list[RunConfig], *, force: bool = False, log=print) -> dict:
    """Train several runs of one comparison (e.g. seeds of one regularizer) packed on one device, each
    into its own ordinary record; returns {record path: None, or the error its run failed with}."""
    from bench.engine.packed import train_packed as _train_packed
    return _train_packed(list(configs), log=log, force=force)


def sweep(spec: SweepSpec, log=print) -> tuple[Plan, dict]:
    """Run what is missing of a sweep (regularizers x seeds x datasets); returns (plan, {job id: result})."""
    return run_sweep(spec, log=log)


def leaderboard(*paths, strict: bool = False):
    """The leaderboard of the records under `paths` (default ./results) as a pandas DataFrame: one row per
    (setup, regularizer, metric) with mean, SEM, n and the difference to `none`."""
    import leaderboard as lb
    from leaderboard.loading import loading_options
    with loading_options(strict=strict):
        return lb.build_table(*(paths or ("results",)))


__all__ = ["run", "evaluate", "load_model", "sweep", "leaderboard", "SweepSpec", "Record", "RunConfig"]
