"""RobustBench zoo models as leaderboard rows: the one adapter module for `robustbench`.

Importing robustbench 1.1.1 has two problems, both handled here and nowhere else:
  * `robustbench.loaders` imports `pkg_resources`, which setuptools 81 removed: the extra
    `regbench[robustbench]` pins `setuptools<81`; without it we raise an ImportError that says so.
  * `robustbench.eval` does `from autoattack import AutoAttack`, but the AutoAttack on PyPI is the
    `pyautoattack` distribution (module `pyautoattack`). When no `autoattack` module exists we alias
    the installed `pyautoattack` package and its already-imported submodules in `sys.modules`
    before importing robustbench, so both names refer to the same module objects.
torchattacks 3.5.1 also ships an old copy of `robustbench/`; scripts/install.sh installs robustbench
1.1.1 after torchattacks so that its files win (tests/test_robustbench_install.py checks the files
against robustbench's own RECORD hashes).

Models load offline through robustbench's own `load_model`: it looks for
`<model_dir>/<dataset>/<threat_model>/<name>.pt` (ensembles: `<name>.pt_m<i>.pt`) and only
downloads when that file is missing, so we check that the files exist and are loadable state dicts
(`bench.store.load_state`, weights_only=True: an HTML page saved as .pt is named as such) before
calling it; nothing is ever downloaded. Entries that robustbench serves through timm/Hugging Face
(XCiT) have no local layout in 1.1.1 and are refused with a clear message.

The model is evaluated by the same suite (`attacks.build_suite` / `attacks.evaluate`) on the
colour track's test images from `bench.data` (CIFAR-10 in RGB at 32x32; `dataset` picks another
bench dataset in colour, e.g. Fashion-MNIST for tests) and written as a normal record marked
external, so it appears in the leaderboard as a row of its own.

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
import importlib
import importlib.util
import sys
import warnings
from pathlib import Path

import torch

from bench import store

THREAT_MODELS = ("Linf", "L2", "corruptions")
ZOO_DATASETS = ("cifar10", "cifar100")


def _alias_autoattack() -> None:
    """Make `import autoattack` resolve to the installed `pyautoattack` package."""
    if "autoattack" in sys.modules:
        return
    try:
        if importlib.util.find_spec("autoattack") is not None:  # the GitHub package is installed
            return
    except (ImportError, ValueError):
        pass
    try:
        pkg = importlib.import_module("pyautoattack")
        importlib.import_module("pyautoattack.state")  # robustbench.eval imports autoattack.state
    except ImportError as e:
        raise ImportError("robustbench needs AutoAttack: `pip install pyautoattack` (module pyautoattack) or the "
                          "GitHub `autoattack` package") from e
    for mod_name, mod in list(sys.modules.items()):
        if mod_name == "pyautoattack" or mod_name.startswith("pyautoattack."):
            sys.modules["autoattack" + mod_name[len("pyautoattack"):]] = mod
    sys.modules["autoattack"] = pkg


def import_robustbench():
    """Import robustbench 1.1.1 with both import problems handled; returns the module."""
    if "robustbench.utils" in sys.modules and "robustbench" in sys.modules:
        return sys.modules["robustbench"]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pkg_resources deprecation warning
            importlib.import_module("pkg_resources")
    except ImportError as e:
        raise ImportError('robustbench 1.1.1 imports pkg_resources, which setuptools>=81 removed: '
                          'pip install "setuptools<81" (or pip install "regbench[robustbench]")') from e
    _alias_autoattack()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rb = importlib.import_module("robustbench")
            importlib.import_module("robustbench.utils")
    except ModuleNotFoundError as e:
        if e.name == "robustbench":
            raise ImportError('robustbench is not installed: pip install "regbench[robustbench]" '
                              '(robustbench==1.1.1, setuptools<81)') from e
        raise
    return rb


def zoo_entries(dataset: str = "cifar10", threat_model: str = "Linf") -> dict:
    import_robustbench()
    from robustbench.model_zoo import model_dicts
    from robustbench.model_zoo.enums import BenchmarkDataset, ThreatModel
    return model_dicts[BenchmarkDataset(dataset)][ThreatModel(threat_model)]


def _check_threat(threat_model: str) -> str:
    if threat_model not in THREAT_MODELS:
        low = {t.lower(): t for t in THREAT_MODELS}
        if str(threat_model).lower() in low:
            return low[str(threat_model).lower()]
        raise ValueError(f"unknown threat model {threat_model!r}; valid: {', '.join(THREAT_MODELS)}")
    return threat_model


def checkpoint_files(name: str, threat_model: str, model_dir, zoo_dataset: str = "cifar10") -> list[Path]:
    """The local files robustbench's load_model reads for a zoo entry (one, or one per ensemble member)."""
    entry = _entry(name, zoo_dataset, threat_model)
    base = Path(model_dir) / zoo_dataset / threat_model / f"{name}.pt"
    gid = entry.get("gdrive_id")
    if isinstance(gid, list):
        return [Path(f"{base}_m{i}.pt") for i in range(len(gid))]
    return [base]


