"""The last cases of the held-out probe of bad and odd inputs (issue 32, item 5): a model that fails on the first
batch, `only=` as the CLI's comma-separated string, the RobustBench board with no comparable record, and the
end of `bench sweep --train-only`."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
import torch.nn as nn

import bench
from bench.cli import build_parser
from bench.cli.sweep import evaluate_command
from test_bad_input import cli

QUIET = dict(device="cpu", log=lambda m: None)


def _xy(n=16, c=3, side=32):
    g = torch.Generator().manual_seed(0)
    return torch.rand(n, c, side, side, generator=g), torch.randint(0, 10, (n,), generator=g)


def _mnist_linear():
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 10))  # sized for 28x28 gray images


# ----------------------------------------------------------------------------- a) fails on the first batch
def test_a_model_that_fails_on_the_first_batch_is_one_line_naming_the_shape():
    x, y = _xy()
    with pytest.raises(ValueError) as e:
        bench.evaluate(_mnist_linear(), suite="quick", only=["clean"], x=x, y=y, **QUIET)
    msg = str(e.value)
    assert "\n" not in msg
    assert re.match(r"the model failed on the first batch of shape \(8, 3, 32, 32\) from the given x: "
                    r"RuntimeError: mat1 and mat2 shapes cannot be multiplied", msg), msg
    assert isinstance(e.value.__cause__, RuntimeError)  # torch's error stays reachable (raise ... from)


def test_the_first_batch_from_a_dataset_names_the_dataset():
    try:
        with pytest.raises(ValueError, match=r"failed on the first batch of shape \(8, 1, 32, 32\) from dataset "
                                             r"fashion_mnist: RuntimeError: mat1 and mat2 shapes"):
            bench.evaluate(_mnist_linear(), suite="quick", dataset="fashion_mnist", n_examples=16, only="clean",
                           **QUIET)
    except (FileNotFoundError, RuntimeError) as e:  # the dataset is not installed here
        pytest.skip(f"Fashion-MNIST not available: {e}")


def test_a_model_that_raises_its_own_error_is_wrapped_too():
    class Picky(nn.Module):
        def forward(self, x):
            raise TypeError("expects a dict of tensors")

    with pytest.raises(ValueError, match=r"first batch of shape \(8, 3, 32, 32\) from the given x: TypeError: "
                                         r"expects a dict of tensors"):
        bench.evaluate(Picky(), suite="quick", only=["clean"], x=_xy()[0], y=_xy()[1], **QUIET)


# ----------------------------------------------------------------------------- b) only= as the CLI's string
class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3 * 32 * 32, 10)

    def forward(self, x):
        return self.fc(x.flatten(1))


@pytest.mark.parametrize("only", ["clean,gaussian_noise", " clean , gaussian_noise ", ["clean", "gaussian_noise"],
                                  ("clean", "gaussian_noise")])
def test_only_takes_a_comma_separated_str_a_list_or_a_tuple(only):
    x, y = _xy()
    res = bench.evaluate(_Net().eval(), suite="quick", only=only, x=x, y=y, **QUIET)
    assert set(res) == {"clean", "gaussian_noise"}


@pytest.mark.parametrize("only,pattern", [
    ("clean,nope", r"^unknown test\(s\) nope in only=; valid: .*clean.*gaussian_noise"),
    ("clean,gausian_noise", r"^unknown test\(s\) gausian_noise in only=; valid: "),
    ("", r"^only= is empty; give test names of suite quick: clean"),
    (" , ", r"^only= is empty"),
    (7, r"^only= takes test names as a comma-separated str, a list or a tuple, got int"),
])
def test_only_bad_values_are_one_line_listing_the_valid_names(only, pattern):
    x, y = _xy()
    with pytest.raises(ValueError) as e:
        bench.evaluate(_Net().eval(), suite="quick", only=only, x=x, y=y, **QUIET)
    assert "\n" not in str(e.value) and re.search(pattern, str(e.value)), str(e.value)


# ----------------------------------------------------------------------------- c) the published board, alone
NOTE = "nothing ranked: no records under"


def _board_lines(out: str) -> list[str]:
    lines = out.splitlines()
    assert lines[0].startswith("RobustBench CIFAR-10 Linf") and lines[1].startswith("protocol:"), out[:600]
    return lines


def test_robustbench_board_with_no_records_shows_the_published_table_under_the_note(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code, out, err = cli(["leaderboard", tmp_path / "empty", "--robustbench", "cifar10:Linf"], capsys)
    assert code == 0 and err == "", err
    lines = _board_lines(out)
    assert lines[2].startswith(f"{NOTE} {tmp_path / 'empty'}"), lines[2]
    assert lines[3].split()[:3] == ["rank", "model", "robust"]
    published = [ln for ln in lines[4:] if re.match(r"\d+\s", ln)]
    assert len(published) > 50 and "model_info/cifar10/Linf/" in published[0]


def test_robustbench_board_in_a_fresh_folder_reads_no_results_and_still_shows_the_table(tmp_path, capsys,
                                                                                       monkeypatch):
    monkeypatch.chdir(tmp_path)  # no ./results: the published table can be browsed offline
    code, out, err = cli(["leaderboard", "--robustbench", "cifar10:L2"], capsys)
    assert code == 0 and err == "" and f"{NOTE} results" in out and "model_info/cifar10/L2/" in out
    code, out, err = cli(["leaderboard", "no-such-dir", "--robustbench", "cifar10:Linf"], capsys)
    assert code == 2 and "results directory not found: no-such-dir" in err  # a folder named must exist
    code, out, err = cli(["leaderboard"], capsys)  # without --robustbench nothing changes
    assert code == 2 and "results directory not found: results" in err


def test_robustbench_board_note_goes_to_stderr_where_the_output_does_not_show_it(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code, out, err = cli(["leaderboard", tmp_path / "empty", "--robustbench", "cifar10:Linf", "--format", "csv"],
                         capsys)
    assert code == 0 and err.startswith(NOTE) and len(err.strip().splitlines()) == 1
    assert out.startswith("rank,") and out.count("\n") > 50
    dest = tmp_path / "board.json"
    code, out, err = cli(["leaderboard", tmp_path / "empty", "--robustbench", "cifar10:Linf", "-o", dest], capsys)
    assert code == 0 and err.startswith(NOTE) and f"wrote {dest}" in out
    data = json.loads(dest.read_text())
    assert data["empty"].startswith(NOTE) and len(data["rows"]) > 50


# ----------------------------------------------------------------------------- d) bench sweep --train-only
def test_sweep_train_only_ends_with_what_was_trained_and_the_command_that_evaluates(tmp_path, capsys):
    out_dir = tmp_path / "res"
    argv = ["sweep", "--regularizers", "none", "--seeds", "0", "--preset", "tiny", "--n-train", "64", "--n-test",
            "32", "--no-estimate", "--no-progress", "--train-only", "--out", out_dir]
    code, out, err = cli(argv, capsys)
    if code != 0 and "not found" in (out + err).lower():
        pytest.skip("Fashion-MNIST not installed")
    assert code == 0, out + err
    assert "no records found" not in (out + err).lower() and "== fashion_mnist" not in out  # no board
    lines = out.strip().splitlines()
    assert lines[-2] == (f"[sweep] trained 1 of 1 run(s) (1 regularizer(s) x 1 seed(s) x 1 dataset(s)) and 1 "
                         f"surrogate(s), not evaluated (--train-only); records under {out_dir}"), lines[-2]
    assert lines[-1] == ("[sweep] evaluate them (no retraining) with: python -m bench sweep --regularizers none "
                         "--seeds 0 --preset tiny --n-train 64 --n-test 32 --no-estimate "
                         f"--no-progress --out {out_dir}"), lines[-1]


def test_the_evaluate_command_drops_an_abbreviated_flag_and_quotes():
    args = build_parser().parse_args(["sweep", "--train-o", "--set", "lr=0.1", "--out", "my results"])
    args.argv = ["sweep", "--train-o", "--set", "lr=0.1", "--out", "my results"]
    assert evaluate_command(args) == "python -m bench sweep --set lr=0.1 --out 'my results'"
    del args.argv  # called without bench.cli.main: rebuilt from the parsed arguments
    cmd = evaluate_command(args)
    assert cmd.startswith("python -m bench sweep --regularizers none --seeds 0-4 --preset quick")
    assert "'--out=my results'" in cmd and "--set=lr=0.1" in cmd and "train" not in cmd
