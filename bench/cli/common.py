"""What the run-like commands share (`bench run` in bench/cli/commands.py; `bench sweep`, `demo` and `estimate`
through bench/cli/sweep.py): the common run options, the RunConfig fields they set, the results-folder check,
the estimate above which a command asks for --yes, and durations as text.

Both command modules import this one and it imports neither, so the CLI's imports point one way
(commands -> sweep -> common). Like them it loads without torch, numpy, scipy or pandas (`--help` stays instant).
"""
from __future__ import annotations

from bench.core.config import DEFAULT_PRESET, PRESETS
from bench.core.names import DATASETS, DEVICES, FILE_DATASETS, MODELS, SUITES, joined

CONFIRM_ABOVE_S = 3600.0  # `bench run` and `bench sweep` ask for --yes above this estimate (seconds)


def add_common_run_args(p):
    """The options of `bench run` that `bench sweep`, `bench demo` and `bench estimate` share."""
    p.add_argument("--preset", default=None, choices=sorted(PRESETS), metavar="PRESET",
                   help=f"named settings: {joined(sorted(PRESETS))} (default: {DEFAULT_PRESET}, which suits a CPU "
                        f"machine; `paper` runs only when asked for). Options below override the preset")
    p.add_argument("--dataset", default=None, metavar="NAME",
                   help=f"task dataset: {joined(DATASETS, FILE_DATASETS)} (npz: a NumPy archive with x_train, y_train, "
                        "x_test, y_test, named in records by its sha256) (default: the preset's)")
    p.add_argument("--color", choices=["gray", "rgb"], default=None, help="image colour (default: the preset's)")
    p.add_argument("--width", type=float, default=None,
                   help="channel multiplier of the model: 1.0 = 64-128-256-512 channels (default: the preset's)")
    p.add_argument("--arch", default=None, metavar="NAME", help=f"architecture: {joined(MODELS)} (default: resnet18)")
    p.add_argument("--epochs", type=int, default=None, help="training epochs (default: the preset's)")
    p.add_argument("--n-train", type=int, default=None, dest="n_train", metavar="N",
                   help="use the first N training images (default: the preset's; none = all)")
    p.add_argument("--n-test", type=int, default=None, dest="n_test", metavar="N",
                   help="evaluate on the first N test images (default: the preset's; none = all)")
    p.add_argument("--suite", default=None, metavar="SUITE",
                   help=f"evaluation suite: {joined(SUITES)}, or one a --plugin registers (default: the preset's)")
    p.add_argument("--budget-seconds", type=float, default=None, dest="budget_seconds", metavar="S",
                   help="also stop training after S wall-clock seconds (the step budget stays the nominal one)")
    p.add_argument("--data-dir", default=None, dest="data_dir", metavar="DIR",
                   help="where datasets are (default: torchvision's download; Fashion-MNIST also from "
                        "/usr/share/datasets/fashion-mnist)")
    p.add_argument("--out", default=None, metavar="DIR", help="results directory (default: ./results)")
    p.add_argument("--device", default=None, help=f"{DEVICES} (default: auto = cuda when present, else cpu)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any field of bench.core.config.RunConfig, type-checked (e.g. lr=0.05, epochs=2); "
                        "reg_params.NAME=VALUE for a regularizer's hyper-parameters; repeatable")
    p.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                   help="import a module that registers regularizers; repeatable")
    p.add_argument("--step-path", choices=["auto", "plain", "fast"], default=None, dest="step_path",
                   help="the train step's numerics: plain (float32, bit-exact resume), fast (channels_last + bf16 "
                        "autocast), auto (fast on CUDA and on CPUs with native bf16) (default: fast on CUDA, plain "
                        "on CPUs); the resolved path is part of the run's hash")
    p.add_argument("--compile", action="store_true", default=None,
                   help="torch.compile the training step's forwards, loss and penalty as one graph (CUDA graphs on "
                        "CUDA; speed only, not part of the run's hash)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (log lines only)")
    p.add_argument("--debug", action="store_true", help="show tracebacks")


# the RunConfig fields the shared run options set (`add_common_run_args`)
RUN_FIELDS = ("dataset", "color", "width", "arch", "epochs", "n_train", "n_test", "suite", "budget_seconds", "data_dir",
              "out", "device", "compile", "step_path")


def check_results_dir(out) -> None:
    """A results folder (`--out`) that can hold records: not an existing file, not inside a record."""
    from pathlib import Path

    from bench.cli import UserError
    from bench.core.outputs import enclosing_record
    p = Path(str(out)).expanduser()
    if p.exists() and not p.is_dir():
        raise UserError(f"--out {out} is a file; give a results folder")
    rec = enclosing_record(p)
    if rec is not None:
        raise UserError(f"refusing --out {out}: it is inside the record {rec}; give a results folder")


def hms(s: float) -> str:
    """A duration as text: seconds below 2 minutes, minutes below an hour, else hours."""
    if s < 120:
        return f"{s:.0f} s"
    if s < 3600:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"
