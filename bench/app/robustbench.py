"""The RobustBench evaluation flow: a zoo model (loaded by `leaderboard.robustbench`) is evaluated by
the same suite (`attacks.evaluate`) on the colour track's test images from `bench.core.data` (CIFAR-10 in
RGB at 32x32; `dataset` picks another bench dataset in colour, e.g. Fashion-MNIST for tests) and written
as a normal record marked external, so it appears in the leaderboard as a row of its own.

Transfer tests need a surrogate of the model's own data and colour: `zoo_surrogate` finds a finished
`none` record of that dataset in RGB at 32x32 under the results folder (any architecture of this
project), or trains one (`surrogate_preset`, default `quick`, at the config's surrogate seed), so a
zoo row is scored like any record instead of by noise alone. The `robustbench` suite
(attacks/robustbench_suite.py: AutoAttack standard at L-inf 8/255 and L2 0.5, CIFAR-10-C) is
RobustBench's own protocol; its rows can be ranked among RobustBench's published entries
(leaderboard/published.py).
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from bench.core import store
from bench.core.device import device_info
from bench.core.records import Record
from leaderboard.robustbench import ZOO_DATASETS, _check_threat, load_zoo_model, require_checkpoints


def _test_images(dataset: str, n_examples, data_dir=None, download: bool = True):
    """The first `n_examples` test images (RGB, 32x32) from bench.core.data, in the test set's own order as
    robustbench.data.load_cifar10 takes them (not a seeded subset); DatasetNotFound when absent."""
    import dataclasses

    from bench.core import data as bdata
    # Only the test split is used; n_train=1 keeps bench.core.data from preparing a training set we never use.
    d = bdata.load(dataset, color="rgb", image_size=32, n_train=1, n_test=None, val_fraction=0.01,
                   data_seed=0, data_dir=data_dir, download=download)
    if n_examples is not None:
        d = dataclasses.replace(d, test_x=d.test_x[:n_examples], test_y=d.test_y[:n_examples])
    return d


def zoo_surrogate(dataset: str, out, device="cpu", *, preset: str = "quick", data_dir=None, download: bool = True,
                  progress: bool = False, log=print, roots=()) -> Path:
    """A finished, unregularized (`none`) record of `dataset` in RGB at 32x32: the transfer surrogate of
    a zoo model. Found under `out` (and `roots`), else trained with `preset` into `out`."""
    from bench.core.config import build_config
    from bench.engine.trainer import train
    for root in (out, *roots):
        if not Path(root).exists():
            continue
        for record in sorted(Record.find(root), key=lambda r: r.path):
            try:
                rec = record.header() or {}
                trained = record.is_trained()
            except Exception:  # noqa: BLE001 - a damaged record is simply not a candidate
                continue
            cfg = rec.get("config") or {}
            if (cfg.get("regularizer") == "none" and not rec.get("external") and cfg.get("dataset") == dataset
                    and cfg.get("color") == "rgb" and int(cfg.get("image_size") or 0) == 32 and trained):
                return record.path
    cfg = build_config(preset, dict(dataset=dataset, color="rgb", image_size=32, regularizer="none", reg_params={},
                                    seed=1000, out=str(out), device=str(device), progress=progress,
                                    data_dir=data_dir, download=download))
    log(f"[regbench] no `none` record of {dataset} (rgb, 32x32) under {out}: training the transfer surrogate "
        f"(preset {preset})")
    return train(cfg.replace(seed=cfg.effective_surrogate_seed, data_seed=cfg.effective_data_seed), log=log)


def eval_robustbench(name: str, threat_model: str, model_dir, suite: str = "paper", n_examples: int | None = None,
                     out="results", device="cpu", dataset: str = "cifar10", *, zoo_dataset: str | None = None,
                     seed: int = 0, data_dir=None, download: bool = True, force: bool = False,
                     progress: bool = True, log=print, only=None, surrogate_preset: str = "quick",
                     surrogate_dir=None, cifar10c_dir=None) -> Path:
    """Evaluate a RobustBench zoo model with the suite and write it as an external record; returns
    the run directory. `dataset` is the bench dataset whose first `n_examples` test images are used (in
    colour); `zoo_dataset` the RobustBench dataset of the model (default: `dataset` for CIFAR, else
    cifar10); `cifar10c_dir` the released CIFAR-10-C files (else the corruption tests generate theirs)."""
    import attacks
    from bench.core import data as bdata
    from bench.core.config import RunConfig

    threat_model = _check_threat(threat_model)
    zoo_dataset = zoo_dataset or (dataset if dataset in ZOO_DATASETS else "cifar10")
    attacks.SUITES[suite]  # an unknown suite: one line listing the valid ones
    device = torch.device(device)
    files = require_checkpoints(name, threat_model, model_dir, zoo_dataset)  # cheap checks before loading data
    d = _test_images(dataset, n_examples, data_dir, download)
    model = load_zoo_model(name, threat_model, model_dir, zoo_dataset).to(device).eval()
    sha = hashlib.sha256("".join(store.sha256_file(f) for f in files).encode()).hexdigest()
    cfg = RunConfig(regularizer=f"robustbench:{name}", reg_params={"threat_model": threat_model}, dataset=dataset,
                    color="rgb", image_size=32, n_test=n_examples, arch=type(model).__name__, width=1.0,
                    input_scaling="none", suite=suite, seed=seed, out=str(out), device=str(device), progress=progress)
    key = hashlib.sha256((cfg.hash() + sha).encode()).hexdigest()[:12]
    record = Record.in_folder(out, f"robustbench-{name}-{threat_model}-{dataset}-s{seed}-{key}")
    record.path.mkdir(parents=True, exist_ok=True)
    record.write_header(_zoo_header(cfg, key, name, threat_model, zoo_dataset, files, sha, model, d, device))
    record.merge({"train": {"done": True, "external": True, "source": "robustbench"}})
    ctx = attacks.EvalContext(model=model, x=bdata.to_float(d.test_x).to(device), y=d.test_y.to(device),
                              config=cfg, run_dir=record.path, device=device, seed=seed, num_classes=d.num_classes,
                              dataset=dataset, progress=progress,
                              extras={"test_indices": torch.arange(len(d.test_x))})  # the first n, in order
    if attacks.needs_surrogate(suite, only):  # a surrogate of the model's own data and colour
        srec = Record(surrogate_dir or zoo_surrogate(dataset, out, device, preset=surrogate_preset, data_dir=data_dir,
                                                     download=download, log=log))
        scfg, smodel = srec.load_model(device)
        ctx.surrogate = attacks.Surrogate(model=smodel, run_dir=str(srec.path), seed=scfg.seed)
    attacks.evaluate(ctx, suite=suite, run_dir=record, force=force, only=only, log=log,
                     options={"cifar10c_dir": str(cifar10c_dir)} if cifar10c_dir else None)
    log(f"[regbench] RobustBench {name} ({threat_model}) evaluated on {len(d.test_x)} {dataset} test images: "
        f"{record.path}")
    return record.path


def _zoo_header(cfg, key, name, threat_model, zoo_dataset, files, sha, model, d, device) -> dict:
    """config.json of a zoo model's record: marked external, with the checkpoints' hashes."""
    from bench.core.models import count_parameters
    return {"config": cfg.to_dict(), "hash": key, "comparison_key": cfg.comparison_key(),
            "regularizer": {"name": f"robustbench:{name}", "class": "robustbench.utils.load_model",
                            "params": {"threat_model": threat_model}},
            "external": {"source": "robustbench", "name": name, "threat_model": threat_model,
                         "zoo_dataset": zoo_dataset, "checkpoints": [str(f.resolve()) for f in files],
                         "checkpoint_sha256": sha},
            "versions": store.versions(), "git_commit": store.git_commit(), "device": device_info(device),
            "model": {"arch": type(model).__name__, "width": None, "params": count_parameters(model),
                      "channels": d.channels, "num_classes": d.num_classes, "source": "robustbench"},
            "data": {"dataset": cfg.dataset, "color": "rgb", "n_train": 0, "n_val": 0, "n_test": len(d.test_x)},
            "budget": {"steps": None, "external": True}}
