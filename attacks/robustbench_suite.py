"""The `robustbench` suite: RobustBench's own protocol, so a record can be placed on RobustBench's board.

Tests (registered here; the suite is registered at the bottom):
  * `rb_autoattack_linf`  AutoAttack `standard` (APGD-CE, APGD-T, FAB-T, Square) at L-inf eps 8/255,
  * `rb_autoattack_l2`    the same at L2 eps 0.5,
    both through the AutoAttack implementation robustbench.eval uses (the GitHub `autoattack`
    package, or PyPI's `pyautoattack`: the same code under another module name), with
    robustbench.eval.benchmark's arguments (norm, eps, version='standard'); robust accuracy = the model's
    accuracy on the returned adversarials against the true labels (robustbench.utils.clean_accuracy), on the
    first `n` CIFAR-10 test images
    (robustbench.data.load_cifar10(n_examples) takes the first n; a record whose test set is a seeded
    subset gets the first n of the full test set reloaded, `rb_images`).
    Note: robustbench 1.1.1's `benchmark()` itself cannot drive pyautoattack 0.2.0 (it passes
    `log_path=` and `bs=`, and expects one tensor back where pyautoattack returns (x_adv, y_adv)), so
    the call is made here with both packages' signatures handled.
  * `rb_corruptions`      CIFAR-10-C accuracy as robustbench.eval.corruptions_evaluation computes it:
    the 15 corruptions x severities 1-5, the first `n_examples` images of each (no shuffling), mean of
    the 75 accuracies. The source is a parameter and part of the protocol: `source="released"` reads
    the released CIFAR-10-C files from `cifar10c_dir` (`bench eval --cifar10c-dir DIR`; the folder is not
    part of the protocol, the source is), `"generated"` (the default without a folder) generates them
    (attacks/corruption_ops.py): not comparable with RobustBench's published numbers, so the board never
    ranks it, and a record evaluated with one source is re-evaluated, not reused, for the other.
Versions: 2 = the first n images of the full CIFAR-10 test set (v1 took the first n of a record's seeded
subset); rb_corruptions 2 = the source in the protocol.
Every test applies to RGB CIFAR-10 only: on another dataset or a grayscale model it records
`skipped` with the reason, which the leaderboard shows in the cell.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path

import torch

from .base import EvalContext, SuiteTest, accuracy, dataset_of, predict, register_test, skipped
from .suite import register_suite

RB_LINF_EPS = 8 / 255
RB_L2_EPS = 0.5
RB_DATASET = "cifar10"
RB_N_TEST = 10000  # CIFAR-10's test set
SOURCES = ("released", "generated")


def not_applicable(ctx: EvalContext) -> str | None:
    """Why RobustBench's CIFAR-10 protocol cannot apply to this model/data (None when it can)."""
    ds = dataset_of(ctx)
    if ds not in (RB_DATASET, None):
        return f"RobustBench's protocol is defined on CIFAR-10; this record is on {ds}"
    if ctx.x.dim() != 4 or ctx.x.shape[1] != 3 or tuple(ctx.x.shape[-2:]) != (32, 32):
        return (f"RobustBench's protocol needs RGB 32x32 images; this model sees {tuple(ctx.x.shape[1:])} "
                f"(a grayscale record: train with --color rgb)")
    return None


def rb_images(ctx: EvalContext, n: int | None):
    """RobustBench's images: the first `n` of the CIFAR-10 test set (robustbench.data.load_cifar10), at
    most as many as the evaluation has (`--n-examples`). When the context's images are not the test set's
    first ones (a record whose n_test drew a seeded subset), the first n are reloaded from the dataset."""
    from .corruptions import test_indices
    have = len(ctx.x)
    n = have if n is None else min(int(n), have)
    idx = test_indices(ctx, RB_N_TEST, have)[:n]
    if torch.equal(idx.cpu(), torch.arange(n)):
        return ctx.x[:n], ctx.y[:n]
    from bench.core import data as bdata
    d = bdata.load(dataset_of(ctx), color="rgb", image_size=32, n_train=1, n_test=None, data_seed=0,
                   data_dir=getattr(ctx.config, "data_dir", None), download=False)
    return bdata.to_float(d.test_x[:n]).to(ctx.x.device, ctx.x.dtype), d.test_y[:n].to(ctx.y.device)