def _entry(name: str, zoo_dataset: str, threat_model: str) -> dict:
    entries = zoo_entries(zoo_dataset, threat_model)
    if name not in entries:
        import difflib
        close = difflib.get_close_matches(name, list(entries), n=5, cutoff=0.5)
        hint = f"; did you mean: {', '.join(close)}" if close else ""
        raise ValueError(f"unknown RobustBench model {name!r} for {zoo_dataset}/{threat_model}{hint} "
                         f"({len(entries)} models; e.g. {', '.join(sorted(entries)[:6])}, ...)")
    return entries[name]


def _is_timm_hosted(name: str, zoo_dataset: str, threat_model: str) -> bool:
    import timm
    return timm.is_model(f"{name.lower().replace('-', '_')}_{zoo_dataset}_{threat_model.lower()}")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_zoo_model(name: str, threat_model: str, model_dir, zoo_dataset: str = "cifar10") -> torch.nn.Module:
    """A zoo model from local files only, through robustbench's own `load_model` (eval mode)."""
    rb = import_robustbench()
    threat_model = _check_threat(threat_model)
    if zoo_dataset not in ZOO_DATASETS:
        raise ValueError(f"unsupported RobustBench dataset {zoo_dataset!r}; valid: {', '.join(ZOO_DATASETS)}")
    if _is_timm_hosted(name, zoo_dataset, threat_model):
        raise ValueError(f"RobustBench model {name!r} is served through timm/Hugging Face, which robustbench 1.1.1 "
                         f"cannot load from a local model directory; pick a zoo entry with a local checkpoint")
    files = checkpoint_files(name, threat_model, model_dir, zoo_dataset)
    for f in files:
        if not f.is_file():
            raise FileNotFoundError(
                f"RobustBench checkpoint not found: {f} (expected layout MODEL_DIR/<dataset>/<threat_model>/<name>.pt; "
                f"nothing is downloaded: put the file there first)")
        store.load_state(f)  # CorruptCheckpoint naming the file (and an HTML page as such)
    from robustbench.utils import load_model
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            model = load_model(model_name=name, model_dir=str(model_dir), dataset=zoo_dataset,
                               threat_model=threat_model)
        except RuntimeError as e:  # state dict of another architecture
            raise store.CorruptCheckpoint(f"checkpoint {files[0]} does not fit RobustBench model {name!r}: "
                                          f"{str(e)[:300]}") from e
    return model.eval()


def _test_images(dataset: str, n_examples, data_dir=None, download: bool = True):
    """The colour track's test images (RGB, 32x32) from bench.data; DatasetNotFound when absent."""
    from bench import data as bdata
    # Only the test split is used; n_train=1 keeps bench.data from preparing a training set we never use.
    d = bdata.load(dataset, color="rgb", image_size=32, n_train=1, n_test=n_examples, val_fraction=0.01,
                   data_seed=0, data_dir=data_dir, download=download)
    return d


def zoo_surrogate(dataset: str, out, device="cpu", *, preset: str = "quick", data_dir=None, download: bool = True,
                  progress: bool = False, log=print, roots=()) -> Path:
    """A finished, unregularized (`none`) record of `dataset` in RGB at 32x32: the transfer surrogate of
    a zoo model. Found under `out` (and `roots`), else trained with `preset` into `out`."""
    from bench.config import build_config
    from bench.train import train
    for root in (out, *roots):
        if not Path(root).exists():
            continue
        for rd in sorted(store.find_records(root)):
            try:
                rec = store.read_json(rd / "config.json") or {}
                train_m = (store.read_json(rd / "metrics.json", {}) or {}).get("train") or {}
            except Exception:  # noqa: BLE001 - a damaged record is simply not a candidate
                continue
            cfg = rec.get("config") or {}
            if (cfg.get("regularizer") == "none" and not rec.get("external") and cfg.get("dataset") == dataset
                    and cfg.get("color") == "rgb" and int(cfg.get("image_size") or 0) == 32
                    and (rd / "model.pt").is_file() and train_m.get("done") and not train_m.get("failed")):
                return rd
    cfg = build_config(preset, dict(dataset=dataset, color="rgb", image_size=32, regularizer="none", reg_params={},
                                    seed=1000, out=str(out), device=str(device), progress=progress,
                                    data_dir=data_dir, download=download))
    log(f"[regbench] no `none` record of {dataset} (rgb, 32x32) under {out}: training the transfer surrogate "
        f"(preset {preset})")
    return train(cfg.replace(seed=cfg.surrogate_seed), log=log)


