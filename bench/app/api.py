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
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn

from bench.app import pipeline
from bench.app.sweep import Plan, SweepSpec, run_sweep
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
             progress: bool = False, log=print) -> dict:
    """Run a suite on a record (a `Record` or its folder: results are stored in it, the surrogate is
    provided) or on any `nn.Module` that maps [0, 1] images to logits. For a module, the images are the
    test images of `dataset` (a seeded subset of `n_examples`, as a config's n_test; the dataset's reference
    strengths apply), or `x`/`y` when given;
    transfer tests use `surrogate` when given and are skipped otherwise. `seed`: the suite's seed (default:
    the record's own seed, 0 for a module). `suite` and `device` default to the record's, or to `quick` and
    `auto` for a module. Returns {test: result}."""
    if isinstance(target, (Record, str, Path)):
        return pipeline.evaluate_record(target, suite, device=device, n_examples=n_examples, seed=seed,
                                        only=only, force=force, progress=progress, log=log)
    if not isinstance(target, nn.Module):
        raise TypeError(f"evaluate() takes a Record, a record folder or an nn.Module, got {type(target).__name__}")
    import attacks
    suite = suite or "quick"
    attacks.SUITES[suite]
    device = resolve_device("auto" if device is None else str(device))
    if x is None:
        if dataset is None:
            raise ValueError("evaluate(module, ...) needs `dataset` (whose test images to use) or `x` and `y`")
        x, y, num_classes = _test_images(target, dataset, n_examples, color, image_size, data_dir, download)
    else:
        x, y = x[:n_examples] if n_examples else x, y[:n_examples] if n_examples else y
        num_classes = int(y.max()) + 1 if len(y) else 10
    model = target.to(device).eval()
    sur = None if surrogate is None else attacks.Surrogate(model=surrogate.to(device).eval())
    ctx = attacks.EvalContext(model=model, x=x.to(device), y=y.to(device), device=device, seed=seed or 0,
                              num_classes=num_classes, dataset=dataset, surrogate=sur, progress=progress)
    return attacks.evaluate(ctx, suite=suite, only=only, log=log)


def _test_images(model: nn.Module, dataset: str, n_examples, color, image_size, data_dir, download):
    """([0, 1] test images, labels, classes) of `dataset` in the colour the module takes (from its first
    convolution when `color` is not given)."""
    if color is None:
        conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
        color = "rgb" if conv is not None and conv.in_channels == 3 else "gray"
    d = bdata.load(dataset, color=color, image_size=image_size, n_train=1, n_test=n_examples, data_dir=data_dir,
                   download=download)
    return bdata.to_float(d.test_x), d.test_y, d.num_classes


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
    from leaderboard.aggregate import loading_options
    with loading_options(strict=strict):
        return lb.build_table(*(paths or ("results",)))


__all__ = ["run", "evaluate", "load_model", "sweep", "leaderboard", "SweepSpec", "Record", "RunConfig"]
