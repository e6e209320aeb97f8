"""The shape of the code: layers that point one way (import-linter), one Registry class with entry
points for suite tests and suites, the Python API on a plain nn.Module, each shared helper once, short
functions in bench/, and short modules with short lines in every product package."""
import ast
import math
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import torch.nn as nn

ROOT = Path(__file__).resolve().parent.parent
LINT = Path(sys.executable).parent / "lint-imports"
PACKAGES = ("bench", "attacks", "regularizers", "leaderboard")


def _lint(cwd: Path) -> subprocess.CompletedProcess:
    import os
    env = dict(os.environ, PYTHONPATH=str(cwd))
    return subprocess.run([str(LINT), "--no-cache"], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


# --------------------------------------------------------------------------- layers
def test_layer_contracts_hold():
    r = _lint(ROOT)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert "2 kept, 0 broken" in r.stdout


def test_a_core_module_importing_a_layer_above_breaks_the_contract(tmp_path):
    for pkg in PACKAGES:
        shutil.copytree(ROOT / pkg, tmp_path / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    cfg = tmp_path / "bench" / "core" / "config.py"
    cfg.write_text(cfg.read_text() + "\n\ndef _upward():\n    import attacks  # points up: core -> attacks\n"
                   "    return attacks\n")
    r = _lint(tmp_path)
    assert r.returncode != 0, r.stdout[-2000:]
    assert "BROKEN" in r.stdout and "bench.core.config -> attacks" in r.stdout, r.stdout[-3000:]


def test_the_engine_may_not_import_the_suite(tmp_path):
    for pkg in PACKAGES:
        shutil.copytree(ROOT / pkg, tmp_path / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    tr = tmp_path / "bench" / "engine" / "trainer.py"
    tr.write_text(tr.read_text() + "\n\ndef _evaluate_here():\n    import attacks\n    return attacks\n")
    r = _lint(tmp_path)
    assert r.returncode != 0 and "bench.engine.trainer -> attacks" in r.stdout, r.stdout[-3000:]


def test_functions_in_bench_are_short():
    longest = []
    for p in (ROOT / "bench").rglob("*.py"):
        for n in ast.walk(ast.parse(p.read_text())):
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)):
                longest.append((n.end_lineno - n.lineno + 1, f"{p.relative_to(ROOT)}:{n.name}"))
    longest.sort(reverse=True)
    assert longest[0][0] < 60, longest[:5]


MAX_MODULE_LINES = 400
MAX_LINE_CHARS = 120


def test_product_modules_are_short_with_short_lines():
    """Every module of the product packages has at most 400 lines (split along the seams the code has) and no
    line over 120 characters (wrapped, never joined)."""
    too_long, wide = [], []
    for pkg in PACKAGES:
        for p in sorted((ROOT / pkg).rglob("*.py")):
            lines = p.read_text().splitlines()
            rel = p.relative_to(ROOT).as_posix()
            if len(lines) > MAX_MODULE_LINES:
                too_long.append(f"{rel} ({len(lines)} lines)")
            wide += [f"{rel}:{i} ({len(line)} chars)" for i, line in enumerate(lines, 1) if len(line) > MAX_LINE_CHARS]
    assert not too_long, f"modules over {MAX_MODULE_LINES} lines: {', '.join(too_long)}"
    assert not wide, f"lines over {MAX_LINE_CHARS} characters: {', '.join(wide)}"


# --------------------------------------------------------------------------- one Registry
def test_registry_lists_wildcards_errors_and_provenance():
    from bench.core.registry import Registry, UnknownName, registering_as
    reg = Registry("widget", label="valid widgets")
    reg.register("alpha", 1)
    with registering_as("plugin:my_mod"):
        reg.register("beta", 2)
    assert reg.names() == ["alpha", "beta"] and reg.names("b*") == ["beta"] and list(reg) == ["alpha", "beta"]
    assert reg["beta"] == 2 and reg.source("beta") == "plugin:my_mod" and reg.source("alpha") == "builtin"
    with pytest.raises(UnknownName, match=r"unknown widget 'gamma'; valid widgets: alpha, beta"):
        reg["gamma"]
    assert reg.get("gamma", None) is None and "gamma" not in reg
    with pytest.raises(ValueError, match="already registered"):
        reg.register("alpha", 3)
    reg.register("alpha", 3, replace=True)
    assert reg["alpha"] == 3


def test_every_registry_is_the_one_class():
    import attacks
    import regularizers
    from bench.core import data, models
    from bench.core.registry import Registry
    for r in (models.MODELS, data.DATASETS, regularizers.REGULARIZERS, attacks.TESTS, attacks.SUITES):
        assert isinstance(r, Registry)
    assert {r.entry_point_group for r in (models.MODELS, data.DATASETS, regularizers.REGULARIZERS, attacks.TESTS,
                                          attacks.SUITES)} == {"regbench.models", "regbench.datasets",
                                                               "regbench.regularizers", "regbench.tests",
                                                               "regbench.suites"}
    for r, bad in ((models.MODELS, "resnet9000"), (attacks.SUITES, "nope"), (regularizers.REGULARIZERS, "nope")):
        with pytest.raises(ValueError, match="valid"):
            r[bad]


PLUGIN = '''
import torch
from dataclasses import dataclass
from attacks import SuiteTest


class BrightnessShift(SuiteTest):
    """Accuracy after adding a constant to every pixel (a third-party attack)."""
    version = "1"

    @dataclass
    class Params:
        shift: float = 0.2

    def run(self, ctx):
        with torch.no_grad():
            x = (ctx.x + self.params.shift).clamp(0, 1)
            acc = (ctx.model(x).argmax(1) == ctx.y).float().mean().item()
        return {"summary": {"accuracy": acc}}


SUITE = [("clean", {}), ("brightness_shift", {"shift": 0.3})]
'''

SCRIPT = '''
import json, torch, bench, attacks
assert attacks.TESTS.source("brightness_shift") == "entry-point:regbench-brightness", attacks.TESTS.source("brightness_shift")
assert attacks.SUITES.source("brightness_suite") == "entry-point:regbench-brightness"
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 5))
x, y = torch.rand(20, 3, 4, 4), torch.randint(0, 5, (20,))
res = bench.evaluate(model, suite="brightness_suite", x=x, y=y, log=lambda *a: None)
with torch.no_grad():
    want = (model((x + 0.3).clamp(0, 1)).argmax(1) == y).float().mean().item()
print(json.dumps({"got": res["brightness_shift"]["result"]["summary"]["accuracy"], "want": want,
                  "protocol": res["brightness_shift"]["protocol"]}))
'''


def test_a_suite_test_and_a_suite_from_an_installed_package(tmp_path):
    """A third party ships an attack the way it ships a regularizer: entry points of its distribution
    (`regbench.tests`, `regbench.suites`), found through the package's installed metadata."""
    site = tmp_path / "site"
    (site / "regbench_brightness").mkdir(parents=True)
    (site / "regbench_brightness" / "__init__.py").write_text(PLUGIN)
    dist = site / "regbench_brightness-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: regbench-brightness\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[regbench.tests]\nbrightness_shift = regbench_brightness:BrightnessShift\n\n"
        "[regbench.suites]\nbrightness_suite = regbench_brightness:SUITE\n")
    import json
    import os
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), str(ROOT)]))
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(SCRIPT)], env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["got"] == pytest.approx(out["want"]) and out["protocol"] == {"test": "brightness_shift", "version": "1",
                                                                             "shift": 0.3}


