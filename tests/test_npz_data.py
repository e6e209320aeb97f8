"""Array datasets (`--dataset npz:PATH`, bench.core.arrays; issue 29 item 1): every bad file is one line that
names it, a good file trains, and a record names its data by the file's sha256, never by its path."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.core import arrays
from bench.core import data as bdata
from bench.core.config import build_config, resolve_augment

ROOT = Path(__file__).resolve().parents[1]
PREFIX = ROOT.parent / "shared" / "data" / "cifar10-prefix" / "cifar10_prefix.npz"
PREFIX_SHA = "1000cbce3096a55d68e5b7546a819890224b982e87dd24dcd9a2f0e291962a21"
needs_prefix = pytest.mark.skipif(not PREFIX.is_file(), reason=f"the shared CIFAR-10 prefix is not at {PREFIX} "
                                                               "(../shared/data is outside this checkout)")


def good(n_train=40, n_test=20, hw=8, c=3, chw=False, classes=3, seed=0) -> dict:
    rng = np.random.default_rng(seed)
    shape = (c, hw, hw) if chw else (hw, hw, c)
    return {"x_train": rng.integers(0, 256, (n_train, *shape), dtype=np.uint8),
            "y_train": np.arange(n_train, dtype=np.int64) % classes,
            "x_test": rng.integers(0, 256, (n_test, *shape), dtype=np.uint8),
            "y_test": np.arange(n_test, dtype=np.int64) % classes}


def write(folder: Path, arrs: dict, name="data.npz") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / name, **arrs)
    return folder / name


def _bad(change):
    def make(d):
        change(d)
        return d
    return make


BAD = {  # name: (change to a good file, words the one line must hold)
    "missing key": (_bad(lambda d: d.pop("y_test")), "has no y_test; it holds x_train, y_train, x_test"),
    "float images": (_bad(lambda d: d.update(x_train=d["x_train"].astype(np.float32))),
                     "x_train has dtype float32; images must be uint8"),
    "float labels": (_bad(lambda d: d.update(y_test=d["y_test"].astype(np.float64))),
                     "y_test has dtype float64; labels must be integers"),
    "bool labels": (_bad(lambda d: d.update(y_train=d["y_train"] > 0)), "labels must be integers"),
    "rank 2 images": (_bad(lambda d: d.update(x_test=d["x_test"].reshape(20, -1))), "x_test has shape (20, 192)"),
    "no channel axis": (_bad(lambda d: d.update(x_train=np.zeros((40, 5, 8, 8), np.uint8))),
                        "images must be [N, H, W, C] or [N, C, H, W] with C 1 or 3"),
    "rank 2 labels": (_bad(lambda d: d.update(y_train=d["y_train"][:, None])), "labels must be one integer per image"),
    "negative label": (_bad(lambda d: d["y_test"].__setitem__(3, -1)), "y_test has a negative label (-1)"),
    "label over num_classes": (_bad(lambda d: d.update(num_classes=np.int64(2))),
                               "a label is 2, out of range for the file's 2 classes"),
    "lengths differ": (_bad(lambda d: d.update(y_train=d["y_train"][:39])), "y_train has 39 labels but x_train has 40"),
    "empty split": (_bad(lambda d: d.update(x_test=d["x_test"][:0], y_test=d["y_test"][:0])), "x_test is empty"),
    "sizes differ": (_bad(lambda d: d.update(x_test=np.zeros((20, 9, 9, 3), np.uint8))),
                     "x_train images are (3, 8, 8) (C, H, W) but x_test images (3, 9, 9)"),
    "object array": (_bad(lambda d: d.update(y_test=np.array([1, "a"], dtype=object))), "cannot read"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_each_bad_array_file_is_one_line_naming_the_file(tmp_path, case):
    change, words = BAD[case]
    path = write(tmp_path, change(good()))
    with pytest.raises(ValueError) as e:
        bdata.load(f"npz:{path}", n_train=None, n_test=None)
    msg = str(e.value)
    assert "\n" not in msg and str(path) in msg and words in msg, msg


def test_a_missing_file_a_npy_and_a_non_archive_are_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=r"npz dataset file not found: nope.npz \(looked at .*nope.npz") as e:
        build_config("tiny", {"dataset": "npz:nope.npz"})
    assert isinstance(e.value, FileNotFoundError) and "\n" not in str(e.value)
    np.save(tmp_path / "one.npy", np.zeros(3, np.uint8))
    (tmp_path / "junk.npz").write_bytes(b"not a zip at all")
    for name, words in (("one.npy", "is a single .npy array"), ("junk.npz", "cannot read")):
        with pytest.raises(ValueError, match=words) as e:
            bdata.load(f"npz:{name}")
        assert "\n" not in str(e.value) and str(tmp_path / name) in str(e.value)


def test_n_train_or_n_test_over_the_file_is_said_not_clamped(tmp_path):
    path = write(tmp_path, good())
    with pytest.raises(ValueError, match=r"n_train=40 \(\+ 1 validation images.*holds: 40 training images; use "
                                         r"--n-train 39 or less") as e:
        bdata.load(f"npz:{path}", n_train=40, n_test=None, val_fraction=0.01)
    assert str(path) in str(e.value)
    with pytest.raises(ValueError, match="n_test=21 is more than .* holds: 20 test images"):
        bdata.load(f"npz:{path}", n_test=21)
    d = bdata.load(f"npz:{path}", n_train=39, n_test=20, val_fraction=0.01)  # exactly what it holds: no note
    assert (len(d.train_x), len(d.val_x), len(d.test_x)) == (39, 1, 20) and "notes" not in d.meta
    # a preset's own size (tiny: n_train 256, n_test 128) is clamped to the whole file, and said
    cfg = build_config("tiny", {"dataset": f"npz:{path}"})
    d = bdata.load_for_config(cfg)
    assert (len(d.train_x) + len(d.val_x), len(d.test_x)) == (40, 20)
    assert d.meta["n_train_requested"] == 256 and d.meta["n_test_requested"] == 128 and len(d.meta["notes"]) == 2
    with pytest.raises(ValueError, match="n_train=100"):  # the same preset with a hand-set size is not clamped
        bdata.load_for_config(build_config("tiny", {"dataset": f"npz:{path}", "n_train": 100}))


def test_layouts_colour_size_and_classes(tmp_path):
    hwc = good(c=3)
    chw = {k: (v.transpose(0, 3, 1, 2) if k.startswith("x") else v) for k, v in hwc.items()}
    a = bdata.load(f"npz:{write(tmp_path / 'a', hwc)}", color="rgb", image_size=8, val_fraction=0.1)
    b = bdata.load(f"npz:{write(tmp_path / 'b', chw)}", color="rgb", image_size=8, val_fraction=0.1)
    assert torch.equal(a.train_x, b.train_x) and a.train_x.shape[1:] == (3, 8, 8) and a.num_classes == 3
    assert torch.equal(a.test_x[0], torch.from_numpy(hwc["x_test"][0]).permute(2, 0, 1))
    gray = good(c=1)
    gray = {k: (v[..., 0] if k.startswith("x") else v) for k, v in gray.items()}  # [N, H, W]
    g = bdata.load(f"npz:{write(tmp_path / 'g', gray)}", color="rgb", image_size=12)
    assert g.test_x.shape[1:] == (3, 12, 12) and torch.equal(g.test_x[:, 0], g.test_x[:, 2])  # replicated, padded
    declared = dict(good(), num_classes=np.int64(5), classes=np.array(list("abcde")))
    assert bdata.load(f"npz:{write(tmp_path / 'k', declared)}").num_classes == 5


def test_records_name_the_bytes_not_the_path(tmp_path):
    one = write(tmp_path / "one", good())
    two = tmp_path / "elsewhere" / "renamed.npz"
    two.parent.mkdir()
    shutil.copy(one, two)
    other = write(tmp_path / "other", good(seed=1))
    c1, c2, c3 = (build_config("tiny", {"dataset": f"npz:{p}", "out": str(tmp_path / "r")}) for p in (one, two, other))
    sha = arrays.file_sha256(one)
    assert c1.dataset == c2.dataset == f"npz:sha256={sha}" and c1.data_files == {sha: str(one.resolve())}
    assert c1.hash() == c2.hash() and c1.comparison_key() == c2.comparison_key()
    assert c3.hash() != c1.hash() and c3.comparison_key() != c1.comparison_key()
    assert str(tmp_path) not in json.dumps(c1.semantic_dict())
    assert resolve_augment("auto", c1.dataset, c1.data_files) == "none"  # 8x8 images: not CIFAR-like


def test_a_tiny_run_records_the_sha256_and_no_path_and_finds_its_file_again(tmp_path):
    from bench.app import api
    from bench.core.records import Record
    path = write(tmp_path / "data", good(n_train=48, n_test=16, hw=32))
    cfg = build_config("tiny", {"dataset": f"npz:{path}", "out": str(tmp_path / "results"), "device": "cpu",
                                "progress": False}, ["steps_per_epoch=2"])
    assert cfg.resolved_augment() == "crop_flip"  # 32x32 colour arrays: CIFAR's augmentation
    lines = []
    rec = api.run(cfg, evaluate=False, log=lines.append)
    text = (rec.path / "config.json").read_text()
    header = json.loads(text)
    sha = arrays.file_sha256(path)
    assert header["data"]["sha256"] == sha and header["data"]["file"] == "data.npz"
    assert header["data"]["n_train_requested"] == 256 and header["data"]["n_train"] == 48 - 3  # tiny: val_fraction 0.05
    assert any("n_train=256 is more than the file's 48" in ln for ln in lines)
    assert str(tmp_path) not in text and '": "/' not in text and rec.path.name.startswith(f"none-npz-{sha[:12]}-s0-")
    assert header["config"]["dataset"] == f"npz:sha256={sha}"
    back = rec.config()  # the record finds its file through the relative path
    assert back.data_files == {sha: str(path.resolve())} and back.hash() == cfg.hash()
    assert api.evaluate(rec, only=["clean"], log=lines.append)["clean"]["result"]["summary"]["accuracy"] >= 0
    # a copy elsewhere names the same record (resumed, not retrained)
    copy = tmp_path / "moved" / "x.npz"
    copy.parent.mkdir()
    shutil.copy(path, copy)
    again = build_config("tiny", {"dataset": f"npz:{copy}", "out": str(tmp_path / "results"), "device": "cpu",
                                  "progress": False}, ["steps_per_epoch=2"])
    assert Record.for_config(again).path == rec.path
    # changed bytes at the recorded path are refused, not read
    write(tmp_path / "data", good(n_train=48, n_test=16, hw=32, seed=5))
    arrays._KNOWN.clear()
    with pytest.raises(ValueError, match=f"sha256 {sha} not found .*other bytes"):
        bdata.load_for_config(Record(rec.path).config())


@needs_prefix
def test_shared_cifar10_prefix_shapes_and_sha256():
    assert arrays.file_sha256(PREFIX) == PREFIX_SHA
    trx, try_, tex, tey, info = arrays.load_npz(f"npz:{PREFIX}")
    assert tuple(trx.shape) == (5085, 3, 32, 32) and tuple(tex.shape) == (1017, 3, 32, 32)
    assert info["num_classes"] == 10 and int(try_.max()) == 9 and len(tey) == 1017
    cfg = build_config("quick", {"dataset": f"npz:{PREFIX}", "color": "gray"})
    assert cfg.dataset == f"npz:sha256={PREFIX_SHA}" and cfg.resolved_augment() == "crop_flip"
    assert bdata.natively_rgb(cfg.dataset, cfg.data_files)


@needs_prefix
def test_bench_run_quick_on_the_shared_prefix(tmp_path):
    rel = os.path.relpath(PREFIX, ROOT)  # ../shared/data/cifar10-prefix/cifar10_prefix.npz, as the issue writes it
    cmd = [sys.executable, "-m", "bench", "run", "--dataset", f"npz:{rel}", "--preset", "quick", "--epochs", "1",
           "--n-test", "64", "--set", "steps_per_epoch=3",
           "--device", "cpu", "--out", str(tmp_path / "results")]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "n_train=10000 is more than the file's 5085 training images" in r.stdout + r.stderr
    files = sorted((tmp_path / "results").glob("*/config.json"))  # the run and its transfer surrogate (seed 1000)
    assert [f.parent.name.split("-s")[1].split("-")[0] for f in files] == ["0", "1000"]
    for cfg_file in files:
        h = json.loads(cfg_file.read_text())
        assert h["data"]["sha256"] == PREFIX_SHA and h["data"]["n_train"] == 5034 and h["data"]["n_test"] == 64
        assert h["data"]["n_train_requested"] == 10000 and '": "/' not in cfg_file.read_text()
    suite = json.loads((files[0].parent / "metrics.json").read_text())["suite"]
    assert {"clean", "transfer_fgsm", "corruptions"} <= set(suite)
    details = suite["corruptions"]["result"]["details"]
    assert "CIFAR-10-C parameters" in details["dataset_variant"]
    assert details["colour"] == "gray (corrupted in RGB, then converted)"  # the quick preset is gray; the file is RGB


def test_regularization_sets_and_similarity_read_array_files(tmp_path):
    from regularizers import regsets
    from regularizers.analysis import similarity_report
    path = write(tmp_path, good(hw=32))
    cfg = build_config("tiny", {"dataset": f"npz:{path}", "color": "gray"}, [f"reg_params.reg_dataset=npz:{path}"])
    sha = arrays.file_sha256(path)
    assert cfg.reg_params["reg_dataset"] == f"npz:sha256={sha}" and str(tmp_path) not in json.dumps(cfg.semantic_dict())
    task = bdata.load(f"npz:{path}", color="gray", val_fraction=0.1)
    own, d_own = regsets.load_reg_images("task", 8, config=cfg, task_data=task)
    named, d_named = regsets.load_reg_images(cfg.reg_params["reg_dataset"], 8, config=cfg)
    assert own.shape == named.shape == (8, 1, 32, 32) and d_own["augment"] == d_named["augment"] == "crop_flip"
    summary = similarity_report(f"npz:{path}", 8, color="gray")[0]
    assert summary["n_images"] == 8 and summary["pairs"] == 28


def test_a_sweep_plans_array_datasets_by_their_sha256(tmp_path):
    from bench.app.sweep import SweepSpec, plan_sweep
    path = write(tmp_path, good(hw=32))
    plan = plan_sweep(SweepSpec(regularizers="none,pixel_sim", seeds="0", preset="tiny",
                                datasets=f"fashion_mnist,npz:{path}", overrides={"out": str(tmp_path / "r")}))
    sha = arrays.file_sha256(path)
    assert plan.datasets == ["fashion_mnist", f"npz:sha256={sha}"]
    assert {s.config["dataset"] for s in plan.specs} == set(plan.datasets)
    with pytest.raises(ValueError, match="npz dataset file not found: /nowhere.npz"):
        plan_sweep(SweepSpec(regularizers="none", seeds="0", preset="tiny", datasets="npz:/nowhere.npz"))
