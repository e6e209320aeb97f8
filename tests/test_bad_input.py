"""Bad input gets a one-line error and loses nothing (issue 15).

A table of bad inputs, each run in-process through `bench.cli.main` (subprocesses only where the
behaviour needs them: a closed pipe, two processes contending for a run). Every case asserts the
exit code, a one-line `error:` message naming the problem, no traceback, and that the results
folder did not change or holds nothing that claims success. Then the behaviours that are not
errors (duplicates counted once, damaged records skipped, CSV/terminal safety, strict JSON, file
modes, locks) and a property-based test of the validation layer.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.core import store
from bench.cli import main

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--preset", "tiny", "--n-train", "64", "--n-test", "32", "--no-estimate", "--no-progress"]
PLUGIN = "regbench_bad_input_plugin"
PLUGIN_SRC = textwrap.dedent('''
    from dataclasses import dataclass
    import attacks
    import regularizers
    from regularizers.base import Regularizer

    class _Bad(Regularizer):
        @dataclass
        class Params:
            alpha: float = 1.0

    @regularizers.register("bad_vector")
    class BadVector(_Bad):
        def penalty(self, feats, batch):
            return feats[-1].mean((1, 2, 3))

    @regularizers.register("bad_float")
    class BadFloat(_Bad):
        def penalty(self, feats, batch):
            return 0.5

    @regularizers.register("bad_nan")
    class BadNan(_Bad):
        def penalty(self, feats, batch):
            return feats[-1].mean() * float("nan")

    @regularizers.register("bad_inf")
    class BadInf(_Bad):
        def penalty(self, feats, batch):
            return feats[-1].mean() * 0 + float("inf")

    @regularizers.register("../../trav")
    class Trav(_Bad):
        def penalty(self, feats, batch):
            return feats[-1].mean() * 0

    @regularizers.register("evil\\x1b[31m=cmd|' /C calc'!A0")
    class Evil(_Bad):
        def penalty(self, feats, batch):
            return feats[-1].mean() * 0

    attacks.register_suite("bad_input_smoke", [("clean", {}), ("gaussian_noise", {"n": 16, "stds": [0.0, 0.2]})])
    attacks.register_suite("bad_input_transfer", [("clean", {}), ("transfer_fgsm", {"n": 16, "eps": [0.0, 0.1]})])
''')


# ----------------------------------------------------------------------------- helpers
@pytest.fixture(scope="module")
def plugin_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("plugins")
    (d / f"{PLUGIN}.py").write_text(PLUGIN_SRC)
    sys.path.insert(0, str(d))
    import importlib
    importlib.invalidate_caches()
    import regularizers
    regularizers.load_plugin(PLUGIN)
    yield d
    sys.path.remove(str(d))


def cli(argv, capsys):
    """(exit code, stdout, stderr) of `python -m bench ARGV`, in-process."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as e:  # argparse
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def snapshot(root: Path) -> dict:
    """Every file under root with its size and content hash (the .cache folder included)."""
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): (p.stat().st_size, hashlib.sha256(p.read_bytes()).hexdigest())
            for p in sorted(root.rglob("*")) if p.is_file()}


def claims_success(root: Path) -> list[str]:
    """Records under root whose metrics say training is done (or that hold a model)."""
    bad = []
    for m in root.rglob("metrics.json") if root.exists() else []:
        t = (store.read_json(m, {}) or {}).get("train") or {}
        if t.get("done") or (m.parent / "model.pt").exists():
            bad.append(str(m.parent))
    return bad


def assert_one_line_error(code, err, pattern, expect_code=2):
    assert code == expect_code, f"exit code {code}, stderr: {err}"
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert lines, "no message on stderr"
    errors = [ln for ln in lines if "error:" in ln]
    assert len(errors) == 1, f"expected one error line, got: {err}"
    assert re.search(pattern, errors[0], re.I), f"{pattern!r} not in {errors[0]!r}"
    assert "\x1b" not in errors[0]


def write_png(path: Path, value: int = 128, size: int = 28):
    from PIL import Image
    Image.fromarray(np.full((size, size), value, np.uint8)).save(path)