def autoattack_class():
    """The AutoAttack class robustbench.eval uses: the GitHub `autoattack` package when installed, else
    PyPI's `pyautoattack` (the same code under another module name; `leaderboard.robustbench` aliases
    the two for robustbench's own import)."""
    import importlib
    import importlib.util
    try:
        github = importlib.util.find_spec("autoattack") is not None
    except (ImportError, ValueError):
        github = False
    return importlib.import_module("autoattack" if github else "pyautoattack").AutoAttack


def run_autoattack(model, x: torch.Tensor, y: torch.Tensor, norm: str, eps: float, seed: int | None = 0,
                   batch: int = 250, device=None) -> torch.Tensor:
    """Adversarials of AutoAttack `standard` as robustbench.eval.benchmark runs it; works with the
    GitHub `autoattack` (bs=, returns x_adv) and PyPI's `pyautoattack` 0.2 (batch_size=, returns a tuple)."""
    AA = autoattack_class()
    device = device or x.device
    params = inspect.signature(AA.__init__).parameters
    kw = dict(norm=norm, eps=float(eps), version="standard", device=device)
    if "seed" in params:
        kw["seed"] = seed
    adversary = AA(model, **kw)
    if "verbose" not in params and hasattr(adversary, "verbose"):
        adversary.verbose = False
    run_params = inspect.signature(adversary.run_standard_evaluation).parameters
    bkw = {"batch_size": batch} if "batch_size" in run_params else {"bs": batch}
    out = adversary.run_standard_evaluation(x, y, **bkw)
    return out[0] if isinstance(out, tuple) else out


class _RBAutoAttack(SuiteTest):
    version = "2"  # 2: the first n images of the full test set (rb_images)
    NORM = "Linf"

    @dataclass
    class Params:
        eps: float = RB_LINF_EPS
        n: int | None = 1000
        batch: int = 250

    def run(self, ctx: EvalContext) -> dict:
        why = not_applicable(ctx)
        if why:
            return skipped(why)
        p = self.params
        x, y = rb_images(ctx, p.n)
        import logging
        logging.getLogger("auto-attack").setLevel(logging.WARNING)
        adv = run_autoattack(ctx.model, x, y, self.NORM, p.eps, seed=int(ctx.seed), batch=p.batch, device=ctx.device)
        robust = predict(ctx.model, adv, p.batch) == y
        d = (adv - x).flatten(1)
        dist = d.abs().amax(1) if self.NORM == "Linf" else d.norm(dim=1)
        clean = accuracy(ctx.model, x, y)
        rob = float(robust.float().mean()) if len(x) else float("nan")
        return {"summary": {"robust_accuracy": rob, "clean_accuracy": clean,
                            "relative_robustness": rob / clean if clean > 0 else float("nan")},
                "details": {"n_images": len(x), "norm": self.NORM, "eps": float(p.eps),
                            "robust": [bool(b) for b in robust.tolist()],
                            "max_perturbation": float(dist.max()) if len(x) else 0.0,
                            "implementation": f"{autoattack_class().__module__} AutoAttack version='standard' "
                                              "(as robustbench.eval.benchmark)"}}


@register_test("rb_autoattack_linf")
class RBAutoAttackLinf(_RBAutoAttack):
    NORM = "Linf"


@register_test("rb_autoattack_l2")
class RBAutoAttackL2(_RBAutoAttack):
    NORM = "L2"

    @dataclass
    class Params(_RBAutoAttack.Params):
        eps: float = RB_L2_EPS


