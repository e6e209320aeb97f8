"""Shared fixtures. tests/ is deliberately not a package (robustbench's wheel ships one named `tests`)."""
import os

import pytest
import torch

os.environ.setdefault("TQDM_DISABLE", "1")


@pytest.fixture(autouse=True)
def _threads():
    # Two cores in CI; jobs that run side by side set 1 thread themselves.
    torch.set_num_threads(2)
    yield


def tiny_config(tmp_path, **kw):
    from bench.core.config import build_config
    over = dict(out=str(tmp_path / "results"), progress=False)
    over.update(kw)
    return build_config("tiny", over)


# --------------------------------------------------------------------------- sweeps
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SWEEP_TINY = ["--preset", "tiny", "--n-train", "128", "--n-test", "64"]
# A small suite with a transfer test (so the surrogate path runs), registered by a plugin module that
# every worker process imports (`--plugin`), exactly as a user's own suite or regularizer would be.
SMOKE_PLUGIN_SRC = ('import attacks\n'
                    'attacks.register_suite("sweep_smoke", [("clean", {}),\n'
                    '                                       ("transfer_fgsm", {"n": 32, "eps": [0.0, 0.02]})])\n')


@pytest.fixture
def smoke(tmp_path, monkeypatch):
    """Sweep arguments that use the small plugin suite above."""
    d = tmp_path / "plugins"
    d.mkdir()
    (d / "regbench_sweep_smoke.py").write_text(SMOKE_PLUGIN_SRC)
    monkeypatch.syspath_prepend(str(d))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([ROOT, str(d)]))
    return SWEEP_TINY + ["--plugin", "regbench_sweep_smoke", "--suite", "sweep_smoke"]


# --------------------------------------------------------------------------- one small trained model
# The thresholds of the tests that use this model presume a model that learned the task, so it is trained to
# a stated accuracy first, and the fixture fails with that statement when a machine's kernels made less of it.
SMALL_RUN_MIN_ACCURACY = 0.6


@pytest.fixture(scope="session")
def small_trained_run(tmp_path_factory):
    """A narrow model trained once per session on real Fashion-MNIST: 4096 images, 2 epochs, lr 0.1 with a
    cosine decay to 0, the last weights: 76.6% on its 128 test images on an AMD EPYC (AVX-512), and at least
    SMALL_RUN_MIN_ACCURACY anywhere (checked here). The former fixture (constant lr 0.1 on 2048 images, the
    best-validation weights) reached ~70% on the machine it was tuned on and 54% on that EPYC, which left the
    noise and FGSM thresholds of tests/test_attacks.py to chance (issue 21). Its seed is the
    surrogate seed, so `bench.app.pipeline.provide_surrogate` finds this record as its own transfer surrogate
    instead of training a second model. REGBENCH_TEST_RUNS=DIR keeps it between sessions (the trainer skips a
    finished run)."""
    import attacks
    from attacks.base import accuracy
    from bench.core.config import build_config
    from bench.engine.trainer import train
    torch.set_num_threads(2)
    out = os.environ.get("REGBENCH_TEST_RUNS") or tmp_path_factory.mktemp("shared_runs")
    cfg = build_config("tiny", dict(out=str(out), progress=False, n_train=4096, epochs=2, batch_size=64, lr=0.1,
                                    lr_schedule="cosine", select="last", seed=1000,
                                    surrogate_seed=1000))
    run = train(cfg, log=lambda *a, **k: None)
    c = attacks.context_for_run(run, progress=False)  # the record's model and its test images, as the tests see them
    acc = accuracy(c.model, c.x, c.y)
    assert acc >= SMALL_RUN_MIN_ACCURACY, (f"the shared test model reached {acc:.3f} test accuracy on "
                                           f"{len(c.x)} images, below the stated {SMALL_RUN_MIN_ACCURACY}")
    return run
