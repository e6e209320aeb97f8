"""The names the command line offers, without importing torch, numpy, scipy or pandas.

`python -m bench --help` must answer in well under a second, so the parser cannot ask the real
registries (`regularizers.available()`, `attacks.SUITES`, `bench.models`, `bench.data`), which import
torch. Their built-in names are listed here instead; `tests/test_cli_help.py` checks that these lists
equal the registries, so a new built-in that is not added here fails the tests. Plugins and entry
points can add regularizers at run time: `python -m bench list` shows everything that is installed.
"""
from __future__ import annotations

REGULARIZERS = ("none", "pixel_sim", "pixel_th", "neural_pred", "pixel_shuffle")
DATASETS = ("cifar10", "cifar100", "fashion_mnist", "mnist")  # plus folder:PATH
MODELS = ("resnet18", "resnet34")
SUITES = ("quick", "paper", "full", "repro_cpu", "robustbench")
TESTS = ("clean", "gaussian_noise", "uniform_noise", "salt_pepper_noise", "transfer_fgsm", "transfer_fgsm_reverse", "boundary", "min_perturbation",
         "corruptions", "pgd", "autoattack", "hop_skip_jump", "rb_autoattack_linf", "rb_autoattack_l2",
         "rb_corruptions")
LAUNCHERS = ("local", "ray", "slurm")
DEVICES = "auto | cpu | cuda | cuda:N"


def joined(names, extra: str = "") -> str:
    """`a, b, c` (+ extra) for help texts."""
    return ", ".join(names) + (f", {extra}" if extra else "")
