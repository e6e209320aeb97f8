"""RobustBench adapter: a real zoo architecture with a locally saved state dict (random weights)
loads offline through robustbench's own load_model, is evaluated by the suite, and appears in the
leaderboard as an external row; bad checkpoints and missing data give clear errors."""
import importlib.metadata
import importlib.util
import sys

import pytest
import torch

try:
    importlib.metadata.distribution("robustbench")
except importlib.metadata.PackageNotFoundError:  # optional extra
    pytest.skip("robustbench is not installed (pip install 'regbench[robustbench]')", allow_module_level=True)

import attacks
from bench.core import data as bdata
from bench.core.store import CorruptCheckpoint
from leaderboard import build_table, render
from bench.app import robustbench as rb_flow
from leaderboard import robustbench as lrb

NAME, THREAT = "Ding2020MMA", "Linf"  # WRN-28-4, 5.8M parameters: the smallest local-checkpoint CIFAR-10 entry
SUITE = [("clean", {}), ("gaussian_noise", {"stds": [0.0, 0.05, 0.1]})]
N = 16


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("rb_models")
    torch.manual_seed(0)
    net = lrb.zoo_entries("cifar10", THREAT)[NAME]["model"]()
    path = d / "cifar10" / THREAT / f"{NAME}.pt"
    path.parent.mkdir(parents=True)
    torch.save(net.state_dict(), path)
    return d


@pytest.fixture(autouse=True)
def _no_download(monkeypatch):
    """Guard: any attempt by robustbench to download fails the test."""
    lrb.import_robustbench()
    import robustbench.utils as rbu

    def refuse(*a, **k):
        raise AssertionError(f"robustbench tried to download: {a}")
    monkeypatch.setattr(rbu, "download_gdrive_new", refuse)
    monkeypatch.setattr(rbu, "download_gdrive", refuse)


def test_import_problems_are_handled():
    rb = lrb.import_robustbench()
    import robustbench.eval
    aa = sys.modules["autoattack"]
    assert robustbench.eval.AutoAttack is aa.AutoAttack
    if importlib.util.find_spec("pyautoattack") is not None and aa.__name__ == "pyautoattack":
        import pyautoattack.state
        assert sys.modules["autoattack.state"] is pyautoattack.state
    assert callable(rb.load_model)


def test_zoo_model_loads_offline_with_the_saved_weights(model_dir):
    model = lrb.load_zoo_model(NAME, THREAT, model_dir)
    saved = torch.load(model_dir / "cifar10" / THREAT / f"{NAME}.pt", weights_only=True)
    got = model.state_dict()
    assert set(saved) <= set(got)
    assert all(torch.equal(saved[k], got[k]) for k in saved)
    assert not model.training


def test_evaluated_by_the_suite_and_shown_in_the_leaderboard(model_dir, tmp_path):
    attacks.register_suite("rb_test", SUITE)
    out = tmp_path / "results"
    run_dir = rb_flow.eval_robustbench(NAME, THREAT, model_dir, suite="rb_test", n_examples=N, out=out,
                                   dataset="fashion_mnist", progress=False, log=lambda *a: None)
    rec = __import__("json").loads((run_dir / "config.json").read_text())
    assert rec["external"]["source"] == "robustbench" and rec["regularizer"]["name"] == f"robustbench:{NAME}"
    model = lrb.load_zoo_model(NAME, THREAT, model_dir)
    assert rec["model"]["params"] == sum(p.numel() for p in model.parameters()) == 5849050
    # the recorded clean accuracy is the zoo model's accuracy on the same colour test images
    d = bdata.load("fashion_mnist", color="rgb", image_size=32, n_train=1, n_test=N)
    with torch.no_grad():
        acc = (model(bdata.to_float(d.test_x)).argmax(1) == d.test_y).float().mean().item()
    metrics = __import__("json").loads((run_dir / "metrics.json").read_text())
    assert metrics["suite"]["clean"]["result"]["summary"]["accuracy"] == pytest.approx(acc)
    assert metrics["suite"]["gaussian_noise"]["n_examples"] == N
    table = build_table(out)
    row = table[table["regularizer"] == f"robustbench:{NAME}"].iloc[0]
    assert bool(row["external"]) and row["arch"] == type(model).__name__ and row["model_params"] == 5849050
    assert row["clean.accuracy|mean"] == pytest.approx(acc)
    assert f"[ext] robustbench:{NAME}" in render(table, "term")
    # rerun: the same record, results already there
    assert rb_flow.eval_robustbench(NAME, THREAT, model_dir, suite="rb_test", n_examples=N, out=out,
                                dataset="fashion_mnist", progress=False, log=lambda *a: None) == run_dir


def test_missing_checkpoint_names_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=rf"{tmp_path}/cifar10/Linf/{NAME}\.pt"):
        lrb.load_zoo_model(NAME, THREAT, tmp_path)
    with pytest.raises(FileNotFoundError, match="nothing is downloaded"):
        rb_flow.eval_robustbench(NAME, THREAT, tmp_path, suite="quick", n_examples=4, out=tmp_path / "r",
                             dataset="fashion_mnist", progress=False)


def test_html_page_saved_as_checkpoint_is_named(tmp_path):
    path = tmp_path / "cifar10" / "L2" / "Standard.pt"
    path.parent.mkdir(parents=True)
    path.write_text("<!DOCTYPE html><html><body>Google Drive - quota exceeded</body></html>")
    with pytest.raises(CorruptCheckpoint, match=r"Standard\.pt.*HTML page"):
        lrb.load_zoo_model("Standard", "L2", tmp_path)


def test_missing_cifar10_is_dataset_not_found(model_dir, tmp_path):
    with pytest.raises(bdata.DatasetNotFound, match="dataset CIFAR10 not found"):
        rb_flow.eval_robustbench(NAME, THREAT, model_dir, suite="quick", n_examples=4, out=tmp_path / "r",
                             data_dir=tmp_path / "no_data", download=False, progress=False)


def test_bad_names_list_valid_ones(model_dir):
    with pytest.raises(ValueError, match="valid: Linf, L2, corruptions"):
        lrb.load_zoo_model(NAME, "L1", model_dir)
    with pytest.raises(ValueError, match="did you mean: Ding2020MMA"):
        lrb.load_zoo_model("Ding2020MM", THREAT, model_dir)
