"""Training with the similarity regularizers on real Fashion-MNIST (a subset, a narrow model).

One budget for all four entries (256 steps of 32 task images, width 0.0625, 28 x 28 inputs): the
similarity penalty must fall over training, and clean accuracy must stay within a few points of
`none`. alpha is scaled to this short budget and tiny model (1/10 of the defaults: pixel 1,
neural 2): at the paper's alphas the penalty dominates the first few hundred steps of a 4-channel
stem and cost 10-27 points at this budget when this test was written (at 1/10: +1.7, -0.1 and
-3.7 points), which says more about the budget than about the method.
"""
from __future__ import annotations

import json
import warnings

import pytest
import torch

from bench.core import data as bdata
from bench.core.config import build_config
from bench.engine.trainer import evaluate_loss, train
from bench.core.data import load_for_config
from bench.core.records import Record

REGS = {"none": {}, "pixel_sim": {"alpha": 1.0}, "pixel_th": {"alpha": 1.0}, "neural_pred": {"alpha": 2.0}}
COMMON = dict(n_train=4096, n_test=1000, epochs=2, width=0.0625, batch_size=32, lr=0.05, image_size=28,
              lr_schedule="cosine", select="last", val_fraction=0.05, progress=False)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    try:
        bdata.load_raw("fashion_mnist", download=False)
    except bdata.DatasetNotFound as e:
        pytest.skip(f"real Fashion-MNIST not installed: {e}")
    out = tmp_path_factory.mktemp("train")
    data, res = None, {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model: one thread is as fast and immune to a busy shared machine
    try:
        for name, hp in REGS.items():
            rp = dict(hp, n_images=500, pairs_per_step=8) if hp else {}
            cfg = build_config("tiny", dict(COMMON, regularizer=name, reg_params=rp, out=str(out)))
            if data is None:
                data = load_for_config(cfg)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                run_dir = train(cfg, log=lambda *a: None, data=data)
            log = [json.loads(x) for x in (run_dir / "train_log.jsonl").read_text().splitlines()]
            _, model = Record(run_dir).load_model()
            _, acc = evaluate_loss(model, data.test_x, data.test_y)
            res[name] = {"dir": run_dir, "log": log, "acc": acc,
                         "record": json.loads((run_dir / "config.json").read_text()),
                         "metrics": json.loads((run_dir / "metrics.json").read_text())}
    finally:
        torch.set_num_threads(threads)
    return res


@pytest.mark.parametrize("name", ["pixel_sim", "pixel_th", "neural_pred"])
def test_penalty_falls(runs, name):
    # the trainer logs the mean penalty over each 50-step window
    windows = [e for e in runs[name]["log"] if "reg_raw" in e and e["step"] % 50 == 0]
    first, last = windows[0]["reg_raw"], windows[-1]["reg_raw"]
    assert windows[0]["step"] == 50 and windows[-1]["step"] == 250 and first > 0
    assert last < 0.6 * first, f"{name}: penalty {first:.3f} -> {last:.3f}"
    if name != "pixel_th":  # S^Th is mostly 0 within 8 pairs: its correlation is undefined
        late = [e["sim_corr"] for e in windows if e["step"] >= 150]
        assert sum(late) / len(late) > 0.5  # the CNN's pair similarities follow the target


# One seed of a 4-channel-stem model: its accuracy moves by several points with the CPU's kernels alone
# (neural_pred - none: -3.7 points with AMD EPYC's AVX-512 kernels, -6.5 with oneDNN capped at AVX2, the same
# seed and data), so the band is what a single tiny run can state on any CPU: the regularizer at this alpha
# does not stop the model learning (a penalty that dominated the loss cost 10-27 points, outside it).
ACC_BAND = 0.10


@pytest.mark.parametrize("name", ["pixel_sim", "pixel_th", "neural_pred"])
def test_accuracy_close_to_none(runs, name):
    base = runs["none"]["acc"]
    assert base > 0.65  # the budget is enough to learn the task
    assert runs[name]["acc"] > 0.6  # and the regularized model learned it too (chance: 0.1)
    assert abs(runs[name]["acc"] - base) <= ACC_BAND, f"{name} {runs[name]['acc']:.3f} vs none {base:.3f}"


def test_records_carry_conventions_and_costs(runs):
    rec = runs["pixel_th"]["record"]["regularizer"]
    assert rec["conventions"]["transform"] == "atanh" and rec["conventions"]["eps"] == 1e-5
    assert rec["setup"]["reg_set"]["n_images"] == 500 and rec["setup"]["reg_set"]["augment"] == "none"
    tr = runs["pixel_th"]["metrics"]["train"]
    assert tr["reg_images"] == 16 * tr["steps"] and tr["steps"] == runs["none"]["metrics"]["train"]["steps"]
    lw = torch.tensor(tr["layer_weights"])
    assert lw.shape == (5,) and abs(float(lw.sum()) - 1) < 1e-5 and not torch.allclose(lw, torch.full((5,), 0.2))
    state = torch.load(runs["pixel_th"]["dir"] / "regularizer.pt", weights_only=True)
    assert {"sim.layer_weight", "sim.running_mean_0", "sim.running_mean_4"} <= set(state)
