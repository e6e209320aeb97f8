"""Nothing lost, nothing runaway, nothing orphaned (issue 24).

The cases of issue 24 as rows: outputs that would clobber a record or an unrelated file, unbounded or
invalid plans, values outside their domain, records edited under their hash or of the wrong shape,
filesystem errors (a full disk, a read-only folder, names too long, stdout on a full device), the Python
API's model checks, warnings on a normal board. Each row asserts the exit code (or exception type), one
`error:` line, no traceback and an unchanged results folder. Then the two real-process kill cases: a
2-worker `bench sweep` killed by SIGTERM and by SIGKILL leaves no process behind, and a rerun completes.
"""
from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import warnings
from contextlib import redirect_stdout
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from bench.cli import main
from bench.core import store

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--preset", "tiny", "--n-train", "64", "--n-test", "32", "--no-estimate", "--no-progress"]
SUITE = "bad_more_smoke"


from test_bad_input import cli  # noqa: E402  (the one in-process CLI runner of the bad-input tests)


def snapshot(root: Path) -> dict:
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def one_error(code, err, pattern, expect_code=2):
    assert code == expect_code, f"exit code {code}, stderr: {err}"
    assert "Traceback" not in err, err
    errors = [ln for ln in err.splitlines() if "error:" in ln]
    assert len(errors) == 1, f"expected one error line, got: {err}"
    assert re.search(pattern, errors[0], re.I), f"{pattern!r} not in {errors[0]!r}"


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    """The registry of written outputs and the estimate's calibration live in a per-test cache."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    """Two tiny trained and evaluated records (none and pixel_sim, seed 0) in one results folder."""
    import attacks
    attacks.register_suite(SUITE, [("clean", {}), ("gaussian_noise", {"n": 16, "stds": [0.0, 0.2]})])
    out = tmp_path_factory.mktemp("records")
    for reg in ("none", "pixel_sim"):
        with redirect_stdout(io.StringIO()):
            code = main(["run", *TINY, "-r", reg, "--out", str(out), "--set", f"suite={SUITE}",
                         *(["--set", "reg_params.n_images=64"] if reg != "none" else [])])
        assert code == 0
    return out


def _copy(records: Path, dest: Path) -> Path:
    shutil.copytree(records, dest)
    return dest


def _record(root: Path, reg: str = "none") -> Path:
    return next(p for p in sorted(root.iterdir()) if p.name.startswith(f"{reg}-"))


# ----------------------------------------------------------------------------- 1. outputs never clobber data
def test_leaderboard_output_into_a_record_or_the_results_is_refused(records, tmp_path, capsys):
    res = _copy(records, tmp_path / "res")
    before = snapshot(res)
    rec = _record(res)
    for target, pat in ((rec / "metrics.json", r"inside the record"), (rec / "board.md", r"inside the record"),
                        (res / "board.md", r"inside the results folder .* being read")):
        code, _, err = cli(["leaderboard", res, "--output", target], capsys)
        one_error(code, err, pat)
        assert snapshot(res) == before


def test_leaderboard_output_replaces_only_its_own_file(records, tmp_path, capsys):
    target = tmp_path / "board.md"
    target.write_text("my notes")
    code, _, err = cli(["leaderboard", records, "--output", target], capsys)
    one_error(code, err, r"refusing to replace .*board\.md.*did not write.*--force")
    assert target.read_text() == "my notes"
    code, out, err = cli(["leaderboard", records, "--output", target, "--force"], capsys)
    assert code == 0, err
    assert "pixel_sim" in target.read_text()
    code, out, err = cli(["leaderboard", records, "--output", target], capsys)  # ours now: replaced freely
    assert code == 0, err
    target.write_text(target.read_text() + "\nedited by hand\n")  # changed since: no longer ours
    code, _, err = cli(["leaderboard", records, "--output", target], capsys)
    one_error(code, err, r"did not write")
    assert target.read_text().endswith("edited by hand\n")
    assert not list(tmp_path.glob(".*.tmp"))


def test_leaderboard_output_onto_a_folder_and_plot_out_onto_a_file(records, tmp_path, capsys):
    (tmp_path / "adir").mkdir()
    code, _, err = cli(["leaderboard", records, "--output", tmp_path / "adir"], capsys)
    one_error(code, err, r"is a folder; give a file name")
    f = tmp_path / "afile"
    f.write_text("keep")
    code, _, err = cli(["plot", records, "--out", f], capsys)
    one_error(code, err, r"exists and is not a folder")
    assert f.read_text() == "keep"
    code, _, err = cli(["plot", records, "--out", _record(records) / "figs"], capsys)
    one_error(code, err, r"inside the record")


def test_plot_out_keeps_unrelated_files(records, tmp_path, capsys):
    figs = tmp_path / "figs"
    code, out, err = cli(["plot", records, "--out", figs], capsys)
    assert code == 0, err
    first = sorted(p.name for p in figs.iterdir())
    assert first and not [n for n in first if n.startswith(".")]
    code, _, err = cli(["plot", records, "--out", figs], capsys)  # its own figures: replaced
    assert code == 0, err
    victim = figs / first[0]
    victim.write_bytes(b"someone else's figure")
    code, _, err = cli(["plot", records, "--out", figs], capsys)
    one_error(code, err, r"refusing to replace 1 existing file.*--force")
    assert victim.read_bytes() == b"someone else's figure"
    assert sorted(p.name for p in figs.iterdir()) == first  # no temporary folder left


def test_estimate_json_does_not_replace_an_unrelated_file(tmp_path, capsys):
    target = tmp_path / "est.json"
    target.write_text("{}")
    code, _, err = cli(["estimate", "--preset", "tiny", "--seeds", "0", "--json", target,
                        "--out", tmp_path / "res"], capsys)
    one_error(code, err, r"refusing to replace .*est\.json")
    assert target.read_text() == "{}"


# ----------------------------------------------------------------------------- 2. + 5. bounded, validated plans
PLAN_CASES = [
    ("estimate_huge_seed_range", ["estimate", "--seeds", "0-100000000"], r"100000001 jobs; at most 10000"),
    ("sweep_needs_yes", ["sweep", "--seeds", "1001-1600"], r"600 jobs \(more than 500\): add --yes"),
    ("estimate_needs_yes", ["estimate", "--seeds", "1001-1600"], r"600 jobs .*--yes"),
    ("sweep_negative_seed", ["sweep", "--seeds=-1"], r"seeds are 0 to \d+, got a negative one"),
    ("sweep_reversed_seeds", ["sweep", "--seeds", "5-2"], r"5-2 runs backwards.*2-5"),
    ("sweep_empty_seeds", ["sweep", "--seeds", ""], r"--seeds is empty"),
    ("sweep_bogus_dataset", ["sweep", "--datasets", "bogus"], r"unknown dataset 'bogus'; valid datasets: .*mnist"),
    ("sweep_empty_datasets", ["sweep", "--datasets", ""], r"--datasets is empty"),
    ("sweep_missing_folder_dataset", ["sweep", "--datasets", "folder:/nonexistent/imgs"], r"no folder /nonexistent"),
    ("sweep_zero_threads", ["sweep", "--threads", "0"], r"--threads must be an integer >= 1, got 0"),
    ("sweep_zero_workers", ["sweep", "--workers", "0"], r"--workers must be an integer >= 1, got 0"),
    ("sweep_negative_alpha", ["sweep", "--regularizers", "pixel_sim", "--set", "reg_params.alpha=-5"],
     r"alpha must be >= 0"),
    ("run_negative_alpha", ["run", "-r", "pixel_sim", "--set", "reg_params.alpha=-5", "--no-estimate"],
     r"alpha must be >= 0"),
    ("estimate_measure_steps_zero", ["estimate", "--measure-steps", "0"], r"--measure-steps must be >= 1"),
    ("estimate_suite_images_zero", ["estimate", "--suite-images", "0"], r"--suite-images must be >= 1"),
    ("reproduce_reversed_seeds", ["reproduce", "--seeds", "5-2", "--render-only", "--out", "RES",
                                  "--report", "RES/r.md"], r"5-2 runs backwards"),
]


@pytest.mark.parametrize("case_id,argv,pattern", PLAN_CASES, ids=[c[0] for c in PLAN_CASES])
def test_bad_plans_fail_before_any_work(case_id, argv, pattern, tmp_path, capsys):
    res = tmp_path / "res"
    res.mkdir()
    (res / "keep.txt").write_text("an existing file")
    before = snapshot(res)
    argv = [str(res) if a == "RES" else str(res / "r.md") if a == "RES/r.md" else a for a in argv]
    extra = [] if argv[0] == "reproduce" else ["--preset", "tiny", "--out", res]
    code, _, err = cli([*argv, *extra], capsys)
    one_error(code, err, pattern)
    assert snapshot(res) == before


def test_sweep_shows_the_estimate_and_stops_above_an_hour(tmp_path, capsys):
    res = tmp_path / "res"
    code, out, err = cli(["sweep", "--preset", "tiny", "--epochs", "100000", "--seeds", "0", "--out", res], capsys)
    one_error(code, err, r"estimated at .* h \(more than 1\.0 h\): add --yes")
    assert re.search(r"\[sweep\] estimate on \w+: .* h for 2 job\(s\)", out)
    assert not list(res.glob("*/model.pt")) and not list(res.glob("*/checkpoint.pt"))


# ----------------------------------------------------------------------------- 4. a record is what its hash says
def test_eval_refuses_a_config_edited_under_its_hash(records, tmp_path, capsys):
    res = _copy(records, tmp_path / "res")
    rec = _record(res)
    h = json.loads((rec / "config.json").read_text())
    h["config"]["lr"] = 0.5
    h["config"]["n_test"] = 16
    store.atomic_write_json(rec / "config.json", h)
    before = snapshot(res)
    code, _, err = cli(["eval", rec, "--force", "--only", "clean", "--no-progress"], capsys)
    one_error(code, err, re.escape(str(rec / "config.json")) + r".*does not match the record's hash")
    assert snapshot(res) == before
    import bench
    with pytest.raises(ValueError, match="does not match the record's hash"):
        bench.evaluate(rec, only=["clean"], log=lambda m: None)
    # the board skips it by its path (an error with --strict)
    code, out, err = cli(["leaderboard", res, "-f", "csv"], capsys)
    assert code == 0 and f"skipped damaged record file {rec / 'config.json'}" in err
    code, _, err = cli(["leaderboard", res, "--strict"], capsys)
    one_error(code, err, r"does not match the record's hash.*--strict")


@pytest.mark.parametrize("header", [{"config": "x"}, {"config": {"seed": 0}, "model": "x"}, [1, 2], "text",
                                    {"config": {"width": "abc"}, "hash": "x"}],
                         ids=["config_str", "model_str", "list", "string", "width_abc"])
def test_damaged_records_of_any_shape_are_skipped_by_path(records, tmp_path, capsys, header):
    res = _copy(records, tmp_path / "res")
    rec = _record(res, "pixel_sim")
    store.atomic_write_json(rec / "config.json", header)
    before = snapshot(res)
    code, out, err = cli(["leaderboard", res, "-f", "csv"], capsys)
    assert code == 0, err
    assert "Traceback" not in err
    assert f"skipped damaged record file {rec / 'config.json'}" in err
    assert "none" in out and "pixel_sim" not in out
    code, _, err = cli(["eval", rec, "--no-progress"], capsys)
    one_error(code, err, re.escape(str(rec)))
    assert snapshot(res) == before


def test_metrics_of_the_wrong_shape_are_skipped_by_path(records, tmp_path, capsys):
    res = _copy(records, tmp_path / "res")
    rec = _record(res, "pixel_sim")
    m = store.read_json(rec / "metrics.json")
    m["suite"]["clean"] = "x"
    store.atomic_write_json(rec / "metrics.json", m)
    code, out, err = cli(["leaderboard", res, "-f", "csv"], capsys)
    assert code == 0 and "Traceback" not in err
    assert f"skipped damaged record file {rec / 'metrics.json'}" in err


def test_eval_of_a_config_with_width_abc_is_one_line(records, tmp_path, capsys):
    res = _copy(records, tmp_path / "res")
    rec = _record(res)
    h = json.loads((rec / "config.json").read_text())
    h["config"]["width"] = "abc"
    store.atomic_write_json(rec / "config.json", h)
    before = snapshot(res)
    code, _, err = cli(["eval", rec, "--no-progress"], capsys)
    one_error(code, err, r"damaged record file .*config\.json: width .*must be a number")
    assert snapshot(res) == before


# ----------------------------------------------------------------------------- 5. no silent fallback (eval)
@pytest.mark.parametrize("argv,pattern", [(["--seed", "-1"], r"--seed must be from 0"),
                                          (["--only", ""], r"--only is empty"),
                                          (["--only", " , "], r"--only is empty"),
                                          (["--only", "pgd"], r"pgd are not in suite bad_more_smoke")],
                         ids=["seed_negative", "only_empty", "only_blank", "only_outside_suite"])
def test_eval_values_outside_their_domain(records, tmp_path, capsys, argv, pattern):
    res = _copy(records, tmp_path / "res")
    before = snapshot(res)
    code, _, err = cli(["eval", _record(res), "--no-progress", *argv], capsys)
    one_error(code, err, pattern)
    assert snapshot(res) == before


# ----------------------------------------------------------------------------- 6. one error boundary
def _enospc_on(name: str, monkeypatch, err=errno.ENOSPC):
    """The real atomic write, failing as a full disk (or a read-only filesystem) would when it flushes a file
    named `name` to the device (after some bytes went into the temporary file)."""
    real = os.fsync

    def fsync(fd):
        if Path(os.readlink(f"/proc/self/fd/{fd}")).name.startswith(f".{name}."):
            raise OSError(err, os.strerror(err))
        return real(fd)
    monkeypatch.setattr(store.os, "fsync", fsync)


@pytest.mark.parametrize("err", [errno.ENOSPC, errno.EROFS], ids=["ENOSPC", "EROFS"])
def test_eval_on_a_full_or_read_only_disk(records, tmp_path, capsys, monkeypatch, err):
    res = _copy(records, tmp_path / "res")
    rec = _record(res)
    before = snapshot(res)
    _enospc_on("metrics.json", monkeypatch, err)
    code, _, e = cli(["eval", rec, "--force", "--only", "clean", "--no-progress"], capsys)
    one_error(code, e, re.escape(str(rec / "metrics.json")) + ": " + re.escape(os.strerror(err)), expect_code=1)
    monkeypatch.undo()
    assert snapshot(res) == before, "a failed write left a temporary file or changed the record"


def test_training_on_a_full_disk_keeps_only_the_resume_point(tmp_path, capsys, monkeypatch):
    res = tmp_path / "res"
    _enospc_on("model.pt", monkeypatch)
    # a checkpoint every 2 steps (checkpoints are by time by default), so a resume point exists when model.pt fails
    code, _, e = cli(["run", *TINY, "--out", res, "--no-eval", "--set", f"suite={SUITE}", "--set", "ckpt_every=2"],
                     capsys)
    one_error(code, e, r"model\.pt: No space left on device; training stopped, its last checkpoint .* is kept",
              expect_code=1)
    monkeypatch.undo()
    (rd,) = list(res.glob("none-*"))
    assert not list(rd.glob(".*.tmp")) and not (rd / "model.pt").exists()
    assert not (store.read_json(rd / "metrics.json", {}) or {}).get("train", {}).get("done")
    code, _, e = cli(["run", *TINY, "--out", res, "--no-eval", "--set", f"suite={SUITE}", "--set", "ckpt_every=2"],
                     capsys)  # resumes
    assert code == 0, e
    assert not (rd / "checkpoint.pt").exists() and store.read_json(rd / "metrics.json")["train"]["done"]


def test_filesystem_errors_are_one_line(records, tmp_path, capsys):
    long = tmp_path / ("x" * 300 + ".md")
    code, _, err = cli(["leaderboard", records, "--output", long], capsys)
    one_error(code, err, r"x{20}.*File name too long", expect_code=1)
    afile = tmp_path / "afile"
    afile.write_text("keep")
    code, _, err = cli(["leaderboard", records, "--output", afile / "board.md"], capsys)
    one_error(code, err, re.escape(str(afile)), expect_code=1)
    code, _, err = cli(["run", *TINY, "--out", afile, "--no-eval"], capsys)
    one_error(code, err, r"--out .*afile is a file")
    code, _, err = cli(["sweep", "--preset", "tiny", "--out", _record(records), "--no-estimate"], capsys)
    one_error(code, err, r"inside the record")
    assert afile.read_text() == "keep"


def test_leaderboard_output_on_a_read_only_filesystem(records, tmp_path, capsys, monkeypatch):
    def refuse(*a, **kw):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))
    monkeypatch.setattr(store.tempfile, "mkstemp", refuse)
    code, _, err = cli(["leaderboard", records, "--output", tmp_path / "b.md"], capsys)
    one_error(code, err, re.escape(str(tmp_path / "b.md")) + ": Read-only file system", expect_code=1)


def test_stdout_on_a_full_device():
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    with open("/dev/full", "w") as full:
        r = subprocess.run([sys.executable, "-m", "bench", "list"], stdout=full, stderr=subprocess.PIPE,
                           text=True, env=env, cwd=ROOT, timeout=120)
    assert r.returncode == 1
    assert r.stderr.strip() == "error: cannot write to standard output: No space left on device"


# ----------------------------------------------------------------------------- 7. the API checks its model
class Net(nn.Module):
    """A fixed linear model on 32x32 gray images; `out` shapes its output."""

    def __init__(self, classes=10, out=None, dtype=torch.float32):
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(32 * 32, classes).to(dtype)
        self.out = out

    def forward(self, x):
        z = self.fc(x.flatten(1))
        if self.out == "tuple":
            return z, x.mean()
        if self.out == "dict":
            return {"logits": z, "aux": z.sum()}
        if self.out == "dict_nologits":
            return {"scores": z}
        if self.out == "nan":
            return z * float("nan")
        return z


def _xy(n=16, classes=10):
    g = torch.Generator().manual_seed(1)
    return torch.rand(n, 1, 32, 32, generator=g), torch.randint(0, classes, (n,), generator=g)


API_CASES = [
    ("seven_classes_on_fashion_mnist", lambda: dict(model=Net(7), dataset="fashion_mnist", n_examples=16),
     r"7 logits per image but the dataset has 10 classes"),
    ("thousand_classes_on_fashion_mnist", lambda: dict(model=Net(1000), dataset="fashion_mnist", n_examples=16),
     r"1000 logits per image but the dataset has 10 classes"),
    ("nan_logits", lambda: dict(model=Net(out="nan"), x=_xy()[0], y=_xy()[1]), r"non-finite logits"),
    ("labels_out_of_range", lambda: dict(model=Net(), x=_xy()[0], y=_xy()[1] + 5), r"labels must be in \[0, 9\]"),
    ("negative_labels", lambda: dict(model=Net(), x=_xy()[0], y=_xy()[1] - 20), r"labels must be in \[0, 9\]"),
    ("inputs_0_255", lambda: dict(model=Net(), x=_xy()[0] * 255, y=_xy()[1]), r"\[0, 1\].*x / 255"),
    ("inputs_uint8", lambda: dict(model=Net(), x=(_xy()[0] * 255).to(torch.uint8), y=_xy()[1]), r"got uint8"),
    ("float_labels", lambda: dict(model=Net(), x=_xy()[0], y=_xy()[1].float()), r"integer class labels"),
    ("x_y_sizes_differ", lambda: dict(model=Net(), x=_xy()[0], y=_xy()[1][:10]), r"16 images but y has shape \(10,\)"),
    ("x_without_y", lambda: dict(model=Net(), x=_xy()[0]), r"needs the labels `y`"),
    ("flat_images", lambda: dict(model=Net(), x=_xy()[0].flatten(1), y=_xy()[1]), r"shape \(N, C, H, W\)"),
    ("dict_without_logits", lambda: dict(model=Net(out="dict_nologits"), x=_xy()[0], y=_xy()[1]),
     r"without a 'logits' entry \(keys: scores\)"),
    ("unknown_only", lambda: dict(model=Net(), x=_xy()[0], y=_xy()[1], only=["clean", "nope"]), r"unknown test.*nope"),
    ("empty_only", lambda: dict(model=Net(), x=_xy()[0], y=_xy()[1], only=[]), r"only= is empty"),
    ("negative_seed", lambda: dict(model=Net(), x=_xy()[0], y=_xy()[1], seed=-1), r"seed must be an integer from 0"),
    ("zero_n_examples", lambda: dict(model=Net(), x=_xy()[0], y=_xy()[1], n_examples=0), r"n_examples must be a positive number"),
]


@pytest.mark.parametrize("case_id,make,pattern", API_CASES, ids=[c[0] for c in API_CASES])
def test_api_checks_the_model_and_data(case_id, make, pattern):
    import bench
    kw = make()
    model = kw.pop("model")
    only = kw.pop("only", ["clean"])
    with pytest.raises(ValueError, match=pattern):
        bench.evaluate(model, suite="quick", only=only, device="cpu", log=lambda m: None, **kw)


def _accuracy(model, x, y) -> float:
    with torch.no_grad():
        out = model(x.to(model.fc.weight.dtype))
    out = out[0] if isinstance(out, tuple) else out["logits"] if isinstance(out, dict) else out
    return float((out.argmax(1) == y).float().mean())


@pytest.mark.parametrize("kind", ["tuple", "dict", "float64"])
def test_api_takes_logits_by_the_documented_rule(kind):
    x, y = _xy(32)
    model = Net(dtype=torch.float64) if kind == "float64" else Net(out=kind)
    lines = []
    import bench
    res = bench.evaluate(model, suite="quick", only=["clean"], device="cpu", x=x, y=y, log=lines.append)
    assert res["clean"]["result"]["summary"]["accuracy"] == pytest.approx(_accuracy(model, x, y))
    assert any("adapter" in ln for ln in lines)


# ----------------------------------------------------------------------------- 8. no warnings on normal use
def test_two_regularizer_one_seed_board_warns_nothing(records, capsys):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code, out, err = cli(["leaderboard", records], capsys)
    assert code == 0 and "pixel_sim" in out
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning)], [str(w.message) for w in caught]
    assert "Warning" not in err and "warning" not in err


# ----------------------------------------------------------------------------- 3. workers die with their parent
KILL_PLUGIN = 'import attacks\nattacks.register_suite("kill_smoke", [("clean", {})])\n'


def _group(pgid: int) -> list[int]:
    """Live processes of a process group, from /proc (no psutil)."""
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = Path(f"/proc/{d}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if fields[0] != "Z" and int(fields[2]) == pgid:
            pids.append(int(d))
    return pids


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_killed_sweep_leaves_no_workers_and_a_rerun_completes(tmp_path, sig):
    (tmp_path / "regbench_kill_smoke.py").write_text(KILL_PLUGIN)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(tmp_path)]), OMP_NUM_THREADS="1",
               XDG_CACHE_HOME=str(tmp_path / "xdg"), TQDM_DISABLE="1")
    res = tmp_path / "res"
    argv = [sys.executable, "-m", "bench", "sweep", "--preset", "tiny", "--seeds", "0-1", "--workers", "2",
            "--threads", "1", "--plugin", "regbench_kill_smoke", "--suite", "kill_smoke", "--epochs", "4",
            "--out", str(res), "--no-estimate", "--no-leaderboard"]
    p = subprocess.Popen(argv, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=env, cwd=tmp_path)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and p.poll() is None:  # both jobs running in their workers
            states = [(store.read_json(f, {}) or {}).get("state") for f in res.glob("*/job_status.json")]
            if states.count("running") == 2:
                break
            time.sleep(0.3)
        assert p.poll() is None, p.communicate()
        assert len(_group(p.pid)) >= 3  # the sweep, its 2 workers (and the resource tracker)
        os.kill(p.pid, sig)
        out, err = p.communicate(timeout=60)
        deadline = time.time() + 30
        while _group(p.pid) and time.time() < deadline:
            time.sleep(0.2)
        assert _group(p.pid) == [], "processes of the killed sweep survive"
    finally:
        for pid in _group(p.pid):
            os.kill(pid, signal.SIGKILL)
    if sig == signal.SIGTERM:
        assert p.returncode == 128 + signal.SIGTERM
        assert "Traceback" not in err
        assert re.fullmatch(r"SIGTERM: stopped the sweep and its 2 worker process\(es\); "
                            r"re-run the same command to resume", err.strip()), err
    else:
        assert p.returncode == -signal.SIGKILL
    r = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 failed" in r.stdout
    assert len([d for d in res.iterdir() if (d / "model.pt").is_file()]) == 2


def test_sigterm_in_process_stops_the_launcher_in_one_line():
    """SIGTERM while jobs run in this process (the sequential launcher): `Terminated`, the launcher stopped,
    the previous handler back in place."""
    from bench.app.jobs import JobSpec
    from bench.app.launcher_base import Launcher, Terminated
    from bench.app.launchers import run_jobs

    class Slow(Launcher):
        stopped = 0

        def submit(self, spec):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler raises before this ends
            return spec.id

        def wait(self, handles, timeout):
            return []

        def stop(self):
            Slow.stopped += 1
            return 0

    before = signal.getsignal(signal.SIGTERM)
    spec = JobSpec(id="a", kind="run", config={"regularizer": "none", "dataset": "d", "seed": 0}, run_dir="/nonexistent")
    t0 = time.time()
    with pytest.raises(Terminated) as ei:
        run_jobs([spec], Slow(), log=lambda m: None)
    assert time.time() - t0 < 4
    assert ei.value.signum == signal.SIGTERM and Slow.stopped == 1
    assert ei.value.message == "SIGTERM: stopped the sweep; re-run the same command to resume"
    assert signal.getsignal(signal.SIGTERM) is before
