"""RobustBench zoo models: the one adapter module for `robustbench` (loading zoo entries offline).

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
(`bench.core.store.load_state`, weights_only=True: an HTML page saved as .pt is named as such) before
calling it; nothing is ever downloaded. Entries that robustbench serves through timm/Hugging Face
(XCiT) have no local layout in 1.1.1 and are refused with a clear message.

Evaluating a zoo model with the suite and writing it as a record is the application's job
(`bench.app.robustbench`); this module only loads, and imports nothing but the core.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
import warnings
from pathlib import Path

import torch

from bench.core import store

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


def require_checkpoints(name: str, threat_model: str, model_dir, zoo_dataset: str = "cifar10") -> list[Path]:
    """The zoo entry's local checkpoint files; a one-line FileNotFoundError naming the first missing one."""
    files = checkpoint_files(name, threat_model, model_dir, zoo_dataset)
    for f in files:
        if not f.is_file():
            raise FileNotFoundError(
                f"RobustBench checkpoint not found: {f} (expected layout MODEL_DIR/<dataset>/<threat_model>/<name>.pt; "
                f"nothing is downloaded: put the file there first)")
    return files


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


def load_zoo_model(name: str, threat_model: str, model_dir, zoo_dataset: str = "cifar10") -> torch.nn.Module:
    """A zoo model from local files only, through robustbench's own `load_model` (eval mode)."""
    import_robustbench()
    threat_model = _check_threat(threat_model)
    if zoo_dataset not in ZOO_DATASETS:
        raise ValueError(f"unsupported RobustBench dataset {zoo_dataset!r}; valid: {', '.join(ZOO_DATASETS)}")
    if _is_timm_hosted(name, zoo_dataset, threat_model):
        raise ValueError(f"RobustBench model {name!r} is served through timm/Hugging Face, which robustbench 1.1.1 "
                         f"cannot load from a local model directory; pick a zoo entry with a local checkpoint")
    files = require_checkpoints(name, threat_model, model_dir, zoo_dataset)
    for f in files:
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


