"""The command line explains itself: fast --help without torch, help on every option, the valid names
listed (and equal to the real registries), --version, `list PATTERN`, type-checked --set, json output,
no BrokenPipe traceback, and the safe default preset of `bench run`."""
import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "numpy", "scipy", "pandas", "matplotlib")


def _run(*args, **kw):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "bench", *args], cwd=kw.pop("cwd", ROOT), env=env,
                          capture_output=True, text=True, timeout=kw.pop("timeout", 300), **kw)


def test_parser_imports_no_heavy_library():
    code = ("import sys; from bench.cli import build_parser; build_parser();"
            f"print([m for m in {HEAVY!r} if m in sys.modules])")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]", f"building the parser imported {r.stdout.strip()}"


def test_help_is_fast_and_lists_every_command():
    best = float("inf")
    for _ in range(3):  # the best of three: a shared CI machine has noisy neighbours
        t0 = time.perf_counter()
        r = _run("--help", timeout=60)
        best = min(best, time.perf_counter() - t0)
        assert r.returncode == 0, r.stderr
    for cmd in ("run", "list", "eval", "leaderboard", "plot", "sweep", "demo", "estimate", "reproduce", "similarity"):
        assert f"\n    {cmd}" in r.stdout, cmd
    assert best < 1.0, f"`python -m bench --help` took {best:.2f} s"


