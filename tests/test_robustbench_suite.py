"""The `robustbench` suite: AutoAttack standard through RobustBench's AutoAttack on a zoo architecture
(robustbench's WideResNet, local weights) against AutoAttack's own result on the same images; zoo models
get a transfer surrogate of their own data and colour; the check against RobustBench's published numbers
runs where the weights and CIFAR-10 are present."""
import importlib.metadata
import json
import math
import os
from pathlib import Path

import pytest
import torch

try:
    importlib.metadata.distribution("robustbench")
except importlib.metadata.PackageNotFoundError:
    pytest.skip("robustbench is not installed (pip install 'regbench[robustbench]')", allow_module_level=True)

import attacks
from attacks import robustbench_suite as rbs
from bench.app import robustbench as rb_flow
from leaderboard import robustbench as lrb


@pytest.fixture(scope="module")
def tiny_wrn():
    lrb.import_robustbench()
    from robustbench.model_zoo.architectures.wide_resnet import WideResNet
    torch.manual_seed(0)
    net = WideResNet(depth=10, widen_factor=1, num_classes=10)
    g = torch.Generator().manual_seed(1)
    net.train()
    with torch.no_grad():  # batch-norm statistics of real-looking inputs, so gradients are not degenerate
        for _ in range(3):
            net(torch.rand(64, 3, 32, 32, generator=g))
    return net.eval()


def test_suite_autoattack_equals_autoattacks_own_result(tiny_wrn):
    g = torch.Generator().manual_seed(2)
    x = torch.rand(3, 3, 32, 32, generator=g)
    with torch.no_grad():
        pred = tiny_wrn(x).argmax(1)
    y = pred.clone()
    y[2] = (pred[2] + 1) % 10  # one image misclassified from the start: never robust
    attacks.register_suite("rb_check", [("clean", {}), ("rb_autoattack_linf", {"n": 3})])
    ctx = attacks.EvalContext(model=tiny_wrn, x=x, y=y, seed=0, dataset="cifar10", progress=False)
    res = attacks.evaluate(ctx, suite="rb_check", log=lambda *a: None)["rb_autoattack_linf"]
    assert res["protocol"]["eps"] == pytest.approx(8 / 255) and res["result"]["details"]["norm"] == "Linf"
    # AutoAttack's own run (the package robustbench.eval imports), same images, seed and settings
    import autoattack
    aa = autoattack.AutoAttack(tiny_wrn, norm="Linf", eps=8 / 255, version="standard", device="cpu", seed=0)
    out = aa.run_standard_evaluation(x, y, batch_size=250)
    adv = out[0] if isinstance(out, tuple) else out
    with torch.no_grad():
        own = (tiny_wrn(adv).argmax(1) == y).tolist()
    assert res["result"]["details"]["robust"] == own
    assert res["result"]["summary"]["robust_accuracy"] == pytest.approx(sum(own) / 3)
    assert res["result"]["summary"]["clean_accuracy"] == pytest.approx(2 / 3)
    assert res["result"]["details"]["max_perturbation"] <= 8 / 255 + 1e-6


def test_not_applicable_says_why(tiny_wrn):
    gray = attacks.EvalContext(model=tiny_wrn, x=torch.rand(2, 1, 32, 32), y=torch.zeros(2, dtype=torch.long),
                               dataset="cifar10", progress=False)
    for name in ("rb_autoattack_linf", "rb_autoattack_l2", "rb_corruptions"):
        r = attacks.TESTS[name]()(gray)["result"]
        assert "RGB 32x32" in r["details"]["skipped"]
    other = attacks.EvalContext(model=tiny_wrn, x=torch.rand(2, 3, 32, 32), y=torch.zeros(2, dtype=torch.long),
                                dataset="fashion_mnist", progress=False)
    assert "fashion_mnist" in attacks.TESTS["rb_autoattack_l2"]()(other)["result"]["details"]["skipped"]
    assert [t for t, _ in attacks.SUITES["robustbench"]][:4] == ["clean", "rb_autoattack_linf", "rb_autoattack_l2",
                                                                 "rb_corruptions"]
    assert dict(attacks.SUITES["robustbench"])["rb_autoattack_l2"] == {}
    assert attacks.TESTS["rb_autoattack_l2"]().params.eps == 0.5