def make_npz(path: Path, n: int = 12, **arrays):
    rng = np.random.default_rng(0)
    d = {"images": rng.integers(0, 255, (n, 28, 28), dtype=np.uint8)}
    d.update(arrays)
    np.savez(path, **d)
    return path


# ----------------------------------------------------------------------------- shared records
@pytest.fixture(scope="module")
def trained(tmp_path_factory, plugin_dir):
    """A tiny trained record, evaluated on 32 test images with a 2-test suite."""
    import io
    from contextlib import redirect_stdout
    out = tmp_path_factory.mktemp("trained")
    with redirect_stdout(io.StringIO()):
        code = main(["run", *TINY, "--out", str(out), "--set", "suite=bad_input_smoke"])
    assert code == 0
    (rd,) = [p.parent for p in out.glob("*/config.json")]
    return rd


# ----------------------------------------------------------------------------- the table
def _folder_one_class(tmp):
    d = tmp / "imgs"
    d.mkdir()
    for i in range(4):
        write_png(d / f"{i}.png", 10 * i)
    return ["--dataset", f"folder:{d}"]


def _corrupt_image(tmp):
    d = tmp / "regimgs"
    d.mkdir()
    for i in range(3):
        write_png(d / f"{i}.png", 20 * i)
    (d / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    return ["-r", "pixel_sim", "--set", f"reg_params.reg_dataset=folder:{d}"]


def _npz(tmp, **arrays):
    return ["-r", "neural_pred", "--set", f"reg_params.response_model={make_npz(tmp / 't.npz', **arrays)}"]


N = 12
CASES = [
    # id, argv (after `run TINY --out OUT --no-eval`) or a callable(tmp) -> argv, message pattern, expectation
    # --- silent acceptance, now errors
    ("n_train_negative", ["--n-train", "-5"], r"n_train.*>= 1", "unchanged"),
    ("n_train_zero", ["--n-train", "0"], r"n_train.*>= 1", "unchanged"),
    ("n_test_zero", ["--n-test", "0"], r"n_test.*>= 1", "unchanged"),
    ("budget_negative", ["--budget-seconds", "-1"], r"budget_seconds.*> 0", "unchanged"),
    ("budget_zero", ["--budget-seconds", "0"], r"budget_seconds.*> 0", "unchanged"),
    ("data_dir_missing", ["--data-dir", "/nonexistent/regbench-data"], r"--data-dir .*does not exist", "unchanged"),
    ("folder_task_one_class", _folder_one_class, r"1 class", "unchanged"),
    ("seed_negative", ["--seed", "-3"], r"seed.*>= 0", "unchanged"),
    ("n_images_fraction", ["-r", "pixel_sim", "--set", "reg_params.n_images=2.7"], r"n_images must be an integer", "unchanged"),
    ("n_images_huge", ["-r", "pixel_sim", "--set", "reg_params.n_images=1e400"], r"n_images must be an integer", "unchanged"),
    ("image_size_zero", ["--set", "image_size=0"], r"image_size must be >= 8", "unchanged"),
    ("lr_infinite", ["--set", "lr=1e400"], r"\blr\b.*1e400|lr must be a finite", "unchanged"),
    ("momentum_range", ["--set", "momentum=1.5"], r"momentum must be <= 1", "unchanged"),
    ("device_bogus", ["--device", "bogus"], r"device 'bogus'", "unchanged"),
    ("device_cuda_missing", ["--device", "cuda"], r"CUDA is not available", "unchanged"),
    ("corrupt_folder_image", _corrupt_image, r"cannot read image .*broken\.png", "unchanged"),
    ("pairs_per_step_huge", ["-r", "pixel_sim", "--set", "reg_params.pairs_per_step=1000000"],
     r"one training step needs about .* GiB.*pairs_per_step", "unchanged"),
    ("pairs_per_step_above_pairs", ["-r", "pixel_sim", "--set", "reg_params.pairs_per_step=5000"],
     r"pairs_per_step=5000 exceeds the 2016 pairs", "unchanged"),
    ("unknown_suite_set", ["--set", "suite=bogus_suite", "EVAL"], r"unknown suite 'bogus_suite'", "unchanged"),
    ("npz_responses_nan", lambda t: _npz(t, responses=np.where(np.eye(N, 5) > 0, np.nan, 1.0)),
     r"'responses' holds .*non-finite", "unchanged"),
    ("npz_responses_inf", lambda t: _npz(t, responses=np.full((N, 5), np.inf)), r"'responses' holds .*non-finite",
     "unchanged"),
    ("npz_reliability_nan", lambda t: _npz(t, responses=np.random.default_rng(1).normal(size=(N, 5)),
                                           reliability=np.array([1, 1, np.nan, 1, 1.0])),
     r"'reliability' holds .*non-finite", "unchanged"),
    ("npz_similarity_nan", lambda t: _npz(t, similarity=np.full((N, N), np.nan)), r"'similarity' holds .*non-finite",
     "unchanged"),
    ("npz_responses_shape", lambda t: _npz(t, responses=np.ones((N + 1, 3))), r"'responses' has shape \(13, 3\)",
     "unchanged"),
    ("npz_reliability_shape", lambda t: _npz(t, responses=np.ones((N, 3)), reliability=np.ones(4)),
     r"'reliability' has shape", "unchanged"),
    ("npz_not_a_zip", lambda t: ["-r", "neural_pred", "--set",
                                 f"reg_params.response_model={(t / 'x.npz').write_bytes(b'junk') and t / 'x.npz'}"],
     r"not a readable \.npz", "unchanged"),
    # --- a plugin penalty of the wrong kind, a non-finite loss: stopped, record marked failed
    ("penalty_vector", ["--plugin", PLUGIN, "-r", "bad_vector"], r"penalty\(\) must return a scalar.*shape \(32,\)",
     "failed"),
    ("penalty_python_float", ["--plugin", PLUGIN, "-r", "bad_float"], r"scalar torch\.Tensor .*got a float", "failed"),
    ("penalty_nan", ["--plugin", PLUGIN, "-r", "bad_nan"], r"non-finite regularizer penalty \(nan\) at step 1",
     "failed"),
    ("penalty_inf", ["--plugin", PLUGIN, "-r", "bad_inf"], r"non-finite regularizer penalty \(inf\) at step 1",
     "failed"),
    ("ce_nonfinite", ["--set", "lr=1e30", "--n-train", "128"], r"non-finite cross-entropy \(CE\).* at step 2",
     "failed"),
    # --- type errors of --set (issue 13's parser) leave nothing behind
    ("set_epochs_abc", ["--set", "epochs=abc"], r"epochs", "unchanged"),
    ("set_lr_abc", ["--set", "lr=abc"], r"\blr\b", "unchanged"),
    # --- cases that already passed
    ("unknown_regularizer", ["-r", "nope"], r"unknown regularizer 'nope'", "unchanged"),
    ("unknown_dataset", ["--dataset", "nope"], r"unknown dataset 'nope'", "unchanged"),
    ("unknown_config_key", ["--set", "bogus=1"], r"bogus", "unchanged"),
    ("set_without_equals", ["--set", "lr"], r"key=value", "unchanged"),
    ("unknown_hyperparameter", ["-r", "pixel_sim", "--set", "reg_params.bogus=1"], r"unknown hyper-parameter", "unchanged"),
    ("threshold_out_of_range", ["-r", "pixel_th", "--set", "reg_params.th=1.5"], r"th must be in", "unchanged"),
    ("pair_range_unknown", ["-r", "pixel_th", "--set", "reg_params.pair_range=bogus"], r"pair_range", "unchanged"),
    ("npz_missing_keys", lambda t: ["-r", "neural_pred", "--set", "reg_params.response_model="
                                    + str(np.savez(t / "k.npz", foo=np.ones(3)) or t / "k.npz")],
     r"needs 'images'", "unchanged"),
    ("npz_similarity_shape", lambda t: _npz(t, similarity=np.eye(N + 1)), r"'similarity' has shape", "unchanged"),
    ("response_model_missing", ["-r", "neural_pred", "--set", "reg_params.response_model=/nonexistent/m.npz"],
     r"not found", "unchanged"),
    ("plugin_import_fails", ["--plugin", "regbench_no_such_module_xyz"], r"regbench_no_such_module_xyz", "unchanged"),
    ("val_fraction_range", ["--set", "val_fraction=0.9"], r"val_fraction", "unchanged"),
    ("augment_unknown", ["--set", "augment=bogus"], r"augment", "unchanged"),
]


@pytest.mark.parametrize("case_id,argv,pattern,expect", CASES, ids=[c[0] for c in CASES])
def test_bad_run_input(case_id, argv, pattern, expect, tmp_path, capsys, plugin_dir):
    if case_id == "device_cuda_missing" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    out = tmp_path / "results"
    out.mkdir()
    (out / "keep.txt").write_text("an existing file")
    argv = argv(tmp_path) if callable(argv) else list(argv)
    evaluate = "EVAL" in argv
    argv = [a for a in argv if a != "EVAL"]
    before = snapshot(out)
    code, _, err = cli(["run", *TINY, "--out", out, *([] if evaluate else ["--no-eval"]), *argv], capsys)
    assert_one_line_error(code, err, pattern)
    if expect == "unchanged":
        assert snapshot(out) == before, "the results folder changed"
    else:  # stopped during training: a record that says it failed, never done
        assert not claims_success(out)
        (m,) = list(out.glob("*/metrics.json"))
        t = store.read_json(m)["train"]
        assert t["failed"] is True and t["done"] is False and t["error"]
        assert not (m.parent / "model.pt").exists()
        assert json.loads(m.read_text())  # strict JSON
        assert set(before) <= set(snapshot(out))


# ----------------------------------------------------------------------------- eval of a record
def test_eval_bad_n_examples_and_partial_refused(trained, capsys):
    before = snapshot(trained.parent)
    for n, pat in (("0", r"--n-examples must be a positive"), ("-5", r"--n-examples must be a positive"),
                   ("8", r"refusing --n-examples 8: the record holds clean, gaussian_noise on 32")):
        code, _, err = cli(["eval", trained, "--n-examples", n, "--no-progress"], capsys)
        assert_one_line_error(code, err, pat)
        assert snapshot(trained.parent) == before
    # the full evaluation again: everything already stored, nothing recomputed
    code, out, err = cli(["eval", trained, "--no-progress"], capsys)
    assert code == 0 and "32 test images" in out


def test_eval_not_a_record_and_failed_record(tmp_path, capsys):
    code, _, err = cli(["eval", tmp_path], capsys)
    assert_one_line_error(code, err, r"not a RegBench record")
    rd = tmp_path / "x"
    rd.mkdir()
    store.atomic_write_json(rd / "config.json", {"config": {}})
    store.atomic_write_json(rd / "metrics.json", {"train": {"done": False, "failed": True, "error": "NaN at step 3"}})
    code, _, err = cli(["eval", rd], capsys)
    assert_one_line_error(code, err, r"failed run \(NaN at step 3\)")
    code, _, err = cli(["eval", rd, "--only", "nope"], capsys)
    assert_one_line_error(code, err, r"unknown test")


def test_damaged_model_rerun_and_eval_say_how_to_fix(tmp_path, capsys, trained):
    import shutil
    rd = tmp_path / trained.name
    shutil.copytree(trained, rd)
    data = (rd / "model.pt").read_bytes()
    (rd / "model.pt").write_bytes(data[: len(data) // 3])
    before = snapshot(tmp_path)
    code, _, err = cli(["eval", rd, "--no-progress"], capsys)
    assert_one_line_error(code, err, r"corrupt checkpoint .*model\.pt.*--force.*move the folder")
    code, _, err = cli(["run", *TINY, "--out", tmp_path,
                        "--set", "suite=bad_input_smoke"], capsys)
    assert_one_line_error(code, err, r"corrupt checkpoint .*model\.pt.*--force.*move the folder")
    assert snapshot(tmp_path) == before
    # --force retrains it (and a damaged metrics.json is reported the same way)
    (rd / "metrics.json").write_text('{"train": {"done": tr')
    code, _, err = cli(["run", *TINY, "--out", tmp_path, "--no-eval", "--set", "suite=bad_input_smoke"], capsys)
    assert_one_line_error(code, err, r"damaged record file .*metrics\.json.*--force")
    code, out, err = cli(["run", *TINY, "--out", tmp_path, "--no-eval", "--force",
                          "--set", "suite=bad_input_smoke"], capsys)
    assert code == 0, err
    store.load_state(rd / "model.pt")
    assert store.read_json(rd / "metrics.json")["train"]["done"] is True


# ----------------------------------------------------------------------------- leaderboard
def _copy_records(trained, root: Path, n: int = 1):
    import shutil
    root.mkdir(parents=True, exist_ok=True)
    return [Path(shutil.copytree(trained, root / f"copy{i}" / trained.name)) for i in range(n)]


def test_leaderboard_counts_duplicates_once(trained, tmp_path, capsys):
    root = tmp_path / "res"
    _copy_records(trained, root, 2)  # a copied record folder
    code, out, err = cli(["leaderboard", root, root, "-f", "csv"], capsys)  # and the same root twice
    assert code == 0, err
    assert "Traceback" not in err
    assert re.search(r"warning: 2 copies of record \w+ \(seed 0\) counted once", err)
    assert "more than one results root" in err
    import io

    import pandas as pd
    t = pd.read_csv(io.StringIO(out))
    assert list(t["n_seeds"]) == [1]
    assert t["clean.accuracy|n"].tolist() == [1]


def test_leaderboard_skips_damaged_and_failed_records(trained, tmp_path, capsys):
    root = tmp_path / "res"
    good, bad_m, bad_c, failed = _copy_records(trained, root, 4)
    (bad_m / "metrics.json").write_text('{"suite": {"clean": ')
    (bad_c / "config.json").write_bytes(b"\x00\xff garbage")
    cfg = json.loads((failed / "config.json").read_text())
    cfg["hash"] = "otherhash"
    cfg["config"]["seed"] = 7
    store.atomic_write_json(failed / "config.json", cfg)
    m = store.read_json(failed / "metrics.json")
    m["train"] = {"done": False, "failed": True, "error": "non-finite penalty at step 2"}
    store.atomic_write_json(failed / "metrics.json", m)
    before = snapshot(root)
    code, out, err = cli(["leaderboard", root, "-f", "csv"], capsys)
    assert code == 0, err
    assert "Traceback" not in err
    assert f"skipped damaged record file {bad_m / 'metrics.json'}" in err
    assert f"skipped damaged record file {bad_c / 'config.json'}" in err
    assert "2 damaged record(s) skipped" in err
    assert f"skipped failed record {failed}" in err
    assert ",7" not in out.split("\n")[1]  # the failed seed is never ranked
    code, _, err = cli(["leaderboard", root, "--strict"], capsys)
    assert_one_line_error(code, err, r"damaged record file .*(metrics|config)\.json.*--strict")
    code, _, err = cli(["plot", root, "--out", tmp_path / "fig"], capsys)
    assert "Traceback" not in err and "skipped damaged record file" in err
    assert snapshot(root) == before


def test_csv_injection_and_terminal_control_characters(plugin_dir, trained, tmp_path, capsys):
    evil = "evil\x1b[31m=cmd|' /C calc'!A0"
    rd = _copy_records(trained, tmp_path / "res")[0]
    rec = json.loads((rd / "config.json").read_text())
    rec["regularizer"]["name"] = evil
    rec["config"]["regularizer"] = evil
    from bench.core.config import RunConfig
    rec["hash"] = RunConfig.from_dict(rec["config"]).hash()  # a record as that plugin would have written it
    store.atomic_write_json(rd / "config.json", rec)
    rd.rename(rd.with_name(f"{rd.name.rsplit('-', 1)[0]}-{rec['hash']}"))
    from leaderboard import build_table
    from leaderboard.render import csv_safe, render
    table = build_table(tmp_path / "res")
    table.loc[0, "label"] = "=HYPERLINK(\"http://x\")"
    table.loc[0, "seeds"] = "-1+2"
    text = render(table, "csv")
    import csv
    import io
    rows = list(csv.DictReader(io.StringIO(text)))
    assert rows[0]["label"] == "'=HYPERLINK(\"http://x\")"
    assert rows[0]["seeds"] == "'-1+2"
    assert not any(v.startswith(("=", "+", "@", "\t", "\r")) for r in rows for v in r.values())
    assert float(rows[0]["clean.accuracy|mean"]) == pytest.approx(table.loc[0, "clean.accuracy|mean"])
    assert csv_safe("-0.5") == "-0.5" and csv_safe(-3) == -3 and csv_safe("@x") == "'@x" and csv_safe("\tx") == "'\tx"
    code, out, err = cli(["leaderboard", tmp_path / "res"], capsys)
    assert code == 0, err
    assert "\x1b" not in out and "\x07" not in out
    assert "evil?[31m" in out


# ----------------------------------------------------------------------------- records on disk
def test_strict_json_umask_and_determinism_recorded(trained, tmp_path):
    for name in ("config.json", "metrics.json"):
        json.loads((trained / name).read_text(), parse_constant=lambda c: pytest.fail(f"{c} in {name}"))
    rec = store.read_json(trained / "config.json")
    det = rec["determinism"]
    assert det["threads"] == torch.get_num_threads() or det["threads"] >= 1
    assert "deterministic_algorithms" in det and "bit_identical_when" in det
    # non-finite values: null + the reason, read back as floats; old files with NaN tokens still read
    p = tmp_path / "m.json"
    store.atomic_write_json(p, {"a": float("nan"), "b": [1.0, float("-inf")], "c": {"d/e": float("inf")}})
    raw = p.read_text()
    assert "NaN" not in raw.replace('"NaN"', "") and "Infinity" not in raw.replace('"Infinity"', "").replace(
        '"-Infinity"', "")
    json.loads(raw, parse_constant=lambda c: pytest.fail(c))
    back = store.read_json(p)
    assert math.isnan(back["a"]) and back["b"] == [1.0, -math.inf] and back["c"]["d/e"] == math.inf
    p.write_text('{"a": NaN, "b": Infinity}')
    assert math.isnan(store.read_json(p)["a"])
    # files follow the umask (0022 -> 0644, 0002 -> 0664), not mkstemp's 0600
    old = os.umask(0o002)
    try:
        store.atomic_write_json(tmp_path / "u.json", {"x": 1})
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "u.json").stat().st_mode) == 0o664
    for f in trained.iterdir():
        if f.is_file() and not f.name.startswith("."):
            assert stat.S_IMODE(f.stat().st_mode) & 0o044 == 0o644 & ~old & 0o044, f


def test_record_names_stay_inside_out(plugin_dir, tmp_path, capsys):
    out = tmp_path / "a" / "b" / "results"
    out.mkdir(parents=True)
    code, stdout, err = cli(["run", *TINY, "--out", out, "--no-eval", "--plugin", PLUGIN, "-r", "../../trav",
                             "--n-train", "32"], capsys)
    assert code == 0, err
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert written and all(out in p.parents for p in written), written
    (rd,) = [p for p in out.iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert rd.name.startswith("_.._.._trav-fashion_mnist-s0-")
    # ordinary names keep their old form
    from bench.core.config import build_config
    cfg = build_config("tiny", {"regularizer": "pixel_sim", "out": str(out)})
    assert store.run_dir_for(cfg).name == f"pixel_sim-fashion_mnist-s0-{cfg.hash()}"
    cfg = cfg.replace(dataset="folder:/x/y")
    assert store.run_dir_for(cfg).name == f"pixel_sim-folder__x_y-s0-{cfg.hash()}"


def test_list_with_a_failing_plugin_keeps_going(capsys):
    code, out, err = cli(["list", "--plugin", "regbench_badimport_xyz"], capsys)
    assert code == 0, err
    assert "Traceback" not in err
    assert re.search(r"plugin regbench_badimport_xyz failed to load: ModuleNotFoundError", out)
    assert "pixel_sim" in out


def test_list_into_a_closed_pipe(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    p = subprocess.run(f"{sys.executable} -m bench list | head -1", shell=True, cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=120)
    assert p.stdout.strip() and "Traceback" not in p.stderr and "BrokenPipe" not in p.stderr, p.stderr


def test_second_identical_run_waits_for_the_run_lock(tmp_path):
    """While one `bench run` holds a record's run lock (here: this test process), an identical
    command says the run is in progress and waits, writing nothing; then it trains, once."""
    from bench.core.config import build_config
    out = tmp_path / "r"
    cfg = build_config("tiny", {"out": str(out), "n_train": 64, "n_test": 32, "regularizer": "none", "seed": 0})
    rd = store.run_dir_for(cfg)
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", TQDM_DISABLE="1", PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "bench", "run", *TINY, "--out", str(out), "--no-eval"]
    seen = []
    with store.run_lock(rd):
        p = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            for line in p.stdout:
                seen.append(line)
                if "run in progress in another process" in line:
                    break
            assert any("run in progress" in x for x in seen), "".join(seen)
            assert sorted(f.name for f in rd.iterdir()) == [".run.lock"]  # it waited and wrote nothing
        except BaseException:
            p.kill()
            raise
    rest, _ = p.communicate(timeout=180)
    assert p.returncode == 0, "".join(seen) + rest
    assert rest.count("[regbench] trained ") == 1
    assert store.read_json(rd / "metrics.json")["train"]["done"] is True


def test_run_that_is_its_own_surrogate_does_not_deadlock(plugin_dir, tmp_path, capsys):
    """`bench run` holds the run lock while evaluating; the transfer test's surrogate is this very
    record (regularizer none, seed = surrogate_seed): train() takes the same lock again."""
    code, out, err = cli(["run", *TINY, "--out", tmp_path, "--seed", "1000", "--set", "suite=bad_input_transfer",
                          "--set", "surrogate_seed=1000"], capsys)
    assert code == 0, err
    (m,) = list(tmp_path.glob("*/metrics.json"))
    suite = store.read_json(m)["suite"]
    assert "transfer_fgsm" in suite and not (suite["transfer_fgsm"]["result"].get("details") or {}).get("skipped")


def test_run_lock_is_reentrant_and_separate_from_the_merge_lock(tmp_path):
    rd = tmp_path / "r"
    with store.run_lock(rd):
        with store.run_lock(rd):  # a nested train() of the same record (a surrogate that is this record)
            store.merge_metrics(rd, {"x": 1})  # the metrics lock is another file: no deadlock
    assert store.read_json(rd / "metrics.json") == {"x": 1}


# ----------------------------------------------------------------------------- property-based
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_floats = st.one_of(st.floats(-5, 5, allow_nan=False, allow_infinity=False),
                    st.sampled_from([math.nan, math.inf, -math.inf]))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(2, 6), u=st.integers(1, 4), data=st.data())
def test_npz_targets_give_a_clear_error_or_finite_targets(tmp_path, n, u, data):
    from regularizers import response_models, targets
    kind = data.draw(st.sampled_from(["responses", "similarity"]))
    if kind == "responses":
        arr = np.array(data.draw(st.lists(_floats, min_size=n * u, max_size=n * u)), float).reshape(n, u)
        rows = data.draw(st.sampled_from([n, n + 1]))
        if rows != n:
            arr = np.vstack([arr, arr[:1]])
        extra = {"responses": arr}
        if data.draw(st.booleans()):
            extra["reliability"] = np.array(data.draw(st.lists(_floats, min_size=u, max_size=u)), float)
    else:
        a = np.array(data.draw(st.lists(_floats, min_size=n * n, max_size=n * n)), float).reshape(n, n)
        with np.errstate(invalid="ignore"):
            extra = {"similarity": np.clip((a + a.T) / 10, -1, 1) if data.draw(st.booleans()) else a}
    p = tmp_path / f"h{data.draw(st.integers(0, 10**9))}.npz"
    make_npz(p, n=n, **extra)
    try:
        t = response_models.load_npz_targets(p)
    except ValueError as e:
        msg = str(e)
        assert "\n" not in msg and str(p) in msg
        assert re.search(r"similarity|responses|reliability", msg)
        return
    if t.similarity is not None:
        assert torch.isfinite(t.similarity).all()
        S = t.similarity
    else:
        assert torch.isfinite(t.responses).all()
        try:
            S = targets.cosine_similarity_matrix(t.responses, t.reliability)
        except ValueError as e:  # e.g. negative reliability weights
            assert "\n" not in str(e)
            return
    assert torch.isfinite(S).all() and S.abs().max() <= 1 + 1e-6


_values = st.one_of(st.integers(-10, 10**6), st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=5),
                    st.booleans(), st.none())


@settings(max_examples=60, deadline=None)
@given(key=st.sampled_from(["epochs", "batch_size", "image_size", "n_train", "n_test", "seed", "lr", "momentum",
                            "weight_decay", "budget_seconds", "width", "val_fraction", "data_seed", "device"]),
       value=_values)
def test_config_validation_gives_a_clear_error_or_a_sane_config(key, value):
    from bench.core.config import build_config, validate
    try:
        cfg = build_config("tiny", {})
        cfg = cfg.replace(**{key: value})
        validate(cfg)
    except ValueError as e:
        msg = str(e)
        assert "\n" not in msg and msg
        return
    v = getattr(cfg, key)
    if key == "device":
        assert v in ("auto", "cpu", "cuda", "mps") or re.fullmatch(r"cuda:\d+", v)
    elif v is not None:
        assert isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
        if key in ("epochs", "batch_size", "n_train", "n_test"):
            assert isinstance(v, int) and v >= 1
        if key in ("lr", "width", "budget_seconds"):
            assert v > 0


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from(["n_images", "pairs_per_step", "alpha", "th", "reg_dataset", "shuffle"]), value=_values)
def test_regularizer_hyperparameters_give_a_clear_error_or_typed_values(name, value):
    import regularizers
    try:
        reg = regularizers.get("pixel_sim", **{name: value})
    except ValueError as e:
        assert "\n" not in str(e) and str(e)
        return
    v = getattr(reg.hp, name)
    if name in ("n_images", "pairs_per_step"):
        assert isinstance(v, int) and not isinstance(v, bool)
    elif name in ("alpha", "th"):
        assert isinstance(v, float) and math.isfinite(v)
    elif name == "shuffle":
        assert isinstance(v, bool)
    else:
        assert isinstance(v, str)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(scale=st.sampled_from([1.0, math.nan, math.inf]), which=st.sampled_from(["ce", "pen"]))
def test_nonfinite_loss_stops_training_or_record_is_finite(tmp_path_factory, scale, which):
    """The trainer's guard: a non-finite term stops the run (naming the step and the term) and marks
    it failed; otherwise the record is finite."""
    from bench.core.config import build_config
    from bench.engine.monitors import FiniteGuard, NonFiniteLoss
    g = FiniteGuard(torch.device("cpu"), "run")
    ce = torch.tensor(1.0 * (scale if which == "ce" else 1.0))
    pen = torch.tensor(0.5 * (scale if which == "pen" else 1.0))
    if math.isfinite(scale):
        g.update(3, ce, pen)
        g.check()
        return
    with pytest.raises(NonFiniteLoss) as ei:
        g.update(3, ce, pen)
    assert ei.value.step == 3 and ei.value.term == ("ce" if which == "ce" else "penalty")
    assert "at step 3" in str(ei.value) and "\n" not in str(ei.value)
    assert build_config  # the end-to-end path is in the table (penalty_nan, penalty_inf, ce_nonfinite)
