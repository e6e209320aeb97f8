"""The built-in names, without importing torch, numpy, scipy or pandas: the one list of them.

`python -m bench --help` must answer in well under a second, so the parser cannot ask the real
registries (`regularizers.available()`, `attacks.SUITES`, `bench.core.models`, `bench.core.data`), which import
torch. Their built-in names are listed here instead, and the sweeps' defaults (the demo's four built-ins,
the reproduction's five) come from here too; `tests/test_cli_help.py` checks that these lists equal the
registries, so a new built-in that is not added here fails the tests. Plugins and entry
points can add regularizers at run time: `python -m bench list` shows everything that is installed.
"""
from __future__ import annotations

COMPARISON = ("none", "pixel_sim", "pixel_th", "neural_pred")  # the four built-ins every comparison runs
# The Fashion-MNIST reproduction study's arms, pinned: a new built-in must not grow its plan (issue 31, item 7)
REPRODUCTION = COMPARISON + ("pixel_shuffle",)  # plus Li et al.'s shuffled-target control
BASELINES = ("noise_aug", "fgsm_at")  # training on noisy images, fast adversarial training (issue 31)
REGULARIZERS = REPRODUCTION + BASELINES  # every built-in (tests/test_cli_help.py: equals the registry)
DATASETS = ("cifar10", "cifar100", "fashion_mnist", "mnist")  # plus FILE_DATASETS
FILE_DATASETS = "folder:PATH, npz:PATH"  # image folders (unlabelled) and array files (bench.core.arrays)
MODELS = ("resnet18", "resnet34")
SUITES = ("quick", "paper", "full", "repro_cpu", "robustbench", "cifar_cpu_pilot", "cifar_cpu")
TESTS = ("clean", "gaussian_noise", "gaussian_noise_extended", "transfer_fgsm_extended",
         "transfer_fgsm_reverse_extended", "uniform_noise", "salt_pepper_noise", "transfer_fgsm",
         "transfer_fgsm_reverse", "boundary", "boundary_converged", "min_perturbation", "min_perturbation_fmn",
         "corruptions", "pgd", "autoattack", "hop_skip_jump", "rb_autoattack_linf", "rb_autoattack_l2",
         "rb_corruptions")
LAUNCHERS = ("local", "ray", "slurm")
DEVICES = "auto | cpu | cuda | cuda:N"


def joined(names, extra: str = "") -> str:
    """`a, b, c` (+ extra) for help texts."""
    return ", ".join(names) + (f", {extra}" if extra else "")