@register_test("rb_corruptions")
class RBCorruptions(SuiteTest):
    version = "2"  # 2: `source` (released | generated) in the protocol; first n images of the full test set

    @dataclass
    class Params:
        n_examples: int | None = 10000  # per corruption and severity (RobustBench's corruptions setting)
        source: str | None = None  # "released" | "generated"; None: released when cifar10c_dir is given
        cifar10c_dir: str | None = None  # where the released files are (recorded in details, not the protocol)

    def __init__(self, **params):
        super().__init__(**params)
        p = self.params
        if p.source is None:
            p.source = "released" if p.cifar10c_dir else "generated"
        if p.source not in SOURCES:
            raise ValueError(f"rb_corruptions: unknown source {p.source!r}; valid: {', '.join(SOURCES)}")
        if p.source == "released":
            if not p.cifar10c_dir:
                raise ValueError("rb_corruptions: source 'released' needs cifar10c_dir, the folder of the released "
                                 "CIFAR-10-C .npy files (bench eval --cifar10c-dir DIR)")
            folder = Path(p.cifar10c_dir).expanduser()
            if not folder.is_dir():
                raise FileNotFoundError(f"CIFAR-10-C folder not found: {folder} (--cifar10c-dir: the folder of the "
                                        "released labels.npy and <corruption>.npy files)")
            p.cifar10c_dir = str(folder)
        elif p.cifar10c_dir:
            raise ValueError("rb_corruptions: cifar10c_dir given with source 'generated'; drop one of them")

    def protocol(self, dataset: str | None = None) -> dict:
        proto = super().protocol(dataset)
        proto.pop("cifar10c_dir", None)  # where the files lie is not the protocol; which files are (source)
        return proto

    def run(self, ctx: EvalContext) -> dict:
        why = not_applicable(ctx)
        if why:
            return skipped(why)
        from . import corruption_ops as ops
        from . import corruptions as C
        p = self.params
        x, y = rb_images(ctx, p.n_examples)
        n = len(x)
        accs = {}
        if p.source == "released":
            import numpy as np
            files = C.released_files(p.cifar10c_dir, ops.CORRUPTIONS)
            labels = np.load(files["labels"], mmap_mode="r")
            idx = torch.arange(n)  # the first n of each corruption and severity, as corruptions_evaluation
            if not torch.equal(torch.from_numpy(np.asarray(labels[:n]).astype("int64")), y.cpu().long()):
                raise ValueError(f"labels.npy in {p.cifar10c_dir} does not match these test labels (CIFAR-10 test "
                                 "order)")
            for c in ops.CORRUPTIONS:
                for s in C.SEVERITIES:
                    xc = C.load_released(files, c, s, idx, 3, 32).to(x.device, x.dtype)
                    accs[(c, s)] = accuracy(ctx.model, xc, y)
            text = "released CIFAR-10-C (zenodo 2535967): comparable with RobustBench"
        else:
            for c in ops.CORRUPTIONS:
                for s in C.SEVERITIES:
                    accs[(c, s)] = accuracy(ctx.model, C.generate(x, c, s, int(ctx.seed)), y)
            text = ("generated with the CIFAR-10-C parameters (no released files): NOT comparable with "
                    "RobustBench's published corruption accuracies")
        mean = sum(accs.values()) / len(accs)
        return {"summary": {"accuracy": mean, "clean_accuracy": accuracy(ctx.model, x, y)},
                "details": {"n_images": n, "source": text, "released": p.source == "released",
                            "cifar10c_dir": p.cifar10c_dir,
                            "per_corruption_severity": {f"{c}/{s}": a for (c, s), a in accs.items()}}}


SUITE = [("clean", {}),
         ("rb_autoattack_linf", {}),
         ("rb_autoattack_l2", {}),
         ("rb_corruptions", {}),
         ("gaussian_noise", {}),
         ("transfer_fgsm", {})]


register_suite("robustbench", SUITE)