def eval_robustbench(name: str, threat_model: str, model_dir, suite: str = "paper", n_examples: int | None = None,
                     out="results", device="cpu", dataset: str = "cifar10", *, zoo_dataset: str | None = None,
                     seed: int = 0, data_dir=None, download: bool = True, force: bool = False,
                     progress: bool = True, log=print, only=None, surrogate_preset: str = "quick",
                     surrogate_dir=None) -> Path:
    """Evaluate a RobustBench zoo model with the suite and write it as an external record; returns
    the run directory. `dataset` is the bench dataset whose test images are used (in colour);
    `zoo_dataset` the RobustBench dataset of the model (default: `dataset` for CIFAR, else cifar10)."""
    import attacks
    from bench import data as bdata
    from bench.config import RunConfig
    from bench.models import count_parameters

    threat_model = _check_threat(threat_model)
    zoo_dataset = zoo_dataset or (dataset if dataset in ZOO_DATASETS else "cifar10")
    if suite not in attacks.SUITES:
        raise ValueError(f"unknown suite {suite!r}; valid suites: {', '.join(attacks.available_suites())}")
    device = torch.device(device)
    files = checkpoint_files(name, threat_model, model_dir, zoo_dataset)
    for f in files:  # cheap checks first; load_zoo_model checks that each file is a loadable state dict
        if not f.is_file():
            raise FileNotFoundError(
                f"RobustBench checkpoint not found: {f} (expected layout MODEL_DIR/<dataset>/<threat_model>/<name>.pt; "
                f"nothing is downloaded: put the file there first)")
    d = _test_images(dataset, n_examples, data_dir, download)
    model = load_zoo_model(name, threat_model, model_dir, zoo_dataset).to(device).eval()
    sha = hashlib.sha256("".join(_sha256(f) for f in files).encode()).hexdigest()

    cfg = RunConfig(regularizer=f"robustbench:{name}", reg_params={"threat_model": threat_model}, dataset=dataset,
                    color="rgb", image_size=32, n_test=n_examples, arch=type(model).__name__, width=1.0,
                    input_scaling="none", suite=suite, seed=seed, out=str(out), device=str(device), progress=progress)
    key = hashlib.sha256((cfg.hash() + sha).encode()).hexdigest()[:12]
    run_dir = Path(out).expanduser().resolve() / f"robustbench-{name}-{threat_model}-{dataset}-s{seed}-{key}"
    run_dir.mkdir(parents=True, exist_ok=True)
    record = {"config": cfg.to_dict(), "hash": key, "comparison_key": cfg.comparison_key(),
              "regularizer": {"name": f"robustbench:{name}", "class": "robustbench.utils.load_model",
                              "params": {"threat_model": threat_model}},
              "external": {"source": "robustbench", "name": name, "threat_model": threat_model,
                           "zoo_dataset": zoo_dataset, "checkpoints": [str(f.resolve()) for f in files],
                           "checkpoint_sha256": sha},
              "versions": store.versions(), "git_commit": store.git_commit(),
              "device": store.device_info(device),
              "model": {"arch": type(model).__name__, "width": None, "params": count_parameters(model),
                        "channels": d.channels, "num_classes": d.num_classes, "source": "robustbench"},
              "data": {"dataset": dataset, "color": "rgb", "n_train": 0, "n_val": 0, "n_test": len(d.test_x)},
              "budget": {"steps": None, "external": True}}
    store.atomic_write_json(run_dir / "config.json", record)
    store.merge_metrics(run_dir, {"train": {"done": True, "external": True, "source": "robustbench"}})
    ctx = attacks.EvalContext(model=model, x=bdata.to_float(d.test_x).to(device), y=d.test_y.to(device),
                              config=cfg, run_dir=run_dir, device=device, seed=seed, num_classes=d.num_classes,
                              progress=progress)
    names = [t for t, _ in attacks.SUITES[suite] if not only or t in only]
    if any(t in attacks.TRANSFER_TESTS for t in names):  # a surrogate of the model's own data and colour
        from bench.train import load_trained
        sdir = Path(surrogate_dir) if surrogate_dir else zoo_surrogate(
            dataset, out, device, preset=surrogate_preset, data_dir=data_dir, download=download, log=log)
        _, smodel = load_trained(sdir, device)
        ctx.extras.update(surrogate=smodel, surrogate_dir=str(sdir),
                          surrogate_seed=(store.read_json(Path(sdir) / "config.json") or {}).get("config", {}).get("seed"))
    attacks.evaluate(ctx, suite=suite, run_dir=run_dir, force=force, only=only, log=log)
    log(f"[regbench] RobustBench {name} ({threat_model}) evaluated on {len(d.test_x)} {dataset} test images: {run_dir}")
    return run_dir