def _all_subparsers(parser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield name, sub
                for inner in _all_subparsers(sub):
                    yield inner


def test_every_option_of_every_command_has_help():
    from bench.cli import build_parser
    parser = build_parser()
    missing, n = [], 0
    for name, sub in [("(top)", parser), *_all_subparsers(parser)]:
        for a in sub._actions:
            if isinstance(a, argparse._SubParsersAction):
                continue
            n += 1
            if not a.help or a.help == argparse.SUPPRESS:
                missing.append(f"{name} {'/'.join(a.option_strings) or a.dest}")
    assert n > 100
    assert not missing, f"options without help: {missing}"


def test_every_subcommand_help_is_fast_enough_to_not_import_torch():
    code = ("import sys, contextlib, io; from bench.cli import build_parser; p = build_parser();\n"
            "for c in ['run','list','eval','leaderboard','plot','sweep','demo','estimate','reproduce','similarity']:\n"
            "    with contextlib.redirect_stdout(io.StringIO()):\n"
            "        try: p.parse_args([c, '--help'])\n"
            "        except SystemExit: pass\n"
            f"print([m for m in {HEAVY!r} if m in sys.modules])")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_lightweight_names_match_the_registries():
    # in a fresh interpreter: other tests register plugin suites/tests in this process
    code = ("import attacks, regularizers\n"
            "from bench.core import data, models, names\n"
            "builtin = {e.name for e in regularizers.entries() if e.source == 'builtin'}\n"
            "assert set(names.REGULARIZERS) == builtin, (names.REGULARIZERS, builtin)\n"
            "assert set(names.SUITES) == set(attacks.available_suites()), attacks.available_suites()\n"
            "assert set(names.TESTS) == set(attacks.available_tests()), attacks.available_tests()\n"
            "assert set(names.MODELS) == set(models.available_models()), models.available_models()\n"
            "assert set(names.DATASETS) == set(data.available_datasets()), data.available_datasets()\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-1500:]


def test_valid_names_are_listed_in_help():
    from bench.core import names
    from bench.core.config import PRESETS
    r = _run("run", "--help", timeout=60)
    text = " ".join(r.stdout.split())
    for n in (*names.REGULARIZERS, *PRESETS, *names.SUITES, *names.DATASETS):
        assert n in text, n
    assert "default: quick" in text and "the paper's values" not in text
    e = " ".join(_run("eval", "--help", timeout=60).stdout.split())
    for t in names.TESTS:
        assert t in e, t


def test_version():
    import bench
    r = _run("--version", timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == f"regbench {bench.__version__}"


@pytest.mark.parametrize("item,key,word", [("epochs=abc", "epochs", "integer"), ("lr=fast", "lr", "number"),
                                           ("epochs=2.5", "epochs", "integer"), ("compile=maybe", "compile", "true or false")])
def test_set_values_are_type_checked(item, key, word):
    from bench.core.config import build_config
    with pytest.raises(ValueError) as ei:
        build_config("tiny", None, [item])
    msg = str(ei.value)
    assert "\n" not in msg and key in msg and word in msg


def test_set_values_of_the_right_type_and_free_form_reg_params():
    from bench.core.config import build_config
    cfg = build_config("tiny", None, ["epochs=3", "lr=1e-2", "n_train=null", "compile=true", "data_dir=/x/1",
                                      "reg_params.alpha=5", "reg_params.response_model=v1gabor:seed=2"])
    assert (cfg.epochs, cfg.lr, cfg.n_train, cfg.compile, cfg.data_dir) == (3, 0.01, None, True, "/x/1")
    assert isinstance(cfg.lr, float)
    assert cfg.reg_params == {"alpha": 5, "response_model": "v1gabor:seed=2"}


def test_set_error_on_the_command_line_is_one_line():
    r = _run("run", "--preset", "tiny", "--set", "epochs=abc", "--out", "/nonexistent-regbench", timeout=120)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "epochs" in lines[0] and "integer" in lines[0], r.stderr


def test_list_pattern_filters_names():
    r = _run("list", "pixel*", timeout=120)
    assert r.returncode == 0, r.stderr
    assert "pixel_sim" in r.stdout and "pixel_th" in r.stdout
    assert "neural_pred" not in r.stdout and "resnet18" not in r.stdout and "presets:" not in r.stdout
    r = _run("list", "*mnist", timeout=120)
    assert "fashion_mnist" in r.stdout and "cifar10" not in r.stdout
    r = _run("list", "no-such-thing*", timeout=120)
    assert r.returncode == 1 and "nothing matches" in r.stderr


def test_list_into_a_closed_pipe_prints_no_traceback():
    env = dict(os.environ, OMP_NUM_THREADS="1")
    p = subprocess.Popen([sys.executable, "-m", "bench", "list"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    p.stdout.close()  # like `| head -0`: the reader is gone before anything is written
    err = p.stderr.read().decode()
    p.wait(timeout=120)
    assert "Traceback" not in err and "BrokenPipe" not in err, err


def test_default_preset_is_named_quick_and_paper_is_explicit():
    from bench.cli import build_parser
    from bench.cli.commands import DEFAULT_PRESET, config_from_args  # DEFAULT_PRESET: bench.core.config's
    assert DEFAULT_PRESET == "quick"
    args = build_parser().parse_args(["run", "-r", "pixel_sim"])
    assert args.preset is None  # resolved (and announced) by `bench run` itself
    args.preset = DEFAULT_PRESET
    cfg = config_from_args(args, regularizer="pixel_sim", seed=0)
    assert (cfg.preset, cfg.epochs, cfg.width, cfg.n_train) == ("quick", 4, 0.25, 10000)
    assert build_parser().parse_args(["sweep"]).preset == DEFAULT_PRESET
    assert build_parser().parse_args(["demo"]).preset == "demo"


def test_run_asks_for_yes_above_an_hour(monkeypatch, capsys):
    from bench.cli import commands
    from bench.cli import main
    monkeypatch.setattr(commands, "preflight", lambda args, cfg, log=print: 2 * 3600.0)
    trained = []
    monkeypatch.setattr("bench.engine.trainer.train", lambda *a, **k: trained.append(1))
    assert main(["run", "-r", "none", "--preset", "tiny", "--out", "/nonexistent-regbench", "--no-eval"]) == 2
    out, err = capsys.readouterr()
    assert "[run] preset tiny" in out and "step budget:" in out
    assert "--yes" in err and "2.0 h" in err and not trained


def test_run_prints_preset_budget_and_estimate_before_training(tmp_path):
    r = _run("run", "-r", "none", "--preset", "tiny", "--out", str(tmp_path), "--no-eval", "--no-progress",
             "--set", "download=false", timeout=600)
    if r.returncode != 0 and "not found" in r.stderr.lower():
        pytest.skip("Fashion-MNIST not installed")
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    i_preset, i_budget = out.index("[run] preset tiny"), out.index("[run] step budget: 1 epochs x 8 steps = 8 steps")
    i_est, i_train = out.index("[run] estimate on cpu:"), out.index("[run] training ...")
    assert i_preset < i_budget < i_est < i_train


def test_leaderboard_json(tmp_path):
    from leaderboard.render import render_json
    import pandas as pd
    table = pd.DataFrame({"regularizer": ["none", "pixel_sim"], "mean": [0.8, float("nan")], "n": [3, 3]})
    rows = json.loads(render_json(table))
    assert rows == [{"regularizer": "none", "mean": 0.8, "n": 3}, {"regularizer": "pixel_sim", "mean": None, "n": 3}]
    r = _run("leaderboard", str(tmp_path), "--format", "json", timeout=120)
    assert r.returncode == 1 and "no records" in r.stderr  # an empty folder: a message, not a traceback