def test_zoo_model_gets_a_surrogate_of_its_own_data(tmp_path, monkeypatch):
    name = "Ding2020MMA"
    torch.manual_seed(0)
    net = lrb.zoo_entries("cifar10", "Linf")[name]["model"]()
    p = tmp_path / "m" / "cifar10" / "Linf" / f"{name}.pt"
    p.parent.mkdir(parents=True)
    torch.save(net.state_dict(), p)
    attacks.register_suite("rb_zoo", [("clean", {}), ("transfer_fgsm", {"n": 8, "eps": [0.0, 0.1]})])
    out = tmp_path / "results"
    rd = rb_flow.eval_robustbench(name, "Linf", tmp_path / "m", suite="rb_zoo", n_examples=8, out=out,
                              dataset="fashion_mnist", surrogate_preset="tiny", progress=False, log=lambda *a: None)
    m = json.loads((rd / "metrics.json").read_text())
    tf = m["suite"]["transfer_fgsm"]["result"]
    assert "skipped" not in (tf.get("details") or {})
    rel = tf["details"]["surrogate"]["run_dir"]
    assert not Path(rel).is_absolute()  # no machine path in the record
    sdir = (rd / rel).resolve()
    scfg = json.loads((sdir / "config.json").read_text())["config"]
    assert (scfg["regularizer"], scfg["dataset"], scfg["color"], scfg["image_size"]) == ("none", "fashion_mnist",
                                                                                         "rgb", 32)
    # found, not trained again, the second time
    assert Path(rb_flow.zoo_surrogate("fashion_mnist", out)).resolve() == sdir


PUBLISHED_DIR = os.environ.get("REGBENCH_RB_MODEL_DIR")
CHECK_N = int(os.environ.get("REGBENCH_RB_CHECK_N", "500"))


def _cifar10_present() -> bool:
    try:
        from bench.core import data as bdata
        bdata.load("cifar10", color="rgb", image_size=32, n_train=1, n_test=1, val_fraction=0.01, data_seed=0,
                   download=False)
        return True
    except Exception:  # noqa: BLE001
        return False


@pytest.mark.skipif(not PUBLISHED_DIR or not (Path(PUBLISHED_DIR) / "cifar10" / "Linf").is_dir()
                    or not _cifar10_present(),
                    reason="needs RobustBench weights (REGBENCH_RB_MODEL_DIR=DIR with DIR/cifar10/Linf/<name>.pt) "
                           "and CIFAR-10 on disk; neither is downloaded")
def test_adapter_agrees_with_published_numbers(tmp_path):
    """Clean and AutoAttack L-inf accuracy of each local Linf checkpoint on the first CHECK_N test images
    agree with RobustBench's published numbers within 3 binomial standard errors of CHECK_N images."""
    from leaderboard.published import load_published
    pub = load_published("Linf").set_index("name")
    names = [f.stem for f in (Path(PUBLISHED_DIR) / "cifar10" / "Linf").glob("*.pt") if f.stem in pub.index]
    assert names, "no local checkpoint of a published Linf entry"
    attacks.register_suite("rb_publisher", [("clean", {}), ("rb_autoattack_linf", {"n": CHECK_N})])
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    for name in names[:1]:
        rd = rb_flow.eval_robustbench(name, "Linf", PUBLISHED_DIR, suite="rb_publisher", n_examples=CHECK_N,
                                  out=tmp_path, device=dev, progress=False, log=lambda *a: None)
        s = json.loads((rd / "metrics.json").read_text())["suite"]
        for got, want in ((s["clean"]["result"]["summary"]["accuracy"], pub.loc[name, "clean_acc"] / 100),
                          (s["rb_autoattack_linf"]["result"]["summary"]["robust_accuracy"],
                           pub.loc[name, "robust_acc"] / 100)):
            se = math.sqrt(want * (1 - want) / CHECK_N)
            assert abs(got - want) <= 3 * se + 1e-9, (name, got, want, se)