# --------------------------------------------------------------------------- the Python API
def test_evaluate_a_plain_module_on_real_data():
    """`bench.evaluate` judges any nn.Module (here an untrained linear model, not a record) on
    Fashion-MNIST's test images, with the dataset's reference noise strengths."""
    import bench
    from bench.core import data as bdata
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(32 * 32, 10))
    res = bench.evaluate(model, suite="quick", dataset="fashion_mnist", n_examples=64,
                         only=["clean", "gaussian_noise", "transfer_fgsm"], log=lambda *a: None)
    d = bdata.load("fashion_mnist", color="gray", n_train=1, n_test=64, download=False)
    with torch.no_grad():
        want = (model(bdata.to_float(d.test_x)).argmax(1) == d.test_y).float().mean().item()
    assert res["clean"]["result"]["summary"]["accuracy"] == pytest.approx(want)
    assert res["gaussian_noise"]["protocol"]["stds"][-1] == pytest.approx(0.5)  # Fashion-MNIST's reference
    assert res["gaussian_noise"]["result"]["curves"]["accuracy"]["y"][0] == pytest.approx(want)
    assert "surrogate" in res["transfer_fgsm"]["result"]["details"]["skipped"]  # no surrogate given: said so
    with pytest.raises(ValueError, match="needs `dataset`"):
        bench.evaluate(model, suite="quick")


def test_sem_is_defined_once_and_undefined_for_one_value():
    import leaderboard
    from bench.core import stats
    import numpy as np
    from scipy import stats as sps
    assert leaderboard.sem is stats.sem
    v = [0.2, 0.5, 0.4, float("nan")]
    assert stats.sem(v) == pytest.approx(sps.sem([0.2, 0.5, 0.4], ddof=1))
    assert math.isnan(stats.sem([0.3])) and math.isnan(stats.mean_sem([0.3])[1]) and stats.mean_sem([0.3])[0] == 0.3
    assert np.isnan(stats.mean_sem([])[0])


def test_one_rule_for_a_current_result(tmp_path):
    """`Record.is_current` is what the suite (skip a test) and the sweep (a job is complete) both ask."""
    import attacks
    from bench.core.records import Record
    from bench.core.store import atomic_write_json
    rec = Record(tmp_path / "r")
    test = attacks.TESTS["gaussian_noise"](n=10)
    proto = test.protocol("fashion_mnist")
    atomic_write_json(rec.path / "config.json", {"config": {}, "data": {"n_test": 100}})
    good = {"protocol": proto, "seed": 3, "n_examples": 100, "result": {"summary": {"mean_accuracy": 0.5}}}
    atomic_write_json(rec.path / "metrics.json", {"suite": {"gaussian_noise": good}})
    assert rec.is_current(test, "fashion_mnist", 3)
    assert not rec.is_current(test, "fashion_mnist", 4)  # another suite seed
    assert not rec.is_current(test, "cifar10", 3)  # another dataset: other reference strengths
    assert not rec.is_current(test, "fashion_mnist", 3, n_examples=32)  # fewer images
    assert not rec.is_current(attacks.TESTS["gaussian_noise"](n=11), "fashion_mnist", 3)
    skipped = dict(good, result={"summary": {}, "details": {"skipped": "no surrogate"}})
    assert not Record.result_is_current(skipped, proto, 3, 100)
