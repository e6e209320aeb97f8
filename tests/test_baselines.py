"""The baselines of issue 31 (`noise_aug`, `fgsm_at`) and the step hooks they use, against independent
computations; fast adversarial training through `bench run` beats `none` under white-box PGD at its training
eps; the reproduction study's plan is unchanged by the new built-ins (its committed records are its plan)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

import regularizers
from regularizers.base import Step, StepModel, step_seed

ROOT = Path(__file__).resolve().parent.parent


def _ctx(dataset: str, n_val: int = 8):
    data = SimpleNamespace(val_x=torch.zeros(n_val, 1, 28, 28, dtype=torch.uint8),
                           val_y=torch.zeros(n_val, dtype=torch.long))
    return SimpleNamespace(config=SimpleNamespace(dataset=dataset, epochs=2), data=data, seed=0)


def _tiny_model(seed: int = 0):
    from bench.core.config import build_config
    from bench.core.models import model_from_config
    torch.manual_seed(seed)
    return model_from_config(build_config("tiny", {}), 1, 10)


# --------------------------------------------------------------------------- noise_aug
def test_noise_aug_adds_the_stated_gaussian_noise():
    reg = regularizers.get("noise_aug", std=0.1)
    x = torch.full((64, 1, 28, 28), 0.5)  # mid-grey: the [0, 1] clamp (5 std away) never binds
    step = Step(index=3, model=StepModel(torch.nn.Identity()), seed=7)
    out = reg.checked_transform(x, torch.zeros(64, dtype=torch.long), step)
    g = torch.Generator().manual_seed(step_seed(7, 3))  # the step's generator, made independently
    assert torch.equal(out, (x + 0.1 * torch.randn(x.shape, generator=g)).clamp(0, 1))
    d = out - x
    assert abs(float(d.mean())) < 0.003 and abs(float(d.std()) - 0.1) < 0.003  # 50k pixels: SE ~0.0003
    assert step.model.take() == (0, 0)  # no forward: no extra cost
    # clamped to the image range; the std of the dataset's default
    assert float(reg.checked_transform(torch.ones(4, 1, 8, 8), None, step).max()) == 1.0
    for ds, std in (("cifar10", 0.05), ("cifar100", 0.05), ("fashion_mnist", 0.25), ("mnist", 0.25)):
        r = regularizers.get("noise_aug")
        r.setup(_ctx(ds))
        assert r.std == std, ds
    with pytest.raises(ValueError, match=r"^regularizer noise_aug: std must be > 0 and <= 1, got -0.1$"):
        regularizers.get("noise_aug", std=-0.1)


# --------------------------------------------------------------------------- fgsm_at
def test_fgsm_at_perturbation_is_fgsm_from_a_random_start_in_the_ball():
    model = _tiny_model().train()
    reg = regularizers.get("fgsm_at")
    reg.setup(_ctx("fashion_mnist"))
    eps = 0.1
    assert reg.eps == eps
    x = torch.rand(16, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    y = torch.arange(16) % 10
    step = Step(index=5, model=StepModel(model), seed=2)
    adv = reg.checked_transform(x, y, step)
    d = adv - x
    assert float(d.abs().max()) <= eps + 1e-6 and float(adv.min()) >= 0 and float(adv.max()) <= 1
    assert float((d.abs() > eps / 2).float().mean()) > 0.5  # a real perturbation, mostly at the ball's edge
    assert step.model.take() == (16, 16)  # one extra forward and backward of the batch, counted
    assert all(p.grad is None for p in model.parameters())  # the parameters' gradients untouched
    # Wong et al.'s recipe, computed here independently of regularizers.baselines
    g = torch.Generator().manual_seed(step_seed(2, 5))
    delta = (torch.rand(x.shape, generator=g) * 2 - 1) * eps
    xs = (x + delta).clamp(0, 1).requires_grad_(True)
    (grad,) = torch.autograd.grad(F.cross_entropy(model(xs), y), xs)
    delta = ((xs.detach() - x) + 1.25 * eps * grad.sign()).clamp(-eps, eps)
    assert torch.allclose(adv, (x + delta).clamp(0, 1), atol=1e-6)


def test_fgsm_at_defaults_and_bad_parameters():
    r = regularizers.get("fgsm_at")
    r.setup(_ctx("cifar10"))
    assert r.eps == 8 / 255 and not r.active and r.changes_step() and r.hooks() == ("transform_batch",)
    for hp, msg in (({"eps": 0.0}, "eps must be > 0 and <= 1, got 0"),
                    ({"step_factor": -1.0}, "step_factor must be > 0, got -1"),
                    ({"eps": "big"}, "eps must be a number, got 'big'")):
        with pytest.raises(ValueError, match=msg):
            regularizers.get("fgsm_at", **hp)
    assert r.overfit(fgsm=0.8, pgd=0.05) and not r.overfit(fgsm=0.8, pgd=0.6) and not r.overfit(0.1, 0.0)


def test_a_step_changing_regularizer_is_not_packed(tmp_path):
    from bench.core.config import build_config
    from bench.engine.packed import PackedTrainer
    cfgs = [build_config("tiny", dict(out=str(tmp_path), regularizer="noise_aug", seed=s, n_train=64,
                                      progress=False)) for s in (0, 1)]
    with pytest.raises(ValueError, match="^regularizer 'noise_aug' changes the training step .* without --pack$"):
        PackedTrainer(cfgs, log=lambda *a: None)


def test_a_packed_sweep_trains_step_changing_regularizers_alone(tmp_path):
    from bench.app.sweep import SweepSpec, plan_sweep
    from bench.app.sweep_run import split_training
    plan = plan_sweep(SweepSpec(regularizers="none,fgsm_at", seeds="0-1", preset="tiny",
                                overrides={"out": str(tmp_path)}, sets=["suite=quick"], pack=2))
    trains = [j for j in split_training(plan.specs, pack=2) if j.kind in ("pack", "train")]
    kinds = sorted((j.kind, j.config["regularizer"]) for j in trains)
    assert kinds == [("pack", "none"), ("train", "fgsm_at"), ("train", "fgsm_at")], kinds


# --------------------------------------------------------------------------- bench run: fgsm_at vs none
# `bench run --preset quick`, shortened to fit a test (4000 images, 2 epochs = 126 steps, width 0.125): on a
# 2-core AMD EPYC at 1 thread, none trains in ~8 s and fgsm_at in ~18 s. White-box PGD (10 steps, step
# 2.5 eps / 10, random start) at fgsm_at's eps 0.1 on the first 256 test images, seeds 0/1/2:
# none 0.008/0.090/0.105, fgsm_at 0.570/0.582/0.516, gaps 0.56/0.49/0.41. The margin is half the smallest gap.
QUICK_SETS = ["n_train=4000", "epochs=2", "width=0.125", "val_fraction=0.05"]
PGD_MARGIN = 0.2
PGD_IMAGES = 256


def _bench_run(reg: str, out: Path, *extra):
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    sets = [a for s in QUICK_SETS for a in ("--set", s)]
    r = subprocess.run([sys.executable, "-m", "bench", "run", "-r", reg, "--preset", "quick", *sets, "--seed", "0",
                        "--no-eval", "--no-progress", "--no-estimate", "--out", str(out), *extra],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    (run,) = [p for p in out.iterdir() if p.name.startswith(reg + "-")]
    return run


@pytest.fixture(scope="module")
def quick_pair(tmp_path_factory):
    from bench.core import data as bdata
    try:
        bdata.load_raw("fashion_mnist", download=False)
    except bdata.DatasetNotFound as e:
        pytest.skip(f"real Fashion-MNIST not installed: {e}")
    out = tmp_path_factory.mktemp("quick")
    return {reg: _bench_run(reg, out) for reg in ("none", "fgsm_at")}


def _pgd_accuracy(run: Path, eps: float) -> float:
    import torchattacks
    from bench.core.data import load_for_config, to_float
    from bench.core.records import Record
    cfg, model = Record(run).load_model()
    data = load_for_config(cfg)
    x, y = to_float(data.test_x[:PGD_IMAGES]), data.test_y[:PGD_IMAGES]
    model.eval()
    torch.manual_seed(0)
    adv = torchattacks.PGD(model, eps=eps, alpha=2.5 * eps / 10, steps=10, random_start=True)(x, y)
    with torch.no_grad():
        return float((model(adv).argmax(1) == y).float().mean())


def test_fgsm_at_beats_none_under_white_box_pgd_at_its_eps(quick_pair):
    torch.set_num_threads(1)
    tr = json.loads((quick_pair["fgsm_at"] / "metrics.json").read_text())["train"]
    eps = tr["fgsm_at"]["eps"]
    assert eps == 0.1
    acc = {reg: _pgd_accuracy(run, eps) for reg, run in quick_pair.items()}
    assert acc["fgsm_at"] > acc["none"] + PGD_MARGIN, acc
    # no catastrophic overfitting flagged, every epoch checked on the fixed validation images
    assert tr["fgsm_at"]["catastrophic_overfitting"] is False and tr["fgsm_at"]["overfit_epochs"] == []
    checks = tr["fgsm_at"]["checks"]
    assert [c["epoch"] for c in checks] == [1, 2] and tr["fgsm_at"]["check_images"] == 200
    assert all(c["fgsm_acc"] > 0.3 and c["pgd_acc"] > 0.2 for c in checks)  # measured: 0.47-0.57, 0.42-0.53


def test_fgsm_at_costs_are_recorded_beside_the_same_step_budget(quick_pair):
    tr = {r: json.loads((p / "metrics.json").read_text())["train"] for r, p in quick_pair.items()}
    assert tr["fgsm_at"]["steps"] == tr["none"]["steps"] == tr["none"]["budget_steps"] == 126
    assert tr["fgsm_at"]["task_images"] == tr["none"]["task_images"] == 126 * 64
    # one extra forward and one extra backward of every task image
    assert tr["fgsm_at"]["extra_forward_images"] == tr["fgsm_at"]["extra_backward_images"] == 126 * 64
    assert tr["fgsm_at"]["step_hooks"] == ["transform_batch"]
    assert "extra_forward_images" not in tr["none"]
    log = [json.loads(x) for x in (quick_pair["fgsm_at"] / "train_log.jsonl").read_text().splitlines()]
    assert sum("co_check_pgd_acc" in e for e in log) == 2


# --------------------------------------------------------------------------- the reproduction study is pinned
def test_reproduction_plan_is_its_committed_records():
    """Adding built-ins must not grow the Fashion-MNIST study (issue 31, item 7): its arms stay the five of
    names.REPRODUCTION, every job its plan makes is a committed record (so a rerun reuses them all), every
    committed record is planned, and each still loads."""
    from bench.app import reproduce, studyfile
    from bench.app.sweep import SweepSpec, plan_sweep
    from bench.core import names
    from bench.core.records import Record
    assert set(names.BASELINES) <= set(names.REGULARIZERS) and not set(names.BASELINES) & set(names.REPRODUCTION)
    assert reproduce.REGULARIZERS == names.REPRODUCTION == names.COMPARISON + ("pixel_shuffle",)
    study = studyfile.load("cpu")
    assert tuple(study.arms()) == names.REPRODUCTION
    out = ROOT / "docs" / "reproduction_records"
    committed = {p.name for p in out.iterdir() if (p / "config.json").is_file()}
    assert len(committed) > 2
    planned = set()
    for sw in study.sweeps():
        spec = SweepSpec(regularizers=sw["regularizers"], seeds=sw["seeds"], preset=sw["preset"],
                         datasets=sw["datasets"], overrides={"out": str(out), **sw["overrides"]}, sets=sw["sets"])
        planned |= {Path(s.run_dir).name for s in plan_sweep(spec).specs}
    assert study.planned_records() == 5 * 5 + 4 * 3
    assert planned == committed, (sorted(planned - committed), sorted(committed - planned))
    for name in sorted(committed):
        rec = Record(out / name)
        assert rec.header()["config"]["regularizer"] in names.REPRODUCTION
        assert json.loads((out / name / "metrics.json").read_text())["train"]["done"]
